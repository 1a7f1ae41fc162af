//! The `ssehub` binary as the README runs it: development mode by default
//! on loopback, tokens printed, a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Hub {
    child: Child,
    lines: Vec<String>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and reads its stdout up to the subscriber token.
fn start(args: &[&str]) -> Hub {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssehub"))
        .args(args)
        .env_remove("SSEHUB_JWT_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(6)
        .map(Result::unwrap)
        .collect();
    Hub { child, lines }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn without_a_key_on_loopback_it_runs_in_development_mode() {
    let mut hub = start(&["--listen", "127.0.0.1:0", "--drain", "100ms"]);
    let base = hub.lines[0]
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{:?}", hub.lines);
    assert!(
        hub.lines[1].starts_with("development mode"),
        "{:?}",
        hub.lines
    );
    let publisher = hub.lines[3].clone();
    let http = reqwest::Client::new();

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("EventSource"));

    // Anonymous subscribing works in development mode; the printed token publishes.
    let mut sub = http
        .get(format!("{base}/.well-known/mercure?match=demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status(), 200);
    let id = http
        .post(format!("{base}/.well-known/mercure"))
        .bearer_auth(&publisher)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=demo&data=hello")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("data: hello") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), sub.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(&format!("id: {id}")), "{seen}");

    // SIGTERM: the stream ends and the process exits cleanly.
    sigterm(&hub.child);
    let started = Instant::now();
    // Read to the end of the stream (each read bounded).
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(10), sub.chunk())
        .await
        .unwrap()
    {}
    let status = loop {
        if let Some(status) = hub.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn without_a_key_elsewhere_it_refuses_to_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_ssehub"))
        .args(["--listen", "0.0.0.0:0"])
        .env_remove("SSEHUB_JWT_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no JWT key configured"), "{stderr}");
}
