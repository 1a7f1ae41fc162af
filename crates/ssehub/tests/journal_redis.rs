//! The Redis journal against real Redis servers.
//!
//! Plain tests use the shared Redis at 127.0.0.1:6379, each on its own
//! random stream key, deleted at the end; nothing else there is touched.
//! Tests that stop, restart or configure Redis run a private
//! `redis-server` on a free port, killed at the end.
#![cfg(feature = "redis")]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ssehub::journal::{
    FollowFrom, FollowState, Follower, Journal, JournalError, JournalId, Offset, Record,
    RedisJournal, RedisJournalConfig, ReplayFrom,
};

const SHARED: &str = "redis://127.0.0.1:6379";
const PATIENCE: Duration = Duration::from_secs(20);

/// A stream key no other test (or process) uses.
fn unique_key() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "ssehub-test:journal:{}:{nanos}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes a test's keys on the shared Redis when dropped, even on panic.
struct Keys(String);

impl Keys {
    fn new() -> Self {
        Self(unique_key())
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Ok(mut conn) = redis::Client::open(SHARED).and_then(|c| c.get_connection()) {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(&self.0)
                .arg(format!("{{{}}}:meta", self.0))
                .query(&mut conn);
        }
    }
}

/// Short timings so that faults are noticed quickly.
fn config(url: &str, stream: &str) -> RedisJournalConfig {
    let mut config = RedisJournalConfig::new(url, stream);
    config.block = Duration::from_millis(300);
    config.timeout = Duration::from_secs(1);
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(200);
    config.retention.max_age = None;
    config
}

fn journal(url: &str, stream: &str) -> RedisJournal {
    RedisJournal::new(config(url, stream)).unwrap()
}

/// Everything a follower was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Record(JournalId, Bytes),
    Up,
    Down,
    Reset(u32),
    Gap,
}

/// A follower that records what it is told. With a gate, its first
/// `records` call stalls until the gate opens, like a node that is slow to
/// read.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    gate: Option<(Mutex<bool>, Condvar)>,
}

impl Follower for Recorder {
    fn records(&self, records: &[Record]) {
        let first = {
            let mut seen = self.seen.lock().unwrap();
            let first = !seen.iter().any(|s| matches!(s, Seen::Record(..)));
            seen.extend(records.iter().map(|r| Seen::Record(r.id, r.body.clone())));
            first
        };
        if let (true, Some((open, cond))) = (first, &self.gate) {
            // Blocking a runtime worker: hand its other tasks to another
            // thread first.
            tokio::task::block_in_place(|| {
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cond.wait(open).unwrap();
                }
            });
        }
    }

    fn state(&self, state: FollowState) {
        let seen = match state {
            FollowState::Up => Seen::Up,
            FollowState::Down(_) => Seen::Down,
            FollowState::Reset { epoch } => Seen::Reset(epoch),
            FollowState::Gap => Seen::Gap,
            other => panic!("unexpected state {other:?}"),
        };
        self.seen.lock().unwrap().push(seen);
    }
}

impl Recorder {
    fn gated() -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::default(),
            gate: Some((Mutex::new(false), Condvar::new())),
        })
    }

    fn open(&self) {
        if let Some((open, cond)) = &self.gate {
            *open.lock().unwrap() = true;
            cond.notify_all();
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<(JournalId, Bytes)> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Record(id, body) => Some((id, body)),
                _ => None,
            })
            .collect()
    }

    /// Waits until `done` holds for what was seen.
    async fn wait(&self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if done(&self.seen()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; seen: {:?}",
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_records(&self, count: usize) {
        self.wait(&format!("{count} records"), |seen| {
            seen.iter()
                .filter(|s| matches!(s, Seen::Record(..)))
                .count()
                >= count
        })
        .await;
    }
}

fn ids(records: &[(JournalId, Bytes)]) -> Vec<JournalId> {
    records.iter().map(|(id, _)| *id).collect()
}

fn bodies(records: &[Record]) -> Vec<Bytes> {
    records.iter().map(|r| r.body.clone()).collect()
}

async fn append_all(
    journal: &RedisJournal,
    bodies: impl IntoIterator<Item = String>,
) -> Vec<JournalId> {
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(journal.append(Bytes::from(body)).await.unwrap());
    }
    ids
}

fn strictly_increasing(ids: &[JournalId]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

/// A `redis-server` of this test's own, on a free port.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(unique_key().replace(':', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            port,
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        redis.spawn();
        redis
    }

    /// A plain listener on `port` (the default), or extra arguments.
    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        if !self.args.iter().any(|a| a == "--port") {
            command.args(["--port", &self.port.to_string()]);
        }
        command
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(command.spawn().expect("redis-server runs"));
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server without letting it save anything.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Appends `body` until Redis acknowledges it (Redis is coming back).
async fn append_eventually(journal: &RedisJournal, body: &str) -> JournalId {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match journal.append(Bytes::from(body.to_owned())).await {
            Ok(id) => return id,
            Err(err) => {
                assert!(Instant::now() < deadline, "append kept failing: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn appends_are_acknowledged_in_log_order_and_replayed() {
    let keys = Keys::new();
    let journal = journal(SHARED, &keys.0);
    journal.ready().await.unwrap();
    let acked = append_all(&journal, (0..5).map(|i| format!("r{i}"))).await;
    assert!(strictly_increasing(&acked));
    assert!(acked.iter().all(|id| id.epoch == acked[0].epoch));
    assert!(
        acked
            .iter()
            .all(|id| matches!(id.offset, Offset::Stream { .. }))
    );
    for id in &acked {
        assert_eq!(id.to_string().parse::<JournalId>(), Ok(*id));
    }
    let replay = journal.replay(ReplayFrom::Earliest, 100).await.unwrap();
    assert!(!replay.gap);
    assert_eq!(
        replay.records.iter().map(|r| r.id).collect::<Vec<_>>(),
        acked
    );
    assert_eq!(bodies(&replay.records), ["r0", "r1", "r2", "r3", "r4"]);
    assert_eq!(replay.head, Some(acked[4]));
    assert!(!replay.more());
}

#[tokio::test]
async fn replay_after_a_retained_id_pages_through_the_rest() {
    let keys = Keys::new();
    let journal = journal(SHARED, &keys.0);
    let acked = append_all(&journal, (0..5).map(|i| format!("r{i}"))).await;
    let page = journal
        .replay(ReplayFrom::After(acked[0]), 2)
        .await
        .unwrap();
    assert!(!page.gap);
    assert_eq!(bodies(&page.records), ["r1", "r2"]);
    assert!(page.more());
    let page = journal.replay(page.next_page().unwrap(), 2).await.unwrap();
    assert_eq!(bodies(&page.records), ["r3", "r4"]);
    assert!(!page.more());
    // After the latest: nothing, no gap; zero records still tell the rule.
    let page = journal
        .replay(ReplayFrom::After(acked[4]), 10)
        .await
        .unwrap();
    assert!(page.records.is_empty() && !page.gap);
    let page = journal
        .replay(ReplayFrom::After(acked[2]), 0)
        .await
        .unwrap();
    assert!(page.records.is_empty() && !page.gap);
}

#[tokio::test]
async fn replay_of_unknown_ids_is_a_gap_from_the_earliest() {
    let keys = Keys::new();
    let journal = journal(SHARED, &keys.0);
    let acked = append_all(&journal, ["a".into(), "b".into()]).await;
    let Offset::Stream { ms, seq } = acked[1].offset else {
        unreachable!()
    };
    let epoch = acked[0].epoch;
    let unknown = [
        // Another epoch.
        JournalId {
            epoch: epoch.wrapping_add(1),
            ..acked[0]
        },
        // Another engine's shape.
        JournalId {
            epoch,
            offset: Offset::Seq(1),
        },
        // Never issued: before, between and after the entries.
        JournalId {
            epoch,
            offset: Offset::Stream { ms: 0, seq: 0 },
        },
        JournalId {
            epoch,
            offset: Offset::Stream {
                ms,
                seq: seq + 1_000,
            },
        },
    ];
    for id in unknown {
        let replay = journal.replay(ReplayFrom::After(id), 10).await.unwrap();
        assert!(replay.gap, "{id}");
        assert_eq!(bodies(&replay.records), ["a", "b"], "{id}");
    }
}

#[tokio::test]
async fn trimmed_ids_are_a_gap_and_at_least_max_records_stay() {
    let keys = Keys::new();
    let mut config = config(SHARED, &keys.0);
    config.retention.max_records = 10;
    let journal = RedisJournal::new(config).unwrap();
    let acked = append_all(&journal, (0..400).map(|i| format!("r{i}"))).await;
    let retained = journal.replay(ReplayFrom::Earliest, 1000).await.unwrap();
    // Approximate trimming: at least 10, far fewer than 400.
    assert!(
        (10..400).contains(&retained.records.len()),
        "{}",
        retained.records.len()
    );
    assert_eq!(retained.records.last().unwrap().id, acked[399]);
    let after_first = journal
        .replay(ReplayFrom::After(acked[0]), 5)
        .await
        .unwrap();
    assert!(after_first.gap);
    assert_eq!(after_first.records[0].id, retained.records[0].id);
    let tail = journal
        .replay(ReplayFrom::After(acked[398]), 5)
        .await
        .unwrap();
    assert!(!tail.gap);
    assert_eq!(bodies(&tail.records), ["r399"]);
}

#[tokio::test]
async fn records_older_than_max_age_are_not_replayed() {
    let keys = Keys::new();
    let mut config = config(SHARED, &keys.0);
    config.retention.max_age = Some(Duration::from_millis(300));
    let journal = RedisJournal::new(config).unwrap();
    let old = append_all(&journal, ["a".into(), "b".into()]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new = append_all(&journal, ["c".into()]).await;
    let replay = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
    assert_eq!(bodies(&replay.records), ["c"]);
    let after_old = journal.replay(ReplayFrom::After(old[0]), 10).await.unwrap();
    assert!(after_old.gap);
    assert_eq!(bodies(&after_old.records), ["c"]);
    let after_new = journal.replay(ReplayFrom::After(new[0]), 10).await.unwrap();
    assert!(!after_new.gap && after_new.records.is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_and_not_stored() {
    let keys = Keys::new();
    let mut config = config(SHARED, &keys.0);
    config.max_body = 4;
    let journal = RedisJournal::new(config).unwrap();
    journal.append(Bytes::from("four")).await.unwrap();
    let err = journal.append(Bytes::from("fives")).await.unwrap_err();
    assert!(
        matches!(err, JournalError::TooLarge { size: 5, max: 4 }),
        "{err:?}"
    );
    let replay = journal.replay(ReplayFrom::Earliest, 10).await.unwrap();
    assert_eq!(bodies(&replay.records), ["four"]);
}

#[tokio::test]
async fn bodies_are_binary_safe() {
    let keys = Keys::new();
    let journal = journal(SHARED, &keys.0);
    let body = Bytes::from((0..=255u8).collect::<Vec<_>>());
    let follower = Arc::new(Recorder::default());
    let _following = journal.follow(FollowFrom::Latest, follower.clone());
    follower.wait("up", |s| s.contains(&Seen::Up)).await;
    let id = journal.append(body.clone()).await.unwrap();
    follower.wait_records(1).await;
    assert_eq!(follower.records(), [(id, body.clone())]);
    let replay = journal.replay(ReplayFrom::Earliest, 1).await.unwrap();
    assert_eq!(replay.records[0].body, body);
}

#[tokio::test]
async fn follow_from_now_delivers_later_records_once_in_order() {
    let keys = Keys::new();
    let journal = journal(SHARED, &keys.0);
    append_all(&journal, ["before".into()]).await;
    let follower = Arc::new(Recorder::default());
    let _following = journal.follow(FollowFrom::Latest, follower.clone());
    follower.wait("up", |s| s.contains(&Seen::Up)).await;
    let acked = append_all(&journal, (0..100).map(|i| format!("r{i}"))).await;
    follower.wait_records(100).await;
    let seen = follower.seen();
    assert_eq!(seen[0], Seen::Up);
    assert_eq!(ids(&follower.records()), acked);
    assert!(!seen.contains(&Seen::Gap), "{seen:?}");
    // Nothing more arrives (the last record was the last one appended).
    let sentinel = journal.append(Bytes::from("sentinel")).await.unwrap();
    follower.wait_records(101).await;
    assert_eq!(follower.records().last().unwrap().0, sentinel);
    assert_eq!(follower.records().len(), 101);
}

#[tokio::test]
async fn follow_from_an_id_catches_up_then_goes_live() {
    let keys = Keys::new();
    let mut config = config(SHARED, &keys.0);
    // Catching up takes several reads.
    config.batch = 3;
    let journal = RedisJournal::new(config).unwrap();
    let acked = append_all(&journal, (0..10).map(|i| format!("r{i}"))).await;
    let follower = Arc::new(Recorder::default());
    let _following = journal.follow(FollowFrom::After(acked[1]), follower.clone());
    follower.wait_records(8).await;
    let live = journal.append(Bytes::from("live")).await.unwrap();
    follower.wait_records(9).await;
    let seen = follower.seen();
    assert_eq!(seen[0], Seen::Up);
    assert!(!seen.contains(&Seen::Gap), "{seen:?}");
    let mut expected = acked[2..].to_vec();
    expected.push(live);
    assert_eq!(ids(&follower.records()), expected);
}

#[tokio::test]
async fn follow_from_an_unknown_id_tells_the_gap_then_the_earliest() {
    let keys = Keys::new();
    let journal = journal(SHARED, &keys.0);
    let acked = append_all(&journal, ["a".into(), "b".into()]).await;
    let stale = JournalId {
        epoch: acked[0].epoch.wrapping_add(1),
        ..acked[0]
    };
    let follower = Arc::new(Recorder::default());
    let _following = journal.follow(FollowFrom::After(stale), follower.clone());
    follower.wait_records(2).await;
    let seen = follower.seen();
    assert_eq!(seen[..2], [Seen::Up, Seen::Gap]);
    assert_eq!(ids(&follower.records()), acked);
}

#[tokio::test]
async fn dropping_following_stops_delivery() {
    let keys = Keys::new();
    let journal = journal(SHARED, &keys.0);
    let stopped = Arc::new(Recorder::default());
    let kept = Arc::new(Recorder::default());
    let following = journal.follow(FollowFrom::Latest, stopped.clone());
    let _kept = journal.follow(FollowFrom::Latest, kept.clone());
    stopped.wait("up", |s| s.contains(&Seen::Up)).await;
    kept.wait("up", |s| s.contains(&Seen::Up)).await;
    journal.append(Bytes::from("seen")).await.unwrap();
    stopped.wait_records(1).await;
    drop(following);
    journal.append(Bytes::from("unseen")).await.unwrap();
    journal.append(Bytes::from("sentinel")).await.unwrap();
    kept.wait_records(3).await;
    assert_eq!(stopped.records().len(), 1);
}

/// A node that reads slower than the others append, past the retention,
/// is told of the gap instead of silently skipping records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_falls_behind_the_retention_is_told_of_the_gap() {
    let keys = Keys::new();
    let mut config = config(SHARED, &keys.0);
    config.retention.max_records = 1;
    let journal = RedisJournal::new(config).unwrap();
    let follower = Recorder::gated();
    let _following = journal.follow(FollowFrom::Latest, follower.clone());
    follower.wait("up", |s| s.contains(&Seen::Up)).await;
    let first = journal.append(Bytes::from("first")).await.unwrap();
    // The follower now stalls inside its first delivery.
    follower.wait_records(1).await;
    let acked = append_all(&journal, (0..1000).map(|i| format!("r{i}"))).await;
    follower.open();
    follower
        .wait("the last record", |seen| {
            seen.last() == Some(&Seen::Record(acked[999], Bytes::from("r999")))
        })
        .await;
    let seen = follower.seen();
    assert_eq!(
        seen[..2],
        [Seen::Up, Seen::Record(first, Bytes::from("first"))]
    );
    assert_eq!(seen[2], Seen::Gap, "{:?}", &seen[..5]);
    assert_eq!(seen.iter().filter(|s| **s == Seen::Gap).count(), 1);
    let delivered = ids(&follower.records());
    assert!(delivered.len() < 1001);
    assert!(strictly_increasing(&delivered));
    // What follows the gap is a contiguous tail of what was appended.
    let tail = &delivered[1..];
    let start = acked.iter().position(|id| *id == tail[0]).unwrap();
    assert_eq!(tail, &acked[start..]);
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_and_down() {
    // Nothing listens on port 1.
    let journal = journal("redis://127.0.0.1:1", &unique_key());
    let err = journal.ready().await.unwrap_err();
    assert!(matches!(err, JournalError::Unavailable(_)), "{err:?}");
    let err = journal.append(Bytes::from("x")).await.unwrap_err();
    assert!(matches!(err, JournalError::Unavailable(_)), "{err:?}");
    let err = journal.replay(ReplayFrom::Earliest, 1).await.unwrap_err();
    assert!(matches!(err, JournalError::Unavailable(_)), "{err:?}");
    let follower = Arc::new(Recorder::default());
    let _following = journal.follow(FollowFrom::Latest, follower.clone());
    follower.wait("down", |s| !s.is_empty()).await;
    assert_eq!(follower.seen()[0], Seen::Down);
}

#[tokio::test]
async fn a_key_of_another_type_is_an_engine_error() {
    let keys = Keys::new();
    let mut conn = redis::Client::open(SHARED)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let meta = format!("{{{}}}:meta", keys.0);
    let () = redis::cmd("SET")
        .arg(&meta)
        .arg("not a hash")
        .query_async(&mut conn)
        .await
        .unwrap();
    let journal = journal(SHARED, &keys.0);
    let err = journal.append(Bytes::from("x")).await.unwrap_err();
    assert!(matches!(err, JournalError::Engine(_)), "{err:?}");
    assert!(matches!(
        journal.ready().await,
        Err(JournalError::Engine(_))
    ));
}

#[tokio::test]
async fn configurations_that_cannot_work_are_refused() {
    for (url, stream) in [("http://127.0.0.1", "s"), ("redis://127.0.0.1", "")] {
        let err = RedisJournal::new(RedisJournalConfig::new(url, stream)).unwrap_err();
        assert!(
            matches!(err, JournalError::Config(_)),
            "{url} {stream}: {err:?}"
        );
    }
    let mut config = RedisJournalConfig::new(SHARED, "s");
    config.retention.max_records = 0;
    assert!(matches!(
        RedisJournal::new(config),
        Err(JournalError::Config(_))
    ));
}

#[test]
fn creating_one_outside_a_runtime_is_an_error_not_a_panic() {
    let err = RedisJournal::new(RedisJournalConfig::new(SHARED, "s")).unwrap_err();
    assert!(matches!(err, JournalError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn a_password_in_the_url_authenticates() {
    let redis = PrivateRedis::start(&["--requirepass", "s3cret"]);
    let good = journal(
        &format!("redis://:s3cret@127.0.0.1:{}", redis.port),
        "journal",
    );
    good.ready().await.unwrap();
    let id = good.append(Bytes::from("x")).await.unwrap();
    let replay = good.replay(ReplayFrom::Earliest, 10).await.unwrap();
    assert_eq!(replay.records[0].id, id);
    let bad = journal(
        &format!("redis://:wrong@127.0.0.1:{}", redis.port),
        "journal",
    );
    assert!(bad.ready().await.is_err());
    assert!(bad.append(Bytes::from("y")).await.is_err());
    let anonymous = journal(&redis.url(), "journal");
    assert!(anonymous.append(Bytes::from("z")).await.is_err());
    assert_eq!(
        good.replay(ReplayFrom::Earliest, 10)
            .await
            .unwrap()
            .records
            .len(),
        1
    );
}

#[tokio::test]
async fn rediss_verifies_the_server_against_the_given_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &Issuer::new(ca_params, &ca_key))
        .unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let files = std::env::temp_dir().join(unique_key().replace(':', "-") + "-tls");
    std::fs::create_dir_all(&files).unwrap();
    let path = |name: &str| files.join(name).to_str().unwrap().to_owned();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("server.pem"), server.pem()).unwrap();
    std::fs::write(path("server.key"), server_key.serialize_pem()).unwrap();
    let mut redis = PrivateRedis {
        port,
        dir: files.clone(),
        args: vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path("server.pem"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ],
        child: None,
    };
    redis.spawn();

    let url = format!("rediss://127.0.0.1:{port}");
    let mut config = config(&url, "journal");
    config.tls_root_cert = Some(ca.pem().into_bytes());
    let journal = RedisJournal::new(config).unwrap();
    journal.ready().await.unwrap();
    let follower = Arc::new(Recorder::default());
    let _following = journal.follow(FollowFrom::Latest, follower.clone());
    follower.wait("up", |s| s.contains(&Seen::Up)).await;
    let id = journal.append(Bytes::from("over tls")).await.unwrap();
    follower.wait_records(1).await;
    assert_eq!(follower.records(), [(id, Bytes::from("over tls"))]);

    // Without the CA the server is not trusted; over plain TCP it is not
    // understood.
    assert!(
        RedisJournal::new(crate::config(&url, "journal"))
            .unwrap()
            .ready()
            .await
            .is_err()
    );
    let plain = crate::config(&format!("redis://127.0.0.1:{port}"), "journal");
    assert!(RedisJournal::new(plain).unwrap().ready().await.is_err());
}

/// Fault (a): Redis goes away and comes back with its data (AOF).
#[tokio::test]
async fn followers_resume_exactly_when_redis_comes_back_with_its_data() {
    let mut redis = PrivateRedis::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    // The reader retries slowly, so the records appended right after
    // Redis returns are stored before it reconnects: it must read them
    // from its last position, not from "now".
    let mut config = config(&redis.url(), "journal");
    config.reconnect_min = Duration::from_secs(1);
    config.reconnect_max = Duration::from_secs(1);
    let journal = RedisJournal::new(config).unwrap();
    let follower = Arc::new(Recorder::default());
    let _following = journal.follow(FollowFrom::Latest, follower.clone());
    follower.wait("up", |s| s.contains(&Seen::Up)).await;
    let mut acked = append_all(&journal, (0..5).map(|i| format!("before{i}"))).await;
    follower.wait_records(5).await;

    redis.kill();
    follower.wait("down", |s| s.contains(&Seen::Down)).await;
    let err = journal.append(Bytes::from("lost")).await.unwrap_err();
    assert!(matches!(err, JournalError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        journal.ready().await,
        Err(JournalError::Unavailable(_))
    ));

    redis.spawn();
    for i in 0..5 {
        acked.push(append_eventually(&journal, &format!("after{i}")).await);
    }
    follower.wait_records(10).await;
    let seen = follower.seen();
    let down = seen.iter().position(|s| *s == Seen::Down).unwrap();
    assert_eq!(seen[down + 1], Seen::Up, "{seen:?}");

    let seen = follower.seen();
    assert!(
        !seen.iter().any(|s| matches!(s, Seen::Reset(_) | Seen::Gap)),
        "{seen:?}"
    );
    assert_eq!(ids(&follower.records()), acked);
    assert!(acked.iter().all(|id| id.epoch == acked[0].epoch));
    let replay = journal.replay(ReplayFrom::Earliest, 100).await.unwrap();
    assert_eq!(
        replay.records.iter().map(|r| r.id).collect::<Vec<_>>(),
        acked
    );
    let resumed = journal
        .replay(ReplayFrom::After(acked[4]), 100)
        .await
        .unwrap();
    assert!(!resumed.gap);
    assert_eq!(
        resumed.records.iter().map(|r| r.id).collect::<Vec<_>>(),
        acked[5..]
    );
}

/// Fault (b): Redis comes back empty (no persistence): a new epoch.
#[tokio::test]
async fn a_redis_restarted_empty_is_a_new_epoch_and_old_ids_are_a_gap() {
    let mut redis = PrivateRedis::start(&["--appendonly", "no"]);
    let journal = journal(&redis.url(), "journal");
    let follower = Arc::new(Recorder::default());
    let _following = journal.follow(FollowFrom::Latest, follower.clone());
    follower.wait("up", |s| s.contains(&Seen::Up)).await;
    let old = append_all(&journal, (0..3).map(|i| format!("old{i}"))).await;
    follower.wait_records(3).await;

    redis.kill();
    follower.wait("down", |s| s.contains(&Seen::Down)).await;
    redis.spawn();
    follower
        .wait("reset then up", |s| {
            let Some(reset) = s.iter().position(|s| matches!(s, Seen::Reset(_))) else {
                return false;
            };
            s[reset..].contains(&Seen::Up)
        })
        .await;
    let seen = follower.seen();
    let Some(Seen::Reset(epoch)) = seen.iter().find(|s| matches!(s, Seen::Reset(_))).cloned()
    else {
        unreachable!()
    };
    assert_ne!(epoch, old[0].epoch);

    let new = append_eventually(&journal, "new").await;
    assert_eq!(new.epoch, epoch);
    follower.wait_records(4).await;
    let seen = follower.seen();
    let reset = seen.iter().position(|s| *s == Seen::Reset(epoch)).unwrap();
    assert_eq!(seen.last(), Some(&Seen::Record(new, Bytes::from("new"))));
    assert!(
        seen[..reset]
            .iter()
            .all(|s| !matches!(s, Seen::Record(id, _) if id.epoch == epoch))
    );
    assert_eq!(ids(&follower.records()), [&old[..], &[new]].concat());

    let resumed = journal.replay(ReplayFrom::After(old[2]), 10).await.unwrap();
    assert!(resumed.gap);
    assert_eq!(bodies(&resumed.records), ["new"]);
    assert_eq!(resumed.head, Some(new));
}

/// Fault (c): two nodes on one stream, appending at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_all_records_in_one_total_order() {
    let keys = Keys::new();
    let nodes = [journal(SHARED, &keys.0), journal(SHARED, &keys.0)];
    let followers = [Arc::new(Recorder::default()), Arc::new(Recorder::default())];
    let _following: Vec<_> = nodes
        .iter()
        .zip(&followers)
        .map(|(node, follower)| node.follow(FollowFrom::Latest, follower.clone()))
        .collect();
    for follower in &followers {
        follower.wait("up", |s| s.contains(&Seen::Up)).await;
    }
    let (a, b) = tokio::join!(
        append_all(&nodes[0], (0..150).map(|i| format!("a{i}"))),
        append_all(&nodes[1], (0..150).map(|i| format!("b{i}"))),
    );
    for follower in &followers {
        follower.wait_records(300).await;
    }
    let seen = followers[0].records();
    assert_eq!(seen, followers[1].records());
    assert_eq!(seen.len(), 300);
    let order = ids(&seen);
    assert!(strictly_increasing(&order));
    let mut acked = [a.clone(), b.clone()].concat();
    acked.sort();
    assert_eq!(order, acked);
    // Each node's records in the order it appended them.
    for (node, prefix) in [(&a, "a"), (&b, "b")] {
        let mine: Vec<JournalId> = seen
            .iter()
            .filter(|(_, body)| body.starts_with(prefix.as_bytes()))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(&mine, node);
    }
    // The two nodes share one epoch.
    assert!(order.iter().all(|id| id.epoch == order[0].epoch));
}
