//! The journal on a Redis stream, shared by every process that uses the
//! same stream key.
//!
//! # Layout
//!
//! - The stream `KEY`: one entry per record, with the fields `n` (the
//!   record's number in its epoch, contiguous from 1), `e` (the epoch, 8
//!   hex digits) and `b` (the body). Its entry id is the record's
//!   [`Offset::Stream`].
//! - The hash `{KEY}:meta` (or `KEY:meta` when `KEY` already has a cluster
//!   hash tag, so both keys share a slot): `epoch`, `seq` (the latest `n`)
//!   and `last` (the latest entry id). The stream and its metadata only
//!   change together, inside the two scripts below.
//!
//! # Epochs
//!
//! Both scripts first make sure the hash holds an epoch. When it holds
//! none — a new stream, or a Redis that lost its data — the script takes a
//! random epoch from the caller, deletes whatever is left under the stream
//! key (it belongs to no epoch) and starts a new log. Creating the epoch
//! and appending happen in one atomic script that returns the epoch it
//! appended under, so no id is acknowledged under an epoch other than the
//! one its record was stored in.
//!
//! # Reading
//!
//! Appends, replays and readiness go through one `ConnectionManager` (a
//! multiplexed connection that reconnects). Each [`Journal::follow`] runs a
//! reader task on a dedicated connection: `XREAD BLOCK … COUNT …` from the
//! last entry it delivered. The `n` field makes a hole visible: a follower
//! that fell behind the trimming is told [`FollowState::Gap`] instead of
//! silently skipping records. When the connection is lost the reader
//! reports `Down`, reconnects with backoff, re-reads the epoch and either
//! resumes after its last entry (`Up`) or, if the log was lost, reports
//! `Reset` and reads the new log from its start.
//!
//! Needs Redis 6.2 or later (exclusive ranges, `MINID` trimming). Run it
//! with AOF (`appendonly yes`) for records to survive a Redis restart;
//! without persistence a restart is a new epoch, which followers and
//! resuming clients are told about, but the history is gone.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, Client, RedisError, RetryMethod, Script, Value};
use bytes::Bytes;

use super::{
    BoxFuture, FollowFrom, FollowState, Follower, Following, Journal, JournalError, JournalId,
    Offset, Record, Replay, ReplayFrom, Retention, parse_epoch,
};

/// Where a [`RedisJournal`] lives and how it behaves.
///
/// ```
/// use std::time::Duration;
/// use ssehub::journal::RedisJournalConfig;
///
/// let mut config = RedisJournalConfig::new("rediss://:secret@redis.internal:6380/0", "updates");
/// config.retention.max_age = Some(Duration::from_secs(300));
/// config.batch = 1000;
/// // The password is not printed.
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisJournalConfig {
    /// The server, as the `redis` crate parses it:
    /// `redis://[[user]:password@]host[:port][/db]`, `rediss://…` for TLS
    /// (verified against the system's trust store, or
    /// [`tls_root_cert`](Self::tls_root_cert)), `redis+unix:///path`.
    pub url: String,
    /// The stream's key. Every process sharing it shares the journal.
    pub stream: String,
    /// What stays replayable; `max_bytes` is ignored (see [`Retention`]).
    /// `max_records` must be at least 1.
    pub retention: Retention,
    /// How long one `XREAD` waits for new entries before the reader checks
    /// the epoch and waits again. Default 5 s.
    pub block: Duration,
    /// Entries read per `XREAD`, the most a follower gets in one call.
    /// Default 512.
    pub batch: usize,
    /// Connection and response timeout of each command (the blocking read
    /// gets `block` on top). Default 2 s.
    pub timeout: Duration,
    /// Largest body accepted ([`JournalError::TooLarge`] beyond). Default
    /// 1 MiB.
    pub max_body: usize,
    /// First delay before a reader reconnects; it doubles on each failure.
    /// Default 50 ms.
    pub reconnect_min: Duration,
    /// Longest delay between a reader's reconnection attempts. Default 2 s.
    pub reconnect_max: Duration,
    /// A PEM certificate to trust for `rediss://` instead of the system's
    /// trust store (a private CA).
    pub tls_root_cert: Option<Vec<u8>>,
}

impl RedisJournalConfig {
    /// The defaults for the journal on `stream` at `url`.
    ///
    /// ```
    /// let config = ssehub::journal::RedisJournalConfig::new("redis://127.0.0.1:6379", "ssehub");
    /// assert_eq!(config.batch, 512);
    /// ```
    pub fn new(url: impl Into<String>, stream: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: stream.into(),
            retention: Retention::default(),
            block: Duration::from_secs(5),
            batch: 512,
            timeout: Duration::from_secs(2),
            max_body: 1 << 20,
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            tls_root_cert: None,
        }
    }
}

impl fmt::Debug for RedisJournalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJournalConfig")
            .field("url", &redact(&self.url))
            .field("stream", &self.stream)
            .field("retention", &self.retention)
            .field("block", &self.block)
            .field("batch", &self.batch)
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("tls_root_cert", &self.tls_root_cert.is_some())
            .finish()
    }
}

/// `url` with its user information (which holds the password) hidden.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// A [`Journal`] on a Redis stream (feature `redis`).
///
/// Creating one does no I/O: the first command connects, so a process can
/// start while Redis is unreachable and report it through
/// [`Journal::ready`].
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), ssehub::journal::JournalError> {
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use ssehub::journal::{FollowFrom, FollowState, Follower, Journal, Record, RedisJournal, RedisJournalConfig};
///
/// struct Print;
/// impl Follower for Print {
///     fn records(&self, records: &[Record]) {
///         for record in records {
///             println!("{}: {:?}", record.id, record.body);
///         }
///     }
///     fn state(&self, state: FollowState) {
///         println!("journal {state:?}");
///     }
/// }
///
/// let journal = RedisJournal::new(RedisJournalConfig::new("redis://127.0.0.1:6379", "updates"))?;
/// journal.ready().await?;
/// let _following = journal.follow(FollowFrom::Latest, Arc::new(Print));
/// let id = journal.append(Bytes::from("hello")).await?;
/// println!("stored as {id}");
/// # Ok(()) }
/// ```
pub struct RedisJournal {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    manager: ConnectionManager,
    runtime: tokio::runtime::Handle,
    stream: String,
    meta: String,
    retention: Retention,
    block: Duration,
    batch: usize,
    timeout: Duration,
    max_body: usize,
    reconnect: (Duration, Duration),
    append: Script,
    read: Script,
}

impl fmt::Debug for RedisJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJournal")
            .field("stream", &self.shared.stream)
            .field("retention", &self.shared.retention)
            .finish_non_exhaustive()
    }
}

/// Helpers shared by both scripts.
const PRELUDE: &str = r"
local function ensure(stream, meta, candidate)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then return epoch end
  -- A new log: whatever is left under the stream key belongs to no epoch.
  redis.call('DEL', stream, meta)
  redis.call('HSET', meta, 'epoch', candidate)
  return candidate
end
-- The id below which entries are older than `age` milliseconds.
local function floor(age)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - age
  if ms < 0 then ms = 0 end
  return string.format('%.0f', ms) .. '-0'
end
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end
";

/// KEYS: stream, meta. ARGV: candidate epoch, body, max records, max age
/// in ms (0: none). Returns {epoch, entry id}.
const APPEND: &str = r"
local epoch = ensure(KEYS[1], KEYS[2], ARGV[1])
local n = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'n', n, 'e', epoch, 'b', ARGV[2])
redis.call('HSET', KEYS[2], 'last', id)
local age = tonumber(ARGV[4])
if age > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', floor(age))
end
return {epoch, id}
";

/// KEYS: stream, meta. ARGV: candidate epoch, the resume id's epoch, the
/// resume id ('' for the earliest), max entries, max age in ms (0: none).
/// Returns {epoch, gap (0/1), seq, head id or '', n of the resume entry or
/// -1, entries}.
const READ: &str = r"
local epoch = ensure(KEYS[1], KEYS[2], ARGV[1])
local seq = redis.call('HGET', KEYS[2], 'seq') or '0'
local head = redis.call('HGET', KEYS[2], 'last') or ''
local age = tonumber(ARGV[5])
local start = '-'
if age > 0 then start = floor(age) end
local gap, known = 0, -1
local after = ARGV[3]
if after ~= '' then
  if ARGV[2] ~= epoch or head == '' then
    gap = 1
  elseif after == head then
    start, known = false, tonumber(seq)
  else
    local hit = redis.call('XRANGE', KEYS[1], after, after)
    if #hit == 1 and (start == '-' or not before(after, start)) then
      start = '(' .. after
      known = tonumber(field(hit[1][2], 'n') or '-1')
    else
      gap = 1
    end
  end
end
local entries = {}
local max = tonumber(ARGV[4])
if start and max > 0 then
  entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', max)
end
return {epoch, gap, seq, head, known, entries}
";

impl RedisJournal {
    /// A journal on `config.stream` at `config.url`. Must be called within
    /// a Tokio runtime, which runs its reader tasks.
    ///
    /// # Errors
    /// [`JournalError::Config`] for a URL the `redis` crate does not parse,
    /// an empty stream key, `max_records` or `batch` of 0, or no runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use ssehub::journal::{JournalError, RedisJournal, RedisJournalConfig};
    ///
    /// let err = RedisJournal::new(RedisJournalConfig::new("http://x", "s")).unwrap_err();
    /// assert!(matches!(err, JournalError::Config(_)));
    /// // Nothing is contacted yet.
    /// RedisJournal::new(RedisJournalConfig::new("redis://127.0.0.1:1", "s")).unwrap();
    /// # }
    /// ```
    pub fn new(config: RedisJournalConfig) -> Result<Self, JournalError> {
        if config.stream.is_empty() {
            return Err(JournalError::Config("the stream key is empty".into()));
        }
        if config.retention.max_records == 0 {
            return Err(JournalError::Config(
                "a Redis journal keeps at least one record: followers read entries after they were appended".into(),
            ));
        }
        if config.batch == 0 {
            return Err(JournalError::Config("the read batch is 0".into()));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            JournalError::Config("a Redis journal is created within a Tokio runtime".into())
        })?;
        let client = match config.tls_root_cert {
            Some(root_cert) => Client::build_with_tls(
                config.url.as_str(),
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
            None => Client::open(config.url.as_str()),
        }
        .map_err(|err| JournalError::Config(format!("Redis URL: {err}")))?;
        // Appends fail fast while Redis is away (the caller answers 503 and
        // the client retries); one quick retry covers a dropped connection.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_min_delay(config.reconnect_min)
            .set_max_delay(config.reconnect_max);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|err| JournalError::Config(format!("Redis connection: {err}")))?;
        let meta = meta_key(&config.stream);
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                manager,
                runtime,
                meta,
                stream: config.stream,
                retention: config.retention,
                block: config.block.max(Duration::from_millis(1)),
                batch: config.batch,
                timeout: config.timeout,
                max_body: config.max_body,
                reconnect: (
                    config.reconnect_min,
                    config.reconnect_max.max(config.reconnect_min),
                ),
                append: Script::new(&format!("{PRELUDE}{APPEND}")),
                read: Script::new(&format!("{PRELUDE}{READ}")),
            }),
        })
    }
}

/// The metadata key, in the stream key's cluster slot.
fn meta_key(stream: &str) -> String {
    let tagged = stream
        .find('{')
        .and_then(|open| stream[open + 1..].find('}'))
        .is_some_and(|len| len > 0);
    if tagged {
        format!("{stream}:meta")
    } else {
        format!("{{{stream}}}:meta")
    }
}

/// Errors worth retrying are the engine being unavailable; the rest are
/// refusals.
fn classify(err: RedisError) -> JournalError {
    if matches!(err.retry_method(), RetryMethod::NoRetry) {
        JournalError::engine(err)
    } else {
        JournalError::unavailable(err)
    }
}

fn unexpected(what: &str) -> JournalError {
    JournalError::engine(format!("unexpected reply from Redis: {what}"))
}

fn epoch_hex(epoch: u32) -> String {
    format!("{epoch:08x}")
}

/// `ms-seq` as Redis writes entry ids.
fn parse_entry_id(bytes: &[u8]) -> Option<Offset> {
    let (ms, seq) = std::str::from_utf8(bytes).ok()?.split_once('-')?;
    Some(Offset::Stream {
        ms: ms.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

fn stream_id(offset: Offset) -> Option<String> {
    match offset {
        Offset::Stream { ms, seq } => Some(format!("{ms}-{seq}")),
        _ => None,
    }
}

fn into_bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

fn into_int(value: Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(n),
        Value::BulkString(bytes) => std::str::from_utf8(&bytes).ok()?.parse().ok(),
        _ => None,
    }
}

fn into_array(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        Value::Map(pairs) => Some(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

/// One stream entry. `record` is `None` for an entry without the journal's
/// fields (written to the key by something else).
struct Entry {
    offset: Offset,
    record: Option<(u64, u32, Bytes)>,
}

fn parse_entry(value: Value) -> Result<Entry, JournalError> {
    let mut parts = into_array(value)
        .ok_or_else(|| unexpected("stream entry"))?
        .into_iter();
    let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
        return Err(unexpected("stream entry"));
    };
    let offset = into_bytes(id)
        .as_deref()
        .and_then(parse_entry_id)
        .ok_or_else(|| unexpected("stream entry id"))?;
    let mut fields = into_array(fields)
        .ok_or_else(|| unexpected("stream entry fields"))?
        .into_iter();
    let (mut n, mut epoch, mut body) = (None, None, None);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let (Some(name), Some(value)) = (into_bytes(name), into_bytes(value)) else {
            continue;
        };
        match &name[..] {
            b"n" => {
                n = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|s| s.parse().ok())
            }
            b"e" => epoch = parse_epoch(&value),
            b"b" => body = Some(Bytes::from(value)),
            _ => {}
        }
    }
    let record = match (n, epoch, body) {
        (Some(n), Some(epoch), Some(body)) => Some((n, epoch, body)),
        _ => None,
    };
    Ok(Entry { offset, record })
}

/// The reply of the `READ` script.
struct Read {
    epoch: u32,
    gap: bool,
    seq: u64,
    head: Option<Offset>,
    /// `n` of the entry at the resume id, when it is one.
    known: Option<u64>,
    entries: Vec<Entry>,
}

fn parse_read(value: Value) -> Result<Read, JournalError> {
    let bad = || unexpected("journal read");
    let mut parts = into_array(value).ok_or_else(bad)?.into_iter();
    let mut next = || parts.next().ok_or_else(bad);
    let epoch = into_bytes(next()?)
        .as_deref()
        .and_then(parse_epoch)
        .ok_or_else(bad)?;
    let gap = into_int(next()?).ok_or_else(bad)? != 0;
    let seq = into_int(next()?)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(bad)?;
    let head = into_bytes(next()?).ok_or_else(bad)?;
    let head = if head.is_empty() {
        None
    } else {
        Some(parse_entry_id(&head).ok_or_else(bad)?)
    };
    let known = into_int(next()?).ok_or_else(bad)?;
    let entries = into_array(next()?)
        .ok_or_else(bad)?
        .into_iter()
        .map(parse_entry)
        .collect::<Result<_, _>>()?;
    Ok(Read {
        epoch,
        gap,
        seq,
        head,
        known: u64::try_from(known).ok(),
        entries,
    })
}

impl Shared {
    fn age_ms(&self) -> u128 {
        self.retention
            .max_age
            .map_or(0, |age| age.as_millis().max(1))
    }

    /// Runs the `READ` script: `from` as the resume point, up to `max`
    /// entries.
    async fn read_raw<C>(
        &self,
        conn: &mut C,
        from: ReplayFrom,
        max: usize,
    ) -> Result<Value, RedisError>
    where
        C: ::redis::aio::ConnectionLike + Send,
    {
        let (epoch, after) = match from {
            ReplayFrom::Earliest => (String::new(), String::new()),
            // An id of another engine's shape cannot be in this log: an
            // epoch that matches none makes it unknown.
            ReplayFrom::After(id) => match stream_id(id.offset) {
                Some(after) => (epoch_hex(id.epoch), after),
                None => (String::new(), "0-0".to_owned()),
            },
        };
        self.read
            .key(&self.stream)
            .key(&self.meta)
            .arg(epoch_hex(super::new_epoch()))
            .arg(epoch)
            .arg(after)
            .arg(max)
            .arg(self.age_ms().to_string())
            .invoke_async(conn)
            .await
    }

    /// [`read_raw`](Self::read_raw), parsed.
    async fn read<C>(
        &self,
        conn: &mut C,
        from: ReplayFrom,
        max: usize,
    ) -> Result<Read, JournalError>
    where
        C: ::redis::aio::ConnectionLike + Send,
    {
        parse_read(self.read_raw(conn, from, max).await.map_err(classify)?)
    }

    /// [`read_raw`](Self::read_raw) on the shared connection, retried once when
    /// the connection was found dropped (reading twice is harmless).
    async fn read_shared(&self, from: ReplayFrom, max: usize) -> Result<Read, JournalError> {
        let mut conn = self.manager.clone();
        let value = match self.read_raw(&mut conn, from, max).await {
            Err(err) if err.is_unrecoverable_error() => self.read_raw(&mut conn, from, max).await,
            other => other,
        };
        parse_read(value.map_err(classify)?)
    }

    async fn append(&self, body: Bytes) -> Result<JournalId, JournalError> {
        if body.len() > self.max_body {
            return Err(JournalError::TooLarge {
                size: body.len(),
                max: self.max_body,
            });
        }
        let mut conn = self.manager.clone();
        // Never retried: a lost reply may hide a stored record, and a
        // second append would store it twice.
        let reply: Value = self
            .append
            .key(&self.stream)
            .key(&self.meta)
            .arg(epoch_hex(super::new_epoch()))
            .arg(&body[..])
            .arg(self.retention.max_records)
            .arg(self.age_ms().to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(classify)?;
        let bad = || unexpected("journal append");
        let mut parts = into_array(reply).ok_or_else(bad)?.into_iter();
        let (Some(epoch), Some(id)) = (parts.next(), parts.next()) else {
            return Err(bad());
        };
        Ok(JournalId {
            epoch: into_bytes(epoch)
                .as_deref()
                .and_then(parse_epoch)
                .ok_or_else(bad)?,
            offset: into_bytes(id)
                .as_deref()
                .and_then(parse_entry_id)
                .ok_or_else(bad)?,
        })
    }

    async fn replay(&self, from: ReplayFrom, max: usize) -> Result<Replay, JournalError> {
        let read = self.read_shared(from, max).await?;
        let epoch = read.epoch;
        let records = read
            .entries
            .into_iter()
            .filter_map(|entry| {
                let (_, _, body) = entry.record?;
                Some(Record {
                    id: JournalId {
                        epoch,
                        offset: entry.offset,
                    },
                    body,
                })
            })
            .collect();
        Ok(Replay {
            records,
            gap: read.gap,
            head: read.head.map(|offset| JournalId { epoch, offset }),
        })
    }
}

impl Journal for RedisJournal {
    fn append(&self, body: Bytes) -> BoxFuture<'_, Result<JournalId, JournalError>> {
        Box::pin(self.shared.append(body))
    }

    fn replay(&self, from: ReplayFrom, max: usize) -> BoxFuture<'_, Result<Replay, JournalError>> {
        Box::pin(self.shared.replay(from, max))
    }

    fn follow(&self, from: FollowFrom, follower: Arc<dyn Follower>) -> Following {
        let reader = Reader {
            shared: self.shared.clone(),
            follower,
            from,
            epoch: None,
            cursor: Offset::Stream { ms: 0, seq: 0 },
            last_n: None,
            reported: Reported::Nothing,
        };
        let task = self.shared.runtime.spawn(reader.run());
        Following::new(move || task.abort())
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            self.shared
                .read_shared(ReplayFrom::Earliest, 0)
                .await
                .map(drop)
        })
    }
}

/// The last state a reader reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    Nothing,
    Up,
    Down,
}

/// One follower's read loop.
struct Reader {
    shared: Arc<Shared>,
    follower: Arc<dyn Follower>,
    /// Where to start, used at the first contact with Redis.
    from: FollowFrom,
    /// The epoch being read; `None` until the first contact.
    epoch: Option<u32>,
    /// The last entry delivered (or skipped): reading goes on after it.
    cursor: Offset,
    /// `n` of the last record delivered, when known.
    last_n: Option<u64>,
    reported: Reported,
}

impl Reader {
    async fn run(mut self) {
        let (min, max) = self.shared.reconnect;
        let mut delay = min;
        loop {
            let (err, synced) = self.session().await;
            tracing::warn!(stream = %self.shared.stream, error = %err, "journal reader lost Redis");
            self.report(Reported::Down, FollowState::Down(err));
            if synced {
                delay = min;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max);
        }
    }

    fn report(&mut self, reported: Reported, state: FollowState) {
        if self.reported != reported {
            self.reported = reported;
            self.follower.state(state);
        }
    }

    /// Connects, syncs and reads until something fails. Returns the failure
    /// and whether the session got as far as reading.
    async fn session(&mut self) -> (JournalError, bool) {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.shared.timeout))
            .set_response_timeout(Some(self.shared.block + self.shared.timeout));
        let mut conn = match self
            .shared
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(err) => return (classify(err), false),
        };
        if let Err(err) = self.sync(&mut conn).await {
            return (err, false);
        }
        (self.read_loop(&mut conn).await, true)
    }

    /// Learns the epoch: where to start at the first contact, whether the
    /// log was lost since.
    async fn sync(&mut self, conn: &mut MultiplexedConnection) -> Result<(), JournalError> {
        let shared = self.shared.clone();
        match self.epoch {
            None => {
                let (from, max) = match self.from {
                    FollowFrom::After(id) => (ReplayFrom::After(id), shared.batch),
                    FollowFrom::Latest | FollowFrom::Earliest => (ReplayFrom::Earliest, 0),
                };
                let read = shared.read(conn, from, max).await?;
                self.epoch = Some(read.epoch);
                self.cursor = read.head.unwrap_or(Offset::Stream { ms: 0, seq: 0 });
                self.last_n = Some(read.seq);
                if self.from == FollowFrom::Earliest {
                    // The read loop starts at the stream's start; the first
                    // `n` it meets is the earliest retained, not a gap.
                    self.cursor = Offset::Stream { ms: 0, seq: 0 };
                    self.last_n = None;
                }
                self.report(Reported::Up, FollowState::Up);
                if let FollowFrom::After(from) = self.from {
                    if read.gap {
                        tracing::warn!(stream = %shared.stream, "journal follower starts after a gap");
                        self.follower.state(FollowState::Gap);
                    }
                    if !read.entries.is_empty() {
                        // The entries start right after `from`, or at the
                        // earliest retained one after a gap.
                        if read.gap {
                            self.cursor = Offset::Stream { ms: 0, seq: 0 };
                            self.last_n = None;
                        } else {
                            self.cursor = from.offset;
                            self.last_n = read.known;
                        }
                        // A foreign entry stops delivery before it; the read
                        // loop meets it again and deals with it.
                        let _ = self.accept(read.entries);
                    }
                }
            }
            Some(epoch) => {
                let read = shared.read(conn, ReplayFrom::Earliest, 0).await?;
                if read.epoch != epoch {
                    tracing::warn!(
                        stream = %shared.stream,
                        old = %epoch_hex(epoch),
                        new = %epoch_hex(read.epoch),
                        "journal reset: Redis lost the log"
                    );
                    self.epoch = Some(read.epoch);
                    self.cursor = Offset::Stream { ms: 0, seq: 0 };
                    self.last_n = Some(0);
                    self.follower
                        .state(FollowState::Reset { epoch: read.epoch });
                }
                self.report(Reported::Up, FollowState::Up);
            }
        }
        Ok(())
    }

    async fn read_loop(&mut self, conn: &mut MultiplexedConnection) -> JournalError {
        let shared = self.shared.clone();
        let block_ms = u64::try_from(shared.block.as_millis()).unwrap_or(u64::MAX);
        loop {
            let Some(cursor) = stream_id(self.cursor) else {
                return unexpected("reader position");
            };
            let reply: Value = match ::redis::cmd("XREAD")
                .arg("COUNT")
                .arg(shared.batch)
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(&shared.stream)
                .arg(cursor)
                .query_async(conn)
                .await
            {
                Ok(reply) => reply,
                Err(err) => return classify(err),
            };
            let entries = match parse_xread(reply) {
                Ok(entries) => entries,
                Err(err) => return err,
            };
            if entries.is_empty() {
                // Idle: a cheap check that the log was not lost meanwhile.
                if let Err(err) = self.sync(conn).await {
                    return err;
                }
                continue;
            }
            if let Some(foreign) = self.accept(entries) {
                let before = self.epoch;
                if let Err(err) = self.sync(conn).await {
                    return err;
                }
                if self.epoch == before {
                    // Same log, an entry claiming another epoch: not ours.
                    tracing::warn!(stream = %shared.stream, "journal reader skips an entry of another epoch");
                    self.cursor = foreign;
                }
            }
        }
    }

    /// Delivers `entries` in order, telling a gap where `n` jumps. Stops at
    /// an entry of another epoch and returns its offset (the cursor stays
    /// before it).
    fn accept(&mut self, entries: Vec<Entry>) -> Option<Offset> {
        let epoch = self.epoch?;
        let mut batch = Vec::with_capacity(entries.len());
        let mut foreign = None;
        for entry in entries {
            let Some((n, entry_epoch, body)) = entry.record else {
                tracing::warn!(stream = %self.shared.stream, "journal reader skips an entry without the journal's fields");
                self.cursor = entry.offset;
                continue;
            };
            if entry_epoch != epoch {
                foreign = Some(entry.offset);
                break;
            }
            if self.last_n.is_some_and(|last| n != last + 1) {
                tracing::warn!(stream = %self.shared.stream, "journal follower fell behind the retention");
                if !batch.is_empty() {
                    self.follower.records(&batch);
                    batch.clear();
                }
                self.follower.state(FollowState::Gap);
            }
            self.last_n = Some(n);
            self.cursor = entry.offset;
            batch.push(Record {
                id: JournalId {
                    epoch,
                    offset: entry.offset,
                },
                body,
            });
        }
        if !batch.is_empty() {
            self.follower.records(&batch);
        }
        foreign
    }
}

/// The entries of an `XREAD` of one stream (none when it timed out).
fn parse_xread(reply: Value) -> Result<Vec<Entry>, JournalError> {
    let bad = || unexpected("XREAD");
    let mut streams = into_array(reply).ok_or_else(bad)?.into_iter();
    // RESP2: [[key, entries]]; RESP3: {key: entries}, flattened.
    let entries = match streams.next() {
        None => return Ok(Vec::new()),
        Some(Value::Array(pair)) => pair.into_iter().nth(1).ok_or_else(bad)?,
        Some(_key) => streams.next().ok_or_else(bad)?,
    };
    into_array(entries)
        .ok_or_else(bad)?
        .into_iter()
        .map(parse_entry)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_shares_the_stream_slot() {
        assert_eq!(meta_key("ssehub"), "{ssehub}:meta");
        assert_eq!(meta_key("{app}:updates"), "{app}:updates:meta");
        // An empty tag is no tag: the whole key is hashed.
        assert_eq!(meta_key("a{}b"), "{a{}b}:meta");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:pw@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact("rediss://user:p@w@host"), "rediss://***@host");
        assert_eq!(redact("redis://host/0?x=a@b"), "redis://host/0?x=a@b");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn entries_parse_and_foreign_ones_are_marked() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = Value::Array(vec![
            bulk("1700000000000-3"),
            Value::Array(vec![
                bulk("n"),
                bulk("12"),
                bulk("e"),
                bulk("0000002a"),
                bulk("b"),
                bulk("body"),
            ]),
        ]);
        let parsed = parse_entry(entry).unwrap();
        assert_eq!(
            parsed.offset,
            Offset::Stream {
                ms: 1_700_000_000_000,
                seq: 3
            }
        );
        let (n, epoch, body) = parsed.record.unwrap();
        assert_eq!((n, epoch, &body[..]), (12, 0x2a, &b"body"[..]));
        let foreign = Value::Array(vec![
            bulk("1-1"),
            Value::Array(vec![bulk("other"), bulk("x")]),
        ]);
        assert!(parse_entry(foreign).unwrap().record.is_none());
        assert!(parse_entry(Value::Int(1)).is_err());
        assert!(parse_entry(Value::Array(vec![bulk("nope"), Value::Array(vec![])])).is_err());
        assert!(parse_xread(Value::Nil).unwrap().is_empty());
        assert!(parse_xread(Value::Int(3)).is_err());
    }
}
