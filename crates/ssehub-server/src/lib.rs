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

pub mod auth;
mod body;
pub mod config;
mod demo;
mod groups;
mod hub;
pub mod identity;
mod lean;
mod listen;
pub mod matcher;
mod metrics;
mod presence;
mod recent;
mod request;
mod routes;
mod subscriptions;
mod sync;
mod template;
pub mod tls;
pub mod topic;
mod update;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use config::{Config, ConfigError, Settings};
pub use routes::HUB_PATH;

use ssehub::journal::{Journal, MemoryJournal, RedisJournal, RedisJournalConfig, Retention};

use crate::config::{StreamServer, Transport};
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
    core: Arc<Core>,
    settings: Settings,
    dev_key: Option<DevKey>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Binds the configured address and serves the hub in the background.
///
/// # Errors
/// [`StartError`] when the address cannot be bound or the configuration
/// (keys, public URL) is unusable.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let settings = config.settings(addr)?;
    let auth = settings.auth()?;
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
        },
        journal,
    );
    core.start().await;
    tracing::info!(
        %addr,
        hub = %settings.base,
        dev = settings.dev,
        anonymous = settings.anonymous,
        subscriptions = settings.subscriptions,
        compat = config.compat,
        transport = ?config.transport,
        "hub started"
    );
    let dev_key = settings.dev.then(|| dev_key(&settings)).flatten();
    let handle = core.clone();
    let app = Arc::new(App {
        core: core.clone(),
        auth,
        settings: settings.clone(),
        dev_key: dev_key.clone(),
    });
    let router = routes::router(app.clone());
    let lean = config.stream_server == StreamServer::Lean;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let (draining_tx, draining) = oneshot::channel::<()>();
    // Stop accepting first; the drain then ends the open streams.
    let shutdown = async move {
        let _ = stopped.await;
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
        tokio::select! {
            result = server => result,
            () = drainer => Ok(()),
        }
    });
    Ok(Running {
        addr,
        core: handle,
        settings,
        dev_key,
        stop: Some(stop),
        task,
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
            .map_err(|err| ConfigError::Transport(format!("--transport: {err}")))?;
            let node = uuid::Uuid::new_v4().simple().to_string();
            ActiveSubscriptions::redis(client, &config.transport_stream, &node, PRESENCE_TTL)
                .map_err(|err| ConfigError::Transport(format!("--transport: {err}")))
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
            let journal = RedisJournal::new(redis)
                .map_err(|err| ConfigError::Transport(format!("--transport: {err}")))?;
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
            std::fs::read(path).map_err(|err| {
                ConfigError::Transport(format!("--transport-tls-ca {}: {err}", path.display()))
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
        let update = hub::NewUpdate {
            topics: vec![topic.into()],
            data: data.to_owned(),
            ..hub::NewUpdate::default()
        };
        match self.core.publish(update).await {
            Ok(id) => Ok(id.to_string()),
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
