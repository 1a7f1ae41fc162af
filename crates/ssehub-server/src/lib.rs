//! ssehub, the hub: a standalone Server-Sent Events hub that speaks the
//! [Mercure protocol](https://mercure.rocks/spec), built on the `ssehub`
//! library's broker.
//!
//! Publishers `POST` updates to `/.well-known/mercure`; subscribers open an
//! `EventSource` on the same URL with `match` / `match_urlpattern` query
//! parameters. Tokens are JWT access tokens with Mercure authorization
//! details; `--compat` adds the Mercure 0.x dialect beside it. The binary
//! `ssehub` runs it; [`start`] embeds it.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use clap::Parser;
//! let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--dev"]);
//! let hub = ssehub_server::start(config).await?;
//! println!("hub at {}", hub.hub_url());
//! hub.shutdown().await?;
//! # Ok(()) }
//! ```

mod admission;
pub mod auth;
mod body;
pub mod config;
pub mod config_file;
mod demo;
pub mod forwarded;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod groups;
mod hub;
pub mod identity;
mod lean;
mod listen;
pub mod matcher;
mod metrics;
mod open_files;
mod presence;
mod recent;
mod request;
mod routes;
mod stats;
mod subscriptions;
mod sync;
mod template;
pub mod tls;
pub mod topic;
mod update;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use config::{Config, ConfigError, Settings};
pub use routes::HUB_PATH;

use ssehub::journal::{Journal, MemoryJournal, RedisJournal, RedisJournalConfig, Retention};

use crate::admission::{Admission, LimitsConfig};
use crate::config::{StreamServer, Transport, TransportSetupError};
use crate::demo::DevKey;
use crate::hub::{Core, CoreConfig};
use crate::routes::App;
use crate::subscriptions::ActiveSubscriptions;
use crate::topic::TopicError;

/// Why the hub could not start.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use clap::Parser;
/// // No key, and not on loopback: the hub will not run open.
/// let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "0.0.0.0:0"]);
/// let err = ssehub_server::start(config).await.unwrap_err();
/// assert!(matches!(err, ssehub_server::StartError::Config(ssehub_server::ConfigError::NoKey)));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The configuration is unusable.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The TLS certificate or key is unusable.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// The admin listener's address cannot be bound.
    #[error("--admin-listen {addr}: {source}")]
    AdminListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Why an in-process publication was refused.
///
/// ```
/// use ssehub_server::{PublishError, topic::TopicError};
/// let err = PublishError::Topic(TopicError::Wildcard);
/// assert!(err.to_string().starts_with("invalid topic: "));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The topic breaks the protocol's rules.
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    Closed,
    /// The update log did not store it (Redis unreachable, say).
    #[error(transparent)]
    Log(#[from] ssehub::journal::JournalError),
}

/// A running hub.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use clap::Parser;
/// let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "127.0.0.1:0"]);
/// let hub = ssehub_server::start(config).await.unwrap();
/// assert!(hub.local_addr().ip().is_loopback());
/// assert_eq!(hub.hub_url().path(), "/.well-known/mercure");
/// assert!(hub.settings().dev, "no key on loopback: development mode");
/// let (publisher, subscriber) = hub.dev_tokens();
/// assert!(publisher.is_some() && subscriber.is_some());
/// hub.shutdown().await.unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    core: Arc<Core>,
    settings: Settings,
    dev_key: Option<DevKey>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    refreshers: KeySetRefreshers,
}

/// The tasks keeping the issuers' key sets fresh; they end with the hub.
#[derive(Debug)]
struct KeySetRefreshers(Vec<JoinHandle<()>>);

impl KeySetRefreshers {
    fn stop(&self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Drop for KeySetRefreshers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks everything [`start`] would check before binding: the settings,
/// every key, the log's transport and the TLS files. Nothing is bound and
/// no server is contacted; like [`start`], it runs within a Tokio runtime
/// (the Redis transport's client is built, not connected).
///
/// # Errors
/// [`StartError`] naming what is wrong.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use clap::Parser;
/// let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--transport", "redis://127.0.0.1:1"]);
/// if let Err(err) = ssehub_server::check(&config).await { panic!("Redis is not contacted: {err}") }
/// let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--keep-alive", "0s"]);
/// assert_eq!(ssehub_server::check(&config).await.unwrap_err().to_string(), "--keep-alive: must be at least 100ms");
/// # }
/// ```
pub async fn check(config: &Config) -> Result<Settings, StartError> {
    let settings = config.settings(config.listen)?;
    settings.auth()?;
    journal(config)?;
    if settings.subscriptions {
        active_subscriptions(config)?;
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        tls::acceptor(cert, key)?;
    }
    Ok(settings)
}

/// Sets TCP_NOTSENT_LOWAT on `listener` (Linux): writes to a socket with
/// `limit` bytes still unsent wait instead of queueing more.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unsent_limit(listener: &tokio::net::TcpListener, limit: usize) -> std::io::Result<()> {
    socket2::SockRef::from(listener).set_tcp_notsent_lowat(u32::try_from(limit).unwrap_or(u32::MAX))
}

/// Elsewhere the kernel has no such limit: the send buffer bounds alone.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unsent_limit(_: &tokio::net::TcpListener, _: usize) -> std::io::Result<()> {
    tracing::warn!("--unsent-limit needs Linux: ignored");
    Ok(())
}

/// Binds the configured address and serves the hub in the background.
///
/// # Errors
/// [`StartError`] when the address cannot be bound or the configuration
/// (keys, public URL) is unusable.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    // Accepted sockets inherit the listener's send buffer and unsent
    // limit.
    if config.unsent_limit > 0 {
        unsent_limit(&listener, config.unsent_limit)?;
    }
    if config.send_buffer > 0 {
        rustix::net::sockopt::set_socket_send_buffer_size(&listener, config.send_buffer)
            .map_err(std::io::Error::from)?;
        // The kernel caps it at net.core.wmem_max and doubles what it
        // grants: say what each connection really gets.
        if let Ok(granted) = rustix::net::sockopt::socket_send_buffer_size(&listener) {
            tracing::info!(
                requested = config.send_buffer,
                granted,
                "send buffer per connection: {granted} bytes"
            );
        }
    }
    let settings = config.settings(addr)?;
    let auth = settings.auth()?;
    let admin = match config.admin_listen {
        Some(admin) => Some(
            tokio::net::TcpListener::bind(admin)
                .await
                .map_err(|source| StartError::AdminListen {
                    addr: admin,
                    source,
                })?,
        ),
        None => None,
    };
    let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;
    let open_files = open_files::raise();
    let ceiling = config
        .max_connections
        .unwrap_or_else(|| open_files.connections());
    let files =
        |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    tracing::info!(
        open_files = %files(open_files.now),
        raised_from = %files(open_files.before),
        max_connections = ceiling,
        "open-file limit {}{}: room for {} subscriber connections",
        files(open_files.now),
        if open_files.before == open_files.now {
            String::new()
        } else {
            format!(" (raised from {})", files(open_files.before))
        },
        open_files.connections(),
    );
    if ceiling == 0 {
        tracing::warn!(
            "--max-connections 0: no ceiling; connections beyond the open-file limit fail at accept"
        );
    } else if ceiling > open_files.connections() {
        tracing::warn!(
            max_connections = ceiling,
            "--max-connections is above what the open-file limit can hold: connections beyond it fail at accept"
        );
    }
    let key_sets = auth.key_sets();
    let journal = journal(&config)?;
    let core = Core::new(
        CoreConfig {
            base: settings.base.clone(),
            keep_alive: config.keep_alive,
            client_buffer: config.client_buffer.max(16),
            client_buffer_bytes: (config.history_bytes + (1 << 20)).max(4 << 20),
            // Never more than the history keeps: a resume is exact on every
            // node alike, whichever node's window it meets.
            window: WINDOW.min(config.history_events.max(1)),
            caller_ids: config.history_events,
            subscriptions: if settings.subscriptions {
                Some(active_subscriptions(&config)?)
            } else {
                None
            },
            key_sets: key_sets.clone(),
        },
        journal,
    );
    core.start().await;
    // Fetching never blocks the start: tokens of an issuer whose set is
    // not fetched yet wait for the first fetch (bounded), then get 401.
    let refreshers = KeySetRefreshers(
        key_sets
            .into_iter()
            .map(|set| tokio::spawn(auth::refresh_loop(set)))
            .collect(),
    );
    tracing::info!(
        %addr,
        hub = %settings.base,
        dev = settings.dev,
        anonymous = settings.anonymous,
        subscriptions = settings.subscriptions,
        debugger = settings.debugger,
        compat = config.compat,
        transport = ?config.transport,
        "hub started"
    );
    let dev_key = settings.dev.then(|| dev_key(&settings)).flatten();
    let handle = core.clone();
    core.metrics.max_connections.set(ceiling as i64);
    let admission = Admission::new(
        LimitsConfig {
            per_ip: config.max_connections_per_ip,
            per_subject: config.max_connections_per_subject,
            ceiling,
            publish_rate: config.publish_rate,
            publish_burst: config.publish_burst,
            subscribe_rate: config.subscribe_rate,
            subscribe_burst: config.subscribe_burst,
        },
        core.metrics.limited.clone(),
    );
    let app = Arc::new(App {
        core: core.clone(),
        auth,
        settings: settings.clone(),
        dev_key: dev_key.clone(),
        stats: stats::Sampler::new(&core.metrics),
        admission,
        draining: AtomicBool::new(false),
    });
    let router = routes::router(app.clone());
    let admin = admin.map(|listener| {
        let router = routes::admin_router(app.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(%err, "the admin listener failed");
            }
        })
    });
    if let Some(admin_addr) = admin_addr {
        tracing::info!(%admin_addr, "admin listener: /healthz, /readyz, /metrics");
    }
    let lean = config.stream_server == StreamServer::Lean;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let (draining_tx, draining) = oneshot::channel::<()>();
    // Not ready from the first moment; stop accepting; the drain then
    // ends the open streams.
    let not_ready = app.clone();
    let shutdown = async move {
        let _ = stopped.await;
        not_ready.draining.store(true, Ordering::Release);
        tracing::info!("shutting down: no new connections");
        let _ = draining_tx.send(());
    };
    let (write_timeout, head_timeout) = (config.write_timeout, config.head_timeout);
    let server = async move {
        match tls {
            Some(acceptor) => {
                tls::serve(
                    listener,
                    acceptor,
                    router,
                    write_timeout,
                    head_timeout,
                    shutdown,
                )
                .await
            }
            None if lean => {
                lean::serve(listener, app, router, write_timeout, head_timeout, shutdown).await
            }
            // hyper alone, with the head deadline `axum::serve` cannot set;
            // one router for all connections (a clone shares its routes).
            None => {
                listen::serve_plain(listener, router, write_timeout, head_timeout, shutdown).await
            }
        }
    };
    let drain = config.drain;
    let drainer = async move {
        if draining.await.is_ok() {
            tracing::info!(?drain, "closing the open streams");
            core.drain(drain).await;
            // Connections that still linger after the drain window.
            tokio::time::sleep(Duration::from_secs(5)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let task = tokio::spawn(async move {
        let result = tokio::select! {
            result = server => result,
            () = drainer => Ok(()),
        };
        // Probes and scrapes are answered until the very end.
        if let Some(admin) = admin {
            admin.abort();
        }
        result
    });
    Ok(Running {
        addr,
        admin_addr,
        core: handle,
        settings,
        dev_key,
        stop: Some(stop),
        task,
        refreshers,
    })
}

/// Recent updates each node keeps to bridge replays read from the log to
/// live delivery.
const WINDOW: usize = 1024;

/// How long a node's subscriptions stay listed in Redis after it stops
/// refreshing them (it crashed).
const PRESENCE_TTL: Duration = Duration::from_secs(15);

/// The active-subscriptions registry: this node's memory, or shared by
/// every node on the Redis transport (each node under a fresh name).
fn active_subscriptions(config: &Config) -> Result<ActiveSubscriptions, ConfigError> {
    match &config.transport {
        Transport::Memory => Ok(ActiveSubscriptions::memory()),
        Transport::Redis(url) => {
            let client = match tls_root_cert(config)? {
                Some(root_cert) => redis::Client::build_with_tls(
                    url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                ),
                None => redis::Client::open(url.as_str()),
            }
            .map_err(TransportSetupError::Redis)?;
            let node = uuid::Uuid::new_v4().simple().to_string();
            ActiveSubscriptions::redis(client, &config.transport_stream, &node, PRESENCE_TTL)
                .map_err(|err| TransportSetupError::Presence(err).into())
        }
    }
}

/// The log `config` names. Nothing is contacted yet: a hub starts while
/// Redis is away and says so through `/readyz`.
fn journal(config: &Config) -> Result<Arc<dyn Journal>, ConfigError> {
    // An update's record holds its topics and its encoded event, which
    // can be up to about twice the form that carried it.
    let largest = config.max_body.saturating_mul(2).saturating_add(64 << 10);
    match &config.transport {
        Transport::Memory => Ok(Arc::new(MemoryJournal::new(Retention {
            max_records: config.history_events,
            // Never below one update: the hub does not refuse a publish
            // its request limits accepted.
            max_bytes: Some(config.history_bytes.max(largest)),
            max_age: Some(config.history_age),
        }))),
        Transport::Redis(url) => {
            let mut redis = RedisJournalConfig::new(url.as_str(), config.transport_stream.as_str());
            redis.retention = Retention {
                max_records: config.history_events,
                max_bytes: None,
                max_age: Some(config.history_age),
            };
            redis.max_body = largest;
            redis.tls_root_cert = tls_root_cert(config)?;
            let journal = RedisJournal::new(redis).map_err(TransportSetupError::Journal)?;
            Ok(Arc::new(journal))
        }
    }
}

/// The CA certificate `--transport-tls-ca` names, read.
fn tls_root_cert(config: &Config) -> Result<Option<Vec<u8>>, ConfigError> {
    config
        .transport_tls_ca
        .as_ref()
        .map(|path| {
            std::fs::read(path).map_err(|source| {
                TransportSetupError::Ca {
                    path: path.clone(),
                    source,
                }
                .into()
            })
        })
        .transpose()
}

/// The development issuer's key, when it is an HMAC secret that can mint
/// the demo's tokens.
fn dev_key(settings: &Settings) -> Option<DevKey> {
    let issuer = settings
        .issuers
        .iter()
        .find(|issuer| issuer.publisher.is_some())?;
    let key = issuer.publisher.as_ref()?;
    Some(DevKey {
        issuer: issuer.id.clone(),
        alg: key.alg,
        material: key.material.clone(),
    })
}

impl Running {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's bound address, with `--admin-listen`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    /// let hub = ssehub_server::start(config).await.unwrap();
    /// assert_ne!(hub.admin_addr().unwrap().port(), hub.local_addr().port());
    /// hub.shutdown().await.unwrap();
    /// # }
    /// ```
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The hub's URL (`.../.well-known/mercure`).
    pub fn hub_url(&self) -> &Url {
        &self.settings.base
    }

    /// The settings in effect.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Publishes a public update on `topic` from inside the process, as an
    /// authorized `POST` would; returns its id.
    ///
    /// # Errors
    /// [`PublishError`] for a topic the protocol refuses, or while shutting
    /// down.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use clap::Parser;
    /// let config = ssehub_server::Config::parse_from(["ssehub", "--listen", "127.0.0.1:0", "--dev"]);
    /// let hub = ssehub_server::start(config).await.unwrap();
    /// let id = hub.publish("https://example.com/books/1", "{\"title\":\"Dune\"}").await.unwrap();
    /// assert!(id.starts_with('#'));
    /// assert!(hub.publish("/.well-known/mercure/x", "forged").await.is_err());
    /// # }
    /// ```
    pub async fn publish(&self, topic: &str, data: &str) -> Result<String, PublishError> {
        topic::validate_topic(topic, &self.settings.base, &self.settings.limits)?;
        let update = update::NewUpdate {
            topics: vec![topic.into()],
            data: data.to_owned(),
            ..update::NewUpdate::default()
        };
        match self.core.publish(update).await {
            Ok(id) => {
                self.core.metrics.updates_total.inc();
                Ok(id)
            }
            Err(hub::PublishError::Log(err)) => Err(PublishError::Log(err)),
            Err(_) => Err(PublishError::Closed),
        }
    }

    /// Development tokens (publisher, subscriber), in development mode.
    /// Their `aud` lists the hub URLs they are good for: the pinned
    /// resource identifier, else the public URLs, else the loopback names
    /// of the bound port (`127.0.0.1`, `localhost`, `[::1]`).
    pub fn dev_tokens(&self) -> (Option<String>, Option<String>) {
        let Some(key) = &self.dev_key else {
            return (None, None);
        };
        let identities = &self.settings.identities;
        let scheme = self.settings.base.scheme();
        let port = self.addr.port();
        let audiences: Vec<String> = match identities.pinned() {
            Some(pinned) => vec![pinned.to_owned()],
            None if identities.public_origins().next().is_some() => identities
                .public_origins()
                .map(|origin| format!("{origin}{HUB_PATH}"))
                .collect(),
            None => {
                let mut hosts = vec![self.addr.to_string()];
                for host in ["127.0.0.1", "localhost", "[::1]"] {
                    let name = format!("{host}:{port}");
                    if !hosts.contains(&name) {
                        hosts.push(name);
                    }
                }
                hosts
                    .iter()
                    .map(|host| format!("{scheme}://{host}{HUB_PATH}"))
                    .collect()
            }
        };
        let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
        let tokens = key.tokens(&audiences);
        (tokens.publisher, tokens.subscriber)
    }

    /// Stops accepting connections, closes the streams spread over the
    /// drain window, and waits for the server to finish.
    ///
    /// # Errors
    /// The server's I/O error, if it failed.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.refreshers.stop();
        self.wait().await
    }

    /// Waits until the server stops (after [`shutdown`](Self::shutdown)
    /// or a failure).
    ///
    /// # Errors
    /// The server's I/O error, if it failed.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(err) => Err(std::io::Error::other(err)),
        }
    }
}
