//! Processes for the cluster tests: hub nodes (the `ssehub` binary, so that
//! a node can be SIGKILLed), private `redis-server`s, stream keys on the
//! shared Redis, tokens, and publishing.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ssehub_server::auth::DETAIL_TYPE;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The Redis every test may share, on unique keys.
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";
pub const KEY: &str = "cluster-test-secret-of-32-bytes!!!";
pub const ISSUER: &str = "https://issuer.test";
/// Pinned on every node: they listen on different ports, and one token
/// serves them all.
pub const AUDIENCE: &str = "https://hub.test/.well-known/mercure";
/// How long any awaited condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A name no other test or process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory for one test's logs and Redis files. Removed on success;
/// kept (and named on stderr) when the test fails, with the nodes' logs.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("ssehub-cluster"));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.0.display());
            for entry in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    eprintln!("--- last lines of {}:", path.display());
                    for line in &lines[lines.len().saturating_sub(15)..] {
                        eprintln!("{line}");
                    }
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A stream key on the shared Redis, with every key the hub derives from
/// it deleted when dropped, even on panic. Nothing else is touched.
pub struct SharedStream(pub String);

impl SharedStream {
    pub fn new() -> Self {
        Self(unique("ssehub-test:cluster"))
    }
}

impl Drop for SharedStream {
    fn drop(&mut self) {
        // The stream itself and `{stream}:…`: the name is unique and holds no
        // glob characters, so the patterns match only this test's keys.
        let mut keys = Vec::new();
        for pattern in [format!("{}*", self.0), format!("{{{}}}*", self.0)] {
            if let Ok(out) = Command::new("redis-cli")
                .args(["-p", "6379", "--scan", "--pattern", &pattern])
                .output()
            {
                keys.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(str::to_owned),
                );
            }
        }
        if !keys.is_empty() {
            let _ = Command::new("redis-cli")
                .args(["-p", "6379", "DEL"])
                .args(&keys)
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// Whether `key` (or any key derived from it) still exists on the shared
/// Redis.
pub fn shared_keys_left(stream: &str) -> bool {
    let out = Command::new("redis-cli")
        .args(["-p", "6379", "--scan", "--pattern", &format!("*{stream}*")])
        .output()
        .unwrap();
    !out.stdout.is_empty()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of the test's own, on a free port, without
/// persistence unless asked.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// `extra` replaces the default `--appendonly no` (e.g. AOF on).
    pub fn start(scratch: &Scratch, extra: &[&str]) -> Self {
        let dir = scratch.0.join(unique("redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let args = if extra.is_empty() {
            vec!["--appendonly".to_owned(), "no".to_owned()]
        } else {
            extra.iter().map(|a| (*a).to_owned()).collect()
        };
        let mut redis = Self {
            port: free_port(),
            dir,
            args,
            child: None,
        };
        redis.spawn();
        redis
    }

    /// Starts the server (again) on its port.
    pub fn spawn(&mut self) {
        let child = Command::new("/usr/bin/redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        // Nothing tells when it listens but the port itself.
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: nothing is saved on the way out.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `ssehub` process.
pub struct Node {
    pub name: String,
    /// Its address; a restart keeps it.
    pub addr: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Node {
    /// The flags of a node trusting [`ISSUER`] with [`KEY`] on the given
    /// transport (`None`: the default, memory).
    pub fn args(transport: Option<(&str, &str)>) -> Vec<String> {
        let mut args: Vec<String> = [
            "--issuer",
            ISSUER,
            "--jwt-key",
            KEY,
            "--resource-identifier",
            AUDIENCE,
            "--anonymous",
            "--drain",
            "100ms",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some((url, stream)) = transport {
            args.extend(["--transport", url, "--transport-stream", stream].map(str::to_owned));
        }
        args
    }

    /// Starts a node on a free port.
    pub async fn start(scratch: &Scratch, name: &str, args: Vec<String>) -> Self {
        let mut node = Self {
            name: name.to_owned(),
            addr: "127.0.0.1:0".parse().unwrap(),
            args,
            log: scratch.0.join(format!("{name}.log")),
            child: None,
        };
        node.spawn().await.unwrap_or_else(|err| panic!("{err}"));
        node
    }

    /// Starts the process on `self.addr` (port 0 the first time) and
    /// waits for its `listening on` line.
    async fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ssehub"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SSEHUB_") {
                command.env_remove(name);
            }
        }
        command
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(&self.args)
            .env("SSEHUB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| format!("spawn: {e}"))?;
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            other => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(format!(
                    "{} did not start ({other:?}); see {}",
                    self.name,
                    self.log.display()
                ));
            }
        };
        let addr = line
            .strip_prefix("listening on http://")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?;
        self.addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        // Whatever else it prints is read, so that it never blocks on a
        // full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, and the process reaped.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// Starts it again on the same port (a port just released by a killed
    /// process may take a moment to be free again).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.spawn().await {
                Ok(()) => return,
                Err(err) => {
                    assert!(Instant::now() < deadline, "{err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The hub URL.
    pub fn hub(&self) -> String {
        hub_url(self.addr)
    }

    /// Waits until `GET /readyz` answers `status`.
    pub async fn await_ready(&self, status: u16) {
        let http = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.addr);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|r| r.status().as_u16());
            if got.as_ref().is_ok_and(|s| *s == status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: /readyz never answered {status} (last: {got:?})",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub fn hub_url(addr: SocketAddr) -> String {
    format!("http://{addr}/.well-known/mercure")
}

/// Starts `count` nodes with the same flags, and waits until each is
/// ready (following the log), as a load balancer would before sending it
/// traffic.
pub async fn nodes(scratch: &Scratch, count: usize, args: &[String]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for i in 0..count {
        nodes.push(Node::start(scratch, &format!("node{i}"), args.to_vec()).await);
    }
    for node in &nodes {
        node.await_ready(200).await;
    }
    nodes
}

/// A token as `mercure token` writes one, with `details` as its
/// `authorization_details`.
pub fn token(details: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": uuid::Uuid::new_v4().urn().to_string(),
        "client_id": ISSUER,
        "iat": now,
        "exp": now + 3600,
        "jti": uuid::Uuid::new_v4().urn().to_string(),
        "authorization_details": details,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap()
}

/// A Mercure authorization detail on exact topics (`*`: all).
pub fn grant(action: &str, topics: &[&str]) -> Value {
    let topics: Vec<Value> = topics
        .iter()
        .map(|t| json!({"match": t, "match_type": "exact"}))
        .collect();
    json!({"type": DETAIL_TYPE, "actions": [action], "topics": topics})
}

/// A token that may publish on every topic.
pub fn publisher() -> String {
    token(json!([grant("publish", &["*"])]))
}

/// What a POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `200` with the update's id: the hub stored it.
    Acked(String),
    /// Another status: not acknowledged.
    Refused {
        status: u16,
        retry_after: Option<String>,
    },
    /// The connection could not be made: the hub never saw the request.
    NotSent(String),
    /// The request may have reached the hub (a reset, a timeout): unknown.
    Unknown(String),
}

impl Outcome {
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Acked(id) => Some(id),
            _ => None,
        }
    }
}

/// A client that never reuses a connection, so that a request to a node
/// that was killed fails to connect (a sure "not sent") instead of failing
/// on a stale pooled socket (an "unknown").
pub fn publishing_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POSTs `form` to `hub` with `token`.
pub async fn post(
    http: &reqwest::Client,
    hub: &str,
    token: &str,
    form: &[(&str, &str)],
) -> Outcome {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let sent = http
        .post(hub)
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status() == 200 => match response.text().await {
            Ok(id) => Outcome::Acked(id),
            Err(err) => Outcome::Unknown(format!("reading the id: {err}")),
        },
        Ok(response) => Outcome::Refused {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get("retry-after")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        },
        Err(err) if err.is_connect() => Outcome::NotSent(format!("{err:?}")),
        Err(err) => Outcome::Unknown(format!("{err:?}")),
    }
}

/// A TCP relay in front of a Redis that lets the first `open` connections
/// through and holds every later one until [`Gate::release`]: a node whose
/// log reader connects late, deterministically.
pub struct Gate {
    pub port: u16,
    released: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    pub async fn start(target: u16, open: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let released = tokio::sync::watch::Sender::new(false);
        let gate = released.subscribe();
        let task = tokio::spawn(async move {
            let mut accepted = 0;
            while let Ok((mut inbound, _)) = listener.accept().await {
                accepted += 1;
                let mut gate = gate.clone();
                let held = accepted > open;
                eprintln!(
                    "DEBUG gate accept {accepted} held {held} at {:?}",
                    std::time::SystemTime::now()
                );
                tokio::spawn(async move {
                    if held && gate.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Self {
            port,
            released,
            task,
        }
    }

    /// Lets the held connections (and all later ones) through.
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}
