//! Issuers' keys from a JSON Web Key Set, end to end over real sockets: a
//! key server in this process (axum on 127.0.0.1:0) whose set rotates,
//! fails and comes back, and a hub that trusts its issuer by URL.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use ssehub::parse::Message;
use ssehub_server::{Config, Running};

const ISSUER: &str = "https://sso.test/realms/app";
const AUDIENCE: &str = "https://hub.test/mercure";
const TOPIC: &str = "https://example.com/books/1";
/// How long a test waits for something that should happen soon; generous,
/// as the machine may be busy.
const WAIT: Duration = Duration::from_secs(15);

fn key_file(name: &str) -> String {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// A private key of the test keys and the algorithm it signs with.
#[derive(Clone)]
struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
}

impl Signer {
    fn new(kid: &str, alg: Algorithm, file: &str) -> Self {
        let pem = key_file(file);
        let key = match alg {
            Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            other => panic!("no test key for {other:?}"),
        }
        .unwrap();
        Self {
            kid: kid.to_owned(),
            alg,
            key,
        }
    }

    fn rsa() -> Self {
        Self::new("rsa-1", Algorithm::RS256, "rsa-private.pem")
    }

    fn rsa2() -> Self {
        Self::new("rsa-2", Algorithm::RS256, "rsa2-private.pem")
    }

    /// The public JWK, with `kid`, and `alg` unless `with_alg` is false.
    fn jwk(&self, with_alg: bool) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        if !with_alg {
            jwk.common.key_algorithm = None;
        }
        serde_json::to_value(jwk).unwrap()
    }

    /// An access token granting publish and subscribe on every topic,
    /// naming `kid` (`None`: no `kid` header).
    fn token_with_kid(&self, kid: Option<&str>) -> String {
        let now = common::now();
        let claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "exp": now + 600,
            "authorization_details": common::everything(&["publish", "subscribe"]),
        });
        common::sign(&claims, self.alg, &self.key, kid)
    }

    fn token(&self) -> String {
        self.token_with_kid(Some(&self.kid))
    }
}

/// The identity provider's key endpoint: serves `keys` with
/// `cache_control`, or 503 while down; counts requests.
#[derive(Clone, Default)]
struct KeyServer {
    keys: Arc<Mutex<Vec<Value>>>,
    cache_control: Arc<Mutex<String>>,
    down: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl KeyServer {
    /// Serves `keys` at `http://127.0.0.1:PORT/certs`; returns that URL.
    async fn start(&self, keys: Vec<Value>, cache_control: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.router(keys, cache_control);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/certs")
    }

    /// Serves `keys` over TLS with a certificate for 127.0.0.1 issued by a
    /// throwaway CA; returns the URL and the CA's PEM file.
    async fn start_tls(&self, keys: Vec<Value>, cache_control: &str) -> (String, TempFile) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = TempFile::new(&certified.cert.pem());
        let key = TempFile::new(&certified.signing_key.serialize_pem());
        let acceptor = ssehub_server::tls::acceptor(&cert.0, &key.0).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.router(keys, cache_control);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        (format!("https://127.0.0.1:{}/certs", addr.port()), cert)
    }

    fn router(&self, keys: Vec<Value>, cache_control: &str) -> axum::Router {
        self.set(keys);
        *self.cache_control.lock().unwrap() = cache_control.to_owned();
        let state = self.clone();
        axum::Router::new().route(
            "/certs",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.requests.fetch_add(1, Ordering::SeqCst);
                    if state.down.load(Ordering::SeqCst) {
                        return (http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
                    }
                    let body = json!({ "keys": *state.keys.lock().unwrap() }).to_string();
                    let cache = state.cache_control.lock().unwrap().clone();
                    (
                        [
                            (
                                http::header::CONTENT_TYPE,
                                "application/jwk-set+json".to_owned(),
                            ),
                            (http::header::CACHE_CONTROL, cache),
                        ],
                        body,
                    )
                        .into_response()
                }
            }),
        )
    }

    fn set(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

use axum::response::IntoResponse as _;

/// A hub trusting `ISSUER` through the key set at `jwks` (`issuer_words`
/// are added to its `--issuer`), with `extra` flags.
async fn hub(jwks: &str, issuer_words: &str, extra: &[&str]) -> Running {
    let issuer = format!("{ISSUER} jwks={jwks} {issuer_words}");
    let mut args = vec![
        "ssehub",
        "--listen",
        "127.0.0.1:0",
        "--resource-identifier",
        AUDIENCE,
        "--issuer",
        &issuer,
    ];
    args.extend_from_slice(extra);
    ssehub_server::start(Config::parse_from(args))
        .await
        .unwrap()
}

async fn publish(hub: &Running, token: &str, data: &str) -> u16 {
    reqwest::Client::new()
        .post(hub.hub_url().to_string())
        .bearer_auth(token)
        .form(&[("topic", TOPIC), ("data", data)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn subscribe_status(hub: &Running, token: &str) -> u16 {
    let response = reqwest::Client::new()
        .get(hub.hub_url().to_string())
        .query(&[("match", TOPIC)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// A subscriber's parsed event stream.
struct Stream(common::Events);

impl Stream {
    async fn open(hub: &Running, token: &str) -> Self {
        let response = reqwest::Client::new()
            .get(hub.hub_url().to_string())
            .query(&[("match", TOPIC)])
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "subscribe");
        Self(common::Events::new(response, WAIT))
    }

    /// The next message, or `None` if the stream ends or is silent too long.
    async fn next(&mut self) -> Option<Message> {
        self.0.next().await
    }
}

async fn metrics(hub: &Running) -> String {
    let url = format!("http://{}/metrics", hub.local_addr());
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The value of the metric line starting with `prefix` (name and labels).
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Polls `/metrics` until `check` holds for the line `prefix`.
async fn wait_metric(hub: &Running, prefix: &str, check: impl Fn(f64) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = metrics(hub).await;
        if metric(&text, prefix).is_some_and(&check) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix} never satisfied the check:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn labels(jwks: &str) -> String {
    format!("issuer=\"{ISSUER}\",source=\"{jwks}\"")
}

#[tokio::test]
async fn keys_rotate_while_publishers_and_subscribers_keep_working() {
    let (old, new) = (Signer::rsa(), Signer::rsa2());
    let server = KeyServer::default();
    // A long cache lifetime: only unknown kids make the hub fetch again.
    let jwks = server.start(vec![old.jwk(true)], "max-age=3600").await;
    let hub = hub(&jwks, "", &["--jwks-refetch-interval", "1s"]).await;

    let mut subscriber = Stream::open(&hub, &old.token()).await;
    assert_eq!(publish(&hub, &old.token(), "before").await, 200);
    assert_eq!(subscriber.next().await.unwrap().data, "before");
    let fetched = server.requests();
    assert_eq!(fetched, 1, "one fetch at start");

    // Rotation: the new key is published, the old one removed.
    server.set(vec![new.jwk(true)]);
    // The new kid is unknown to the hub: its request fetches the set again
    // and goes through.
    assert_eq!(publish(&hub, &new.token(), "rotated").await, 200);
    assert_eq!(server.requests(), fetched + 1, "one early fetch");
    assert_eq!(subscriber.next().await.unwrap().data, "rotated");

    // The removed kid no longer verifies, for either role.
    assert_eq!(publish(&hub, &old.token(), "stale").await, 401);
    assert_eq!(subscribe_status(&hub, &old.token()).await, 401);
    // The subscriber connected with the old key stays connected.
    assert_eq!(publish(&hub, &new.token(), "after").await, 200);
    assert_eq!(subscriber.next().await.unwrap().data, "after");
    // New subscribers use the new key.
    let mut fresh = Stream::open(&hub, &new.token()).await;
    assert_eq!(publish(&hub, &new.token(), "both").await, 200);
    assert_eq!(fresh.next().await.unwrap().data, "both");
    assert_eq!(subscriber.next().await.unwrap().data, "both");

    let text = metrics(&hub).await;
    let ok = format!(
        "ssehub_jwks_refresh_total{{{},result=\"ok\"}}",
        labels(&jwks)
    );
    assert!(metric(&text, &ok).unwrap() >= 2.0, "{text}");
    let keys = format!("ssehub_jwks_keys{{{}}}", labels(&jwks));
    assert_eq!(metric(&text, &keys), Some(1.0), "{text}");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
    let signer = Signer::rsa();
    let server = KeyServer::default();
    let jwks = server.start(vec![signer.jwk(true)], "max-age=3600").await;
    let hub = hub(&jwks, "", &["--jwks-refetch-interval", "3s"]).await;
    assert_eq!(publish(&hub, &signer.token(), "warm").await, 200);
    let before = server.requests();

    let started = Instant::now();
    let flood = (0..40).map(|i| {
        let token = signer.token_with_kid(Some(&format!("unknown-{i}")));
        let hub = &hub;
        async move { publish(hub, &token, "flood").await }
    });
    let statuses = futures_util::future::join_all(flood).await;
    assert!(statuses.iter().all(|status| *status == 401), "{statuses:?}");
    // A second wave, sequential.
    for i in 0..20 {
        let token = signer.token_with_kid(Some(&format!("later-{i}")));
        assert_eq!(publish(&hub, &token, "flood").await, 401);
    }
    let elapsed = started.elapsed();
    let fetches = server.requests() - before;
    // One early fetch per started interval at most.
    let allowed = 1 + (elapsed.as_secs_f64() / 3.0) as usize;
    assert!(
        (1..=allowed).contains(&fetches),
        "{fetches} fetches for 60 unknown kids in {elapsed:?} (at most {allowed})"
    );
    // The known key still works throughout.
    assert_eq!(publish(&hub, &signer.token(), "still").await, 200);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_key_server_leaves_the_last_good_set_in_use() {
    let signer = Signer::rsa();
    let server = KeyServer::default();
    // Expires at once: the hub fetches again every --jwks-refresh-min.
    let jwks = server.start(vec![signer.jwk(true)], "max-age=0").await;
    let hub = hub(&jwks, "", &["--jwks-refresh-min", "1s"]).await;
    assert_eq!(publish(&hub, &signer.token(), "up").await, 200);

    server.down.store(true, Ordering::SeqCst);
    let error = format!(
        "ssehub_jwks_refresh_total{{{},result=\"error\"}}",
        labels(&jwks)
    );
    let text = wait_metric(&hub, &error, |n| n >= 1.0).await;
    let keys = format!("ssehub_jwks_keys{{{}}}", labels(&jwks));
    assert_eq!(metric(&text, &keys), Some(1.0), "{text}");
    let last = format!(
        "ssehub_jwks_last_success_timestamp_seconds{{{}}}",
        labels(&jwks)
    );
    assert!(metric(&text, &last).unwrap() > 0.0, "{text}");
    // The last good set still verifies.
    assert_eq!(publish(&hub, &signer.token(), "down").await, 200);
    assert_eq!(subscribe_status(&hub, &signer.token()).await, 200);

    // Back up: the hub fetches successfully again.
    server.down.store(false, Ordering::SeqCst);
    let ok = format!(
        "ssehub_jwks_refresh_total{{{},result=\"ok\"}}",
        labels(&jwks)
    );
    let oks = metric(&text, &ok).unwrap();
    wait_metric(&hub, &ok, |n| n > oks).await;
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_key_server_does_not_stop_the_start() {
    // Nothing listens on this port once the listener is dropped.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let jwks = format!("http://127.0.0.1:{port}/certs");
    let hub = hub(&jwks, "", &["--jwks-timeout", "1s"]).await;
    let started = Instant::now();
    assert_eq!(publish(&hub, &Signer::rsa().token(), "x").await, 401);
    assert!(started.elapsed() < WAIT, "the wait for a fetch is bounded");
    let error = format!(
        "ssehub_jwks_refresh_total{{{},result=\"error\"}}",
        labels(&jwks)
    );
    wait_metric(&hub, &error, |n| n >= 1.0).await;
    let health = reqwest::get(format!("http://{}/healthz", hub.local_addr()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_algorithm_outside_the_allowlist_is_refused() {
    let (rsa, ec) = (
        Signer::rsa(),
        Signer::new("ec-1", Algorithm::ES256, "ec256-private.pem"),
    );
    let server = KeyServer::default();
    let jwks = server
        .start(vec![rsa.jwk(true), ec.jwk(true)], "max-age=3600")
        .await;
    let hub = hub(&jwks, "algs=ES256", &[]).await;
    assert_eq!(publish(&hub, &ec.token(), "ec").await, 200);
    assert_eq!(publish(&hub, &rsa.token(), "rsa").await, 401);
    assert_eq!(subscribe_status(&hub, &rsa.token()).await, 401);
    let text = metrics(&hub).await;
    let keys = format!("ssehub_jwks_keys{{{}}}", labels(&jwks));
    assert_eq!(metric(&text, &keys), Some(1.0), "the RSA key is not held");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_key_type_verifies() {
    let signers = [
        Signer::new("rs", Algorithm::RS256, "rsa-private.pem"),
        Signer::new("ps", Algorithm::PS256, "rsa2-private.pem"),
        Signer::new("es256", Algorithm::ES256, "ec256-private.pem"),
        Signer::new("es384", Algorithm::ES384, "ec384-private.pem"),
        Signer::new("ed", Algorithm::EdDSA, "ed25519-private.pem"),
    ];
    // Half of them without `alg`: their type decides what they verify.
    let keys = signers
        .iter()
        .enumerate()
        .map(|(i, s)| s.jwk(i % 2 == 0))
        .collect();
    let server = KeyServer::default();
    let jwks = server.start(keys, "max-age=3600").await;
    let hub = hub(&jwks, "", &[]).await;
    for signer in &signers {
        assert_eq!(
            publish(&hub, &signer.token(), &signer.kid).await,
            200,
            "{:?}",
            signer.alg
        );
        assert_eq!(subscribe_status(&hub, &signer.token()).await, 200);
        // Without `kid`, the keys that suit the token's `alg` are tried.
        assert_eq!(
            publish(&hub, &signer.token_with_kid(None), "no kid").await,
            200
        );
    }
    // A key of the right type under the wrong kid does not verify.
    let forged = Signer::new("rs", Algorithm::RS256, "rsa2-private.pem");
    assert_eq!(publish(&hub, &forged.token(), "forged").await, 401);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_weak_rsa_key_in_the_set_is_not_used() {
    let weak = key_file("rsa1024-public.pem");
    let weak = jsonwebtoken::DecodingKey::from_rsa_pem(weak.as_bytes()).unwrap();
    let mut weak = Jwk::from_decoding_key(&weak, Some(Algorithm::RS256)).unwrap();
    weak.common.key_id = Some("weak".into());
    let signer = Signer::rsa();
    let server = KeyServer::default();
    let jwks = server
        .start(
            vec![serde_json::to_value(weak).unwrap(), signer.jwk(true)],
            "max-age=3600",
        )
        .await;
    let hub = hub(&jwks, "", &[]).await;
    assert_eq!(publish(&hub, &signer.token(), "strong").await, 200);
    let text = metrics(&hub).await;
    let keys = format!("ssehub_jwks_keys{{{}}}", labels(&jwks));
    assert_eq!(metric(&text, &keys), Some(1.0), "{text}");
    hub.shutdown().await.unwrap();
}

/// A file in the system's temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(content: &str) -> Self {
        let path = std::env::temp_dir().join(format!("ssehub-jwks-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }

    fn url(&self) -> String {
        format!("file://{}", self.0.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn a_file_key_set_works() {
    let signer = Signer::new("ed", Algorithm::EdDSA, "ed25519-private.pem");
    let file = TempFile::new(&json!({ "keys": [signer.jwk(true)] }).to_string());
    let hub = hub(&file.url(), "algs=EdDSA", &[]).await;
    assert_eq!(publish(&hub, &signer.token(), "from a file").await, 200);
    assert_eq!(publish(&hub, &Signer::rsa().token(), "other").await, 401);

    // The file is read again for an unknown kid.
    let next = Signer::new("ed-2", Algorithm::EdDSA, "ed25519-private.pem");
    std::fs::write(
        &file.0,
        json!({ "keys": [signer.jwk(true), next.jwk(true)] }).to_string(),
    )
    .unwrap();
    assert_eq!(publish(&hub, &next.token(), "reloaded").await, 200);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unparsable_file_key_set_stops_the_start_naming_the_flag() {
    let file = TempFile::new("{\"keys\": [oops");
    let issuer = format!("{ISSUER} jwks={}", file.url());
    let config = Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--issuer", &issuer]);
    let err = ssehub_server::start(config).await.unwrap_err().to_string();
    assert!(err.starts_with("--issuer"), "{err}");
    assert!(
        err.contains(ISSUER) && err.contains("not a JWK set"),
        "{err}"
    );

    let empty = TempFile::new("{\"keys\": []}");
    let issuer = format!("{ISSUER} jwks={}", empty.url());
    let config = Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--issuer", &issuer]);
    let err = ssehub_server::start(config).await.unwrap_err().to_string();
    assert!(err.contains("no usable signing key"), "{err}");

    let missing = format!("{ISSUER} jwks=file:///nonexistent/ssehub-jwks.json");
    let config = Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--issuer", &missing]);
    let err = ssehub_server::start(config).await.unwrap_err().to_string();
    assert!(
        err.contains("cannot read /nonexistent/ssehub-jwks.json"),
        "{err}"
    );
}

#[tokio::test]
async fn a_static_key_and_a_key_set_verify_side_by_side() {
    let rsa = Signer::rsa();
    let server = KeyServer::default();
    let jwks = server.start(vec![rsa.jwk(true)], "max-age=3600").await;
    let secret = "a-static-secret-of-at-least-32-bytes";
    let words = format!("publisher=HS256:{secret}");
    let hub = hub(&jwks, &words, &[]).await;
    // The set verifies its kid; the static key tokens without one.
    assert_eq!(publish(&hub, &rsa.token(), "set").await, 200);
    let static_signer = Signer {
        kid: String::new(),
        alg: Algorithm::HS256,
        key: EncodingKey::from_secret(secret.as_bytes()),
    };
    assert_eq!(
        publish(&hub, &static_signer.token_with_kid(None), "static").await,
        200
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_removed_key_stops_working_after_the_scheduled_refresh() {
    let (old, new) = (Signer::rsa(), Signer::rsa2());
    let server = KeyServer::default();
    // Expires at once: refreshed every --jwks-refresh-min.
    let jwks = server
        .start(vec![old.jwk(true), new.jwk(true)], "max-age=0")
        .await;
    let hub = hub(&jwks, "", &["--jwks-refresh-min", "1s"]).await;
    let mut subscriber = Stream::open(&hub, &old.token()).await;
    assert_eq!(publish(&hub, &old.token(), "old").await, 200);
    assert_eq!(subscriber.next().await.unwrap().data, "old");

    // The old key is withdrawn; no token names an unknown kid, so only the
    // schedule can notice.
    server.set(vec![new.jwk(true)]);
    let ok = format!(
        "ssehub_jwks_refresh_total{{{},result=\"ok\"}}",
        labels(&jwks)
    );
    let keys = format!("ssehub_jwks_keys{{{}}}", labels(&jwks));
    wait_metric(&hub, &keys, |n| n == 1.0).await;
    let oks = metric(&metrics(&hub).await, &ok).unwrap();
    assert!(oks >= 2.0, "refreshed on schedule");
    assert_eq!(publish(&hub, &old.token(), "withdrawn").await, 401);
    assert_eq!(subscribe_status(&hub, &old.token()).await, 401);
    // Its subscriber stays connected; the remaining key still works.
    assert_eq!(publish(&hub, &new.token(), "new").await, 200);
    assert_eq!(subscriber.next().await.unwrap().data, "new");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_https_key_set_behind_a_private_ca() {
    let signer = Signer::new("es", Algorithm::ES256, "ec256-private.pem");
    let server = KeyServer::default();
    let (jwks, ca) = server
        .start_tls(vec![signer.jwk(true)], "max-age=3600")
        .await;
    let ca_path = ca.0.to_str().unwrap().to_owned();
    let hub_with_ca = hub(&jwks, "", &["--jwks-tls-ca", &ca_path]).await;
    assert_eq!(publish(&hub_with_ca, &signer.token(), "tls").await, 200);
    hub_with_ca.shutdown().await.unwrap();

    // Without the CA the certificate is not trusted: the fetch fails and
    // the issuer's tokens are refused.
    let hub_without = hub(&jwks, "", &["--jwks-timeout", "2s"]).await;
    assert_eq!(
        publish(&hub_without, &signer.token(), "untrusted").await,
        401
    );
    let error = format!(
        "ssehub_jwks_refresh_total{{{},result=\"error\"}}",
        labels(&jwks)
    );
    wait_metric(&hub_without, &error, |n| n >= 1.0).await;
    hub_without.shutdown().await.unwrap();

    let config = Config::parse_from([
        "ssehub",
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        &format!("{ISSUER} jwks={jwks}"),
        "--jwks-tls-ca",
        "/nonexistent/ca.pem",
    ]);
    let err = ssehub_server::start(config).await.unwrap_err().to_string();
    assert!(
        err.starts_with("--jwks-tls-ca /nonexistent/ca.pem"),
        "{err}"
    );
}
