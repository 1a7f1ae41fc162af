//! Presence: the subscriptions every hub node serves, kept in a Redis that
//! the nodes share, so that any node's subscription API lists them all.
//!
//! # Layout
//!
//! For a prefix `P` and a node name `N` (unique per running process):
//!
//! - The hash `P:presence:N`: one field per active subscription of `N`,
//!   named by the subscription's id (its topic and API path, which starts
//!   with `/`), whose value is its JSON document. One more field, the empty
//!   name (no id is empty), holds `N` itself, so the hash exists as long as
//!   the node is alive, with or without subscriptions: a missing hash means
//!   it expired or Redis lost it, and the node writes it anew. Its expiry
//!   is the TTL, renewed by a heartbeat every TTL/3.
//! - The sorted set `P:presence-nodes`: member `N`, scored with the time
//!   its hash expires, in milliseconds of Redis' own clock (`TIME`), so the
//!   nodes' clocks need not agree. Heartbeats and reads drop the members
//!   past their score; the set itself expires with its latest member.
//!
//! A node that stops cleanly deletes its hash and its member; one that
//! crashes stops renewing them, and both are gone after the TTL.
//!
//! # Writing
//!
//! Changes are sent, without blocking, over a channel to one writer task
//! per node, which applies them in order to its own copy of the node's
//! entries (the local truth) and then to Redis, batched: each batch is one
//! script that first checks that the hash still exists. While Redis is
//! unreachable, or after the hash was found missing, the writer keeps the
//! local truth and retries with backoff; when Redis answers again it
//! rewrites the whole hash in one script, so nothing is lost and readers
//! never see half of it.
//!
//! # Reading
//!
//! A read prunes and lists the live nodes (one script), then reads the
//! other nodes' hashes in one pipeline. The node's own entries are not read
//! back: the caller answers them from memory.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RetryMethod, Script};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The shortest TTL: a heartbeat (TTL/3) must fit a Redis round trip with
/// room to spare.
pub(crate) const MIN_TTL: Duration = Duration::from_millis(150);

/// Changes applied to Redis in one script call, at most.
const BATCH: usize = 512;

/// The first retry after a failure; retries double up to the heartbeat.
const RETRY_MIN: Duration = Duration::from_millis(20);

/// The name of the field that keeps the hash alive; no subscription id is
/// empty.
const SENTINEL: &str = "";

/// Sets `now` (ms, Redis' clock), scores node `ARGV[2]` with `now + TTL`
/// (`ARGV[1]`, ms) in `KEYS[2]`, drops the members past their score and
/// lets the set expire with its latest member.
const ANNOUNCE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[2], math.floor(tonumber(last[2])))
end
";

/// Rewrites the node's hash `KEYS[1]` from the pairs in `ARGV[3..]`.
const SYNC: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '', ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
";

/// Renews the hash; 0 when it is gone (it must then be rewritten).
const BEAT: &str = r"
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then
  return 0
end
";

/// Applies `s field value` and `d field` changes to an existing hash; 0,
/// changing nothing, when the hash is gone.
const WRITE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local i = 1
while i <= #ARGV do
  if ARGV[i] == 's' then
    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    redis.call('HDEL', KEYS[1], ARGV[i + 1])
    i = i + 2
  end
end
return 1
";

/// Drops the members of `KEYS[1]` past their score and lists the rest.
const LIVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// Why the registry of active subscriptions shared through Redis could not
/// be set up or read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PresenceError {
    /// A prefix, node name or TTL that cannot work, or no Tokio runtime.
    #[error("presence configuration: {0}")]
    Config(#[from] PresenceConfigError),
    /// Redis is unreachable or did not answer in time; try again shortly.
    #[error("presence registry unavailable: {0}")]
    Unavailable(#[source] RedisError),
    /// Redis answered with an error that retrying does not cure (a key of
    /// another type, a refused command).
    #[error("presence registry error: {0}")]
    Engine(#[source] RedisError),
}

/// Why the shared registry cannot be set up as asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PresenceConfigError {
    /// An empty key prefix.
    #[error("the key prefix is empty")]
    EmptyPrefix,
    /// An empty node name.
    #[error("the node name is empty")]
    EmptyNode,
    /// Entries that would expire before a heartbeat could renew them.
    #[error("the presence TTL {0:?} is under {MIN_TTL:?}")]
    ShortTtl(Duration),
    /// More milliseconds than Redis takes.
    #[error("the presence TTL {0:?} is too long")]
    LongTtl(Duration),
    /// Set up outside a Tokio runtime, which its writer needs.
    #[error("presence is set up within a Tokio runtime")]
    NoRuntime,
    /// The Redis connection manager refused the client.
    #[error("Redis connection: {0}")]
    Connection(#[source] RedisError),
}

impl From<RedisError> for PresenceError {
    fn from(err: RedisError) -> Self {
        if matches!(err.retry_method(), RetryMethod::NoRetry) {
            Self::Engine(err)
        } else {
            Self::Unavailable(err)
        }
    }
}

/// Which of the other nodes' entries a read wants.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fetch<'a> {
    /// Every entry.
    All,
    /// The entries whose id starts with this.
    Prefix(&'a str),
    /// The entry of this id.
    One(&'a str),
}

/// What the writer is told.
enum Command {
    /// Entries (id, JSON document) to add or replace.
    Set(Vec<(String, String)>),
    /// Ids to remove.
    Delete(Vec<String>),
    /// Delete the node's entries, answer, and stop.
    Shutdown(oneshot::Sender<Result<(), PresenceError>>),
}

/// One node's presence in a shared Redis.
pub(crate) struct RedisPresence {
    node: Arc<str>,
    prefix: Arc<str>,
    nodes_key: String,
    manager: ConnectionManager,
    live: Script,
    commands: mpsc::UnboundedSender<Command>,
    writer: AbortHandle,
}

impl fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPresence")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A node's hash.
fn node_key(prefix: &str, node: &str) -> String {
    format!("{prefix}:presence:{node}")
}

/// The set of live nodes.
fn nodes_key(prefix: &str) -> String {
    format!("{prefix}:presence-nodes")
}

impl RedisPresence {
    /// Presence of node `node` under `prefix`, whose entries expire `ttl`
    /// after its last heartbeat. Starts the writer, which registers the
    /// node as soon as Redis answers; nothing is contacted before.
    ///
    /// # Errors
    /// [`PresenceError::Config`] for an empty prefix or node name, a TTL
    /// under [`MIN_TTL`], or no Tokio runtime.
    pub fn new(
        client: Client,
        prefix: &str,
        node: &str,
        ttl: Duration,
    ) -> Result<Self, PresenceError> {
        if prefix.is_empty() {
            return Err(PresenceConfigError::EmptyPrefix.into());
        }
        if node.is_empty() {
            return Err(PresenceConfigError::EmptyNode.into());
        }
        if ttl < MIN_TTL {
            return Err(PresenceConfigError::ShortTtl(ttl).into());
        }
        let ttl_ms =
            u64::try_from(ttl.as_millis()).map_err(|_| PresenceConfigError::LongTtl(ttl))?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| PresenceConfigError::NoRuntime)?;
        // A heartbeat, and any request, ends within TTL/3, so a heartbeat
        // that waits its full timeout still lands before the entries
        // expire; past that, readers answer 503 and the writer retries.
        let heartbeat = ttl / 3;
        let timeout = heartbeat.min(Duration::from_secs(2));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(RETRY_MIN)
            .set_max_delay(timeout);
        let manager = {
            // The manager spawns its own tasks on the current runtime.
            let _entered = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config)
                .map_err(PresenceConfigError::Connection)?
        };
        let node: Arc<str> = node.into();
        let (commands, receiver) = mpsc::unbounded_channel();
        let writer = Writer {
            manager: manager.clone(),
            hash: node_key(prefix, &node),
            nodes: nodes_key(prefix),
            node: node.clone(),
            ttl_ms,
            heartbeat,
            local: HashMap::new(),
            sync: Script::new(&format!("{SYNC}{ANNOUNCE}return 1")),
            beat: Script::new(&format!("{BEAT}{ANNOUNCE}return 1")),
            write: Script::new(WRITE),
        };
        let writer = runtime.spawn(writer.run(receiver)).abort_handle();
        Ok(Self {
            node,
            prefix: prefix.into(),
            nodes_key: nodes_key(prefix),
            manager,
            live: Script::new(LIVE),
            commands,
            writer,
        })
    }

    /// Adds or replaces entries (id, JSON document). Never blocks.
    pub fn set(&self, entries: Vec<(String, String)>) {
        // Fails only once the writer has stopped (after `shutdown`): the
        // node has left, and its entries are no longer shared.
        let _ = self.commands.send(Command::Set(entries));
    }

    /// Removes entries by id. Never blocks.
    pub fn delete(&self, ids: Vec<String>) {
        let _ = self.commands.send(Command::Delete(ids));
    }

    /// The JSON documents of the other live nodes' entries that `fetch`
    /// selects, in no particular order.
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] while Redis is unreachable,
    /// [`PresenceError::Engine`] when it refuses the reads.
    pub async fn others(&self, fetch: Fetch<'_>) -> Result<Vec<Vec<u8>>, PresenceError> {
        let mut conn = self.manager.clone();
        let nodes: Vec<String> = self
            .live
            .key(&self.nodes_key)
            .invoke_async(&mut conn)
            .await?;
        let keys: Vec<String> = nodes
            .iter()
            .filter(|node| node.as_str() != &*self.node)
            .map(|node| node_key(&self.prefix, node))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        if let Fetch::One(id) = fetch {
            for key in &keys {
                pipe.cmd("HGET").arg(key).arg(id);
            }
            let found: Vec<Option<Vec<u8>>> = pipe.query_async(&mut conn).await?;
            return Ok(found.into_iter().flatten().collect());
        }
        for key in &keys {
            pipe.cmd("HGETALL").arg(key);
        }
        let hashes: Vec<HashMap<Vec<u8>, Vec<u8>>> = pipe.query_async(&mut conn).await?;
        let wanted = |id: &[u8]| match fetch {
            Fetch::Prefix(prefix) => id.starts_with(prefix.as_bytes()),
            _ => id != SENTINEL.as_bytes(),
        };
        Ok(hashes
            .into_iter()
            .flatten()
            .filter(|(id, _)| wanted(id))
            .map(|(_, document)| document)
            .collect())
    }

    /// Leaves cleanly: deletes this node's entries from Redis (after the
    /// changes sent before) and stops the writer. Later changes stay
    /// local. Idempotent.
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] (or `Engine`) when Redis could not
    /// delete them; they then expire after the TTL.
    pub async fn shutdown(&self) -> Result<(), PresenceError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Shutdown(reply)).is_err() {
            return Ok(());
        }
        // A writer that stopped without answering has already left.
        answer.await.unwrap_or(Ok(()))
    }
}

impl Drop for RedisPresence {
    /// Stops the writer at once, as a crash would: the entries expire
    /// after the TTL. Use [`RedisPresence::shutdown`] to leave cleanly.
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// The writer task: the node's local truth and its copy in Redis.
struct Writer {
    manager: ConnectionManager,
    hash: String,
    nodes: String,
    node: Arc<str>,
    ttl_ms: u64,
    heartbeat: Duration,
    /// Every entry of this node: what Redis should hold.
    local: HashMap<String, String>,
    sync: Script,
    beat: Script,
    write: Script,
}

impl Writer {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // Whether Redis holds the local truth (as of the last write).
        let mut synced = false;
        let mut reported_down = false;
        let mut backoff = RETRY_MIN;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else {
                        // The registry was dropped without a clean stop.
                        return;
                    };
                    let mut touched = BTreeSet::new();
                    let mut shutdown = self.take(command, &mut touched);
                    while shutdown.is_none() && touched.len() < BATCH {
                        match commands.try_recv() {
                            Ok(command) => shutdown = self.take(command, &mut touched),
                            Err(_) => break,
                        }
                    }
                    if let Some(reply) = shutdown {
                        let _ = reply.send(self.leave().await);
                        return;
                    }
                    if synced && !touched.is_empty() {
                        match self.write(&touched).await {
                            Ok(true) => {}
                            Ok(false) => {
                                // The hash expired or Redis lost it: write
                                // it whole, now.
                                synced = false;
                                next = Instant::now();
                            }
                            Err(err) => {
                                report_down(&mut reported_down, &err);
                                synced = false;
                                backoff = RETRY_MIN;
                                next = Instant::now() + backoff;
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(next) => {
                    let outcome = if synced {
                        self.beat().await
                    } else {
                        self.sync().await.map(|()| true)
                    };
                    match outcome {
                        Ok(true) => {
                            if !synced && reported_down {
                                tracing::info!(node = %self.node, entries = self.local.len(), "presence written to Redis again");
                            }
                            synced = true;
                            reported_down = false;
                            backoff = RETRY_MIN;
                            next = Instant::now() + self.heartbeat;
                        }
                        Ok(false) => {
                            synced = false;
                            next = Instant::now();
                        }
                        Err(err) => {
                            report_down(&mut reported_down, &err);
                            synced = false;
                            next = Instant::now() + backoff;
                            backoff = (backoff * 2).min(self.heartbeat);
                        }
                    }
                }
            }
        }
    }

    /// Applies a command to the local truth, noting the ids it changed;
    /// a shutdown is handed back.
    fn take(
        &mut self,
        command: Command,
        touched: &mut BTreeSet<String>,
    ) -> Option<oneshot::Sender<Result<(), PresenceError>>> {
        match command {
            Command::Set(entries) => {
                for (id, document) in entries {
                    touched.insert(id.clone());
                    self.local.insert(id, document);
                }
            }
            Command::Delete(ids) => {
                for id in ids {
                    self.local.remove(&id);
                    touched.insert(id);
                }
            }
            Command::Shutdown(reply) => return Some(reply),
        }
        None
    }

    /// Writes the current state of the `touched` ids; `false` when the
    /// hash is gone.
    async fn write(&mut self, touched: &BTreeSet<String>) -> Result<bool, PresenceError> {
        let ids: Vec<&String> = touched.iter().collect();
        for chunk in ids.chunks(BATCH) {
            let mut invocation = self.write.key(&self.hash);
            for id in chunk {
                match self.local.get(*id) {
                    Some(document) => invocation.arg("s").arg(*id).arg(document),
                    None => invocation.arg("d").arg(*id),
                };
            }
            let present: i64 = invocation.invoke_async(&mut self.manager).await?;
            if present == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Rewrites the whole hash and announces the node.
    async fn sync(&mut self) -> Result<(), PresenceError> {
        let mut invocation = self.sync.key(&self.hash);
        invocation
            .key(&self.nodes)
            .arg(self.ttl_ms)
            .arg(&*self.node);
        for (id, document) in &self.local {
            invocation.arg(id).arg(document);
        }
        let _: i64 = invocation.invoke_async(&mut self.manager).await?;
        Ok(())
    }

    /// Renews the hash and the node's score; `false` when the hash is gone.
    async fn beat(&mut self) -> Result<bool, PresenceError> {
        let present: i64 = self
            .beat
            .key(&self.hash)
            .key(&self.nodes)
            .arg(self.ttl_ms)
            .arg(&*self.node)
            .invoke_async(&mut self.manager)
            .await?;
        Ok(present != 0)
    }

    /// Deletes the node's hash and member, trying twice: the manager
    /// answers the first request after an outage with the error that made
    /// it reconnect.
    async fn leave(&mut self) -> Result<(), PresenceError> {
        match self.delete().await {
            Err(PresenceError::Unavailable(_)) => self.delete().await,
            done => done,
        }
    }

    async fn delete(&mut self) -> Result<(), PresenceError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(&self.hash)
            .ignore()
            .cmd("ZREM")
            .arg(&self.nodes)
            .arg(&*self.node)
            .ignore();
        pipe.query_async::<()>(&mut self.manager).await?;
        Ok(())
    }
}

/// Logs the first failure of a run of them.
fn report_down(reported: &mut bool, err: &PresenceError) {
    if !*reported {
        tracing::warn!(%err, "presence not written to Redis; retrying");
        *reported = true;
    }
}

/// Against real Redis servers: the shared one at 127.0.0.1:6379, each test
/// under its own random prefix whose keys are deleted at the end, and a
/// private `redis-server` on a free port for the tests that stop it.
#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command as Process, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};

    use serde_json::Value;

    use super::*;
    use crate::matcher::{MatchType, Matcher};
    use crate::subscriptions::{ActiveSubscriptions, Query, SUBSCRIPTIONS_PATH, Subscription};
    use crate::topic::Limits;

    const SHARED: &str = "redis://127.0.0.1:6379";
    const PATIENCE: Duration = Duration::from_secs(10);
    /// Short, so that expiry shows within a test.
    const TTL: Duration = Duration::from_millis(600);

    fn unique() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!(
            "ssehub-test:presence:{}:{nanos}:{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A test's key prefix on the shared Redis; its keys are deleted when
    /// dropped, even on panic (they also all expire on their own).
    struct Prefix(String);

    impl Prefix {
        fn new() -> Self {
            Self(unique())
        }
    }

    impl Drop for Prefix {
        fn drop(&mut self) {
            let Ok(mut conn) = Client::open(SHARED).and_then(|c| c.get_connection()) else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:presence*", self.0))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut conn);
            }
        }
    }

    /// A `redis-server` of this test's own, without persistence.
    struct PrivateRedis {
        port: u16,
        child: Option<Child>,
    }

    impl PrivateRedis {
        fn start() -> Self {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut redis = Self { port, child: None };
            redis.spawn();
            redis
        }

        fn spawn(&mut self) {
            let child = Process::new("redis-server")
                .args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server runs");
            self.child = Some(child);
            let deadline = std::time::Instant::now() + PATIENCE;
            while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "redis-server did not listen"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }

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
        }
    }

    fn node(url: &str, prefix: &str, name: &str) -> ActiveSubscriptions {
        ActiveSubscriptions::redis(Client::open(url).unwrap(), prefix, name, TTL).unwrap()
    }

    fn subscription(pattern: &str, subscriber: &str) -> Vec<Subscription> {
        let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
        let matcher = Matcher::new(MatchType::Exact, pattern, &base, &Limits::default()).unwrap();
        Subscription::for_matchers(&[matcher], subscriber, None)
    }

    /// The subscribers `registry` lists for `query`, in its order.
    async fn listed(
        registry: &ActiveSubscriptions,
        query: &Query,
    ) -> Result<Vec<String>, PresenceError> {
        let document = registry.document(query, SUBSCRIPTIONS_PATH).await?;
        let Some(document) = document else {
            return Ok(Vec::new());
        };
        let subscriber = |d: &Value| d["subscriber"].as_str().unwrap().to_owned();
        Ok(match document["subscriptions"].as_array() {
            Some(all) => all.iter().map(subscriber).collect(),
            None => vec![subscriber(&document)],
        })
    }

    async fn all(registry: &ActiveSubscriptions) -> Result<Vec<String>, PresenceError> {
        listed(registry, &Query::All).await
    }

    /// Nodes `a` and `b` under `prefix`, once `a` lists `b`'s subscriber
    /// `s2`.
    async fn a_seeing_b(prefix: &Prefix) -> (ActiveSubscriptions, ActiveSubscriptions) {
        let a = node(SHARED, &prefix.0, "a");
        let b = node(SHARED, &prefix.0, "b");
        b.add(&subscription("x", "s2"));
        eventually("b's entry", || async { all(&a).await.unwrap() == ["s2"] }).await;
        (a, b)
    }

    /// Polls `check` until it holds.
    async fn eventually<F, Fut>(what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + PATIENCE;
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
        Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn exists(url: &str, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut conn(url).await)
            .await
            .unwrap()
            == 1
    }

    #[tokio::test]
    async fn two_nodes_list_each_others_subscriptions_and_a_clean_stop_removes_them() {
        let prefix = Prefix::new();
        let a = node(SHARED, &prefix.0, "a");
        let b = node(SHARED, &prefix.0, "b");
        let (x, y, z) = (
            subscription("x", "s1"),
            subscription("x", "s2"),
            subscription("y", "s3"),
        );
        a.add(&x);
        b.add(&y);
        b.add(&z);
        let everyone = ["s1", "s2", "s3"].map(String::from).to_vec();
        for registry in [&a, &b] {
            eventually("every node's subscriptions", || async {
                all(registry).await.unwrap() == everyone
            })
            .await;
        }
        // The same document on each node, so the same ETag.
        assert_eq!(
            a.document(&Query::All, "/p").await.unwrap(),
            b.document(&Query::All, "/p").await.unwrap()
        );
        let by_matcher = Query::Matcher(MatchType::Exact, "x".into());
        assert_eq!(listed(&a, &by_matcher).await.unwrap(), ["s1", "s2"]);
        assert_eq!(listed(&b, &by_matcher).await.unwrap(), ["s1", "s2"]);
        let theirs = Query::One(MatchType::Exact, "y".into(), "s3".into());
        assert_eq!(
            a.document(&theirs, "/p").await.unwrap().unwrap(),
            serde_json::from_str::<Value>(&z[0].event(true)).unwrap()
        );
        let nobody = Query::One(MatchType::Exact, "y".into(), "s1".into());
        assert_eq!(a.document(&nobody, "/p").await.unwrap(), None);

        b.remove(&y);
        eventually("a removal to be shared", || async {
            all(&a).await.unwrap() == ["s1", "s3"]
        })
        .await;

        b.shutdown().await.unwrap();
        assert_eq!(
            all(&a).await.unwrap(),
            ["s1"],
            "gone at once, not at expiry"
        );
        let hash = format!("{}:presence:b", prefix.0);
        assert!(!exists(SHARED, &hash).await);
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(format!("{}:presence-nodes", prefix.0))
            .arg("b")
            .query_async(&mut conn(SHARED).await)
            .await
            .unwrap();
        assert_eq!(score, None);
        // A stopped node keeps answering for itself, from memory.
        b.add(&y);
        assert_eq!(all(&b).await.unwrap(), ["s1", "s2", "s3"]);
        assert_eq!(all(&a).await.unwrap(), ["s1"]);
        b.shutdown().await.unwrap();
        a.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn the_keys_are_laid_out_as_documented() {
        let prefix = Prefix::new();
        let a = node(SHARED, &prefix.0, "node-a");
        let s = subscription("https://example.com/books/1", "urn:uuid:1");
        a.add(&s);
        let hash = format!("{}:presence:node-a", prefix.0);
        let nodes = format!("{}:presence-nodes", prefix.0);
        let mut conn = conn(SHARED).await;
        let fields = |mut conn: redis::aio::MultiplexedConnection| {
            let hash = hash.clone();
            async move {
                redis::cmd("HGETALL")
                    .arg(&hash)
                    .query_async::<HashMap<String, String>>(&mut conn)
                    .await
                    .unwrap()
            }
        };
        eventually("the entry in Redis", || {
            let fields = fields(conn.clone());
            async move { fields.await.len() == 2 }
        })
        .await;
        let fields = fields(conn.clone()).await;
        assert_eq!(fields[SENTINEL], "node-a");
        let document: Value = serde_json::from_str(&fields[s[0].topic()]).unwrap();
        assert_eq!(
            document,
            serde_json::from_str::<Value>(&s[0].event(true)).unwrap()
        );
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&hash)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(0 < pttl && pttl <= 600, "{pttl}");
        let (seconds, micros): (u64, u64) =
            redis::cmd("TIME").query_async(&mut conn).await.unwrap();
        let now = seconds * 1000 + micros / 1000;
        let score: f64 = redis::cmd("ZSCORE")
            .arg(&nodes)
            .arg("node-a")
            .query_async(&mut conn)
            .await
            .unwrap();
        let expires = score as u64;
        assert!(now < expires && expires <= now + 600, "{now} {expires}");
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&nodes)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(0 < pttl && pttl <= 600, "the node set expires too: {pttl}");
        a.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_node_that_stops_its_heartbeat_vanishes_after_the_ttl() {
        let prefix = Prefix::new();
        let (a, b) = a_seeing_b(&prefix).await;
        // As a crash: no clean stop, the writer is gone.
        drop(b);
        let crashed = Instant::now();
        assert_eq!(
            all(&a).await.unwrap(),
            ["s2"],
            "still listed until its entries expire"
        );
        eventually("b's entries to expire", || async {
            all(&a).await.unwrap().is_empty()
        })
        .await;
        // Its last heartbeat was at most TTL/3 before the crash.
        assert!(
            crashed.elapsed() >= TTL / 3,
            "vanished after {:?}: deleted, not expired",
            crashed.elapsed()
        );
        assert!(!exists(SHARED, &format!("{}:presence:b", prefix.0)).await);
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{}:presence-nodes", prefix.0))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn(SHARED).await)
            .await
            .unwrap();
        assert_eq!(members, ["a"], "reads prune the dead node");
        a.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_hash_lost_while_redis_is_up_is_written_again() {
        let prefix = Prefix::new();
        let (a, b) = a_seeing_b(&prefix).await;
        let _: () = redis::cmd("DEL")
            .arg(format!("{}:presence:b", prefix.0))
            .query_async(&mut conn(SHARED).await)
            .await
            .unwrap();
        // A write finds the hash gone and does not recreate half of it.
        b.add(&subscription("y", "s3"));
        eventually("b's entries, whole again", || async {
            all(&a).await.unwrap() == ["s2", "s3"]
        })
        .await;
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn entries_that_are_not_subscription_documents_are_skipped() {
        let prefix = Prefix::new();
        let a = node(SHARED, &prefix.0, "a");
        let good = subscription("x", "s9");
        let mut forged: Value = serde_json::from_str(&good[0].event(true)).unwrap();
        forged["match"] = "other".into();
        let mut conn = conn(SHARED).await;
        let hash = format!("{}:presence:m", prefix.0);
        let _: () = redis::pipe()
            .cmd("HSET")
            .arg(&hash)
            .arg(SENTINEL)
            .arg("m")
            .arg(good[0].topic())
            .arg(good[0].event(true))
            .arg("/.well-known/mercure/subscriptions/exact/x/bad")
            .arg("not json")
            .arg("/.well-known/mercure/subscriptions/exact/x/forged")
            .arg(forged.to_string())
            .arg("/.well-known/mercure/subscriptions/exact/x/binary")
            .arg(&[0xff_u8, 0xfe][..])
            .ignore()
            .cmd("PEXPIRE")
            .arg(&hash)
            .arg(5000)
            .ignore()
            .cmd("ZADD")
            .arg(format!("{}:presence-nodes", prefix.0))
            .arg(i64::MAX)
            .arg("m")
            .ignore()
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(all(&a).await.unwrap(), ["s9"]);
        let x = Query::Matcher(MatchType::Exact, "x".into());
        assert_eq!(listed(&a, &x).await.unwrap(), ["s9"]);
        a.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn while_redis_is_down_listing_fails_and_nothing_is_lost_when_it_returns() {
        let mut redis = PrivateRedis::start();
        let url = redis.url();
        let a = node(&url, "p", "a");
        let b = node(&url, "p", "b");
        let (x, y) = (subscription("x", "s1"), subscription("y", "s2"));
        b.add(&x);
        eventually("b's entry", || async { all(&a).await.unwrap() == ["s1"] }).await;

        redis.kill();
        for registry in [&a, &b] {
            let err = all(registry).await.unwrap_err();
            assert!(matches!(err, PresenceError::Unavailable(_)), "{err:?}");
        }
        // Changes made meanwhile are kept, in order.
        b.add(&y);
        b.remove(&x);
        a.add(&x);
        tokio::time::sleep(TTL / 2).await;

        // Back, and empty: it lost everything.
        redis.spawn();
        eventually("both nodes' entries again", || async {
            all(&a).await.is_ok_and(|l| l == ["s1", "s2"])
                && all(&b).await.is_ok_and(|l| l == ["s1", "s2"])
        })
        .await;
        let one = Query::One(MatchType::Exact, "y".into(), "s2".into());
        assert!(a.document(&one, "/p").await.unwrap().is_some());

        redis.kill();
        assert!(matches!(
            b.shutdown().await,
            Err(PresenceError::Unavailable(_))
        ));
        redis.spawn();
        a.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn configurations_that_cannot_work_are_refused() {
        let client = || Client::open(SHARED).unwrap();
        let refused = |r: Result<ActiveSubscriptions, PresenceError>| {
            matches!(r, Err(PresenceError::Config(_)))
        };
        assert!(refused(ActiveSubscriptions::redis(client(), "", "a", TTL)));
        assert!(refused(ActiveSubscriptions::redis(client(), "p", "", TTL)));
        assert!(refused(ActiveSubscriptions::redis(
            client(),
            "p",
            "a",
            Duration::from_millis(10)
        )));
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let made = ActiveSubscriptions::redis(Client::open(SHARED).unwrap(), "p", "a", TTL);
        assert!(matches!(made, Err(PresenceError::Config(_))));
    }

    #[test]
    fn unreachable_is_retryable_and_refusals_are_not() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            PresenceError::from(io),
            PresenceError::Unavailable(_)
        ));
        let refused = RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad"));
        assert!(matches!(
            PresenceError::from(refused),
            PresenceError::Engine(_)
        ));
    }
}
