//! The development key: the issuer and key that mint the demo page's
//! tokens in development mode (the page and `/demo/config.json` are in
//! `routes/demo.rs`).

use std::time::Duration;

use serde::Serialize;

use crate::auth::{self, Algorithm};

/// How long development tokens stay valid.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// The development issuer and its key, which mint the demo's tokens.
#[derive(Clone)]
pub(crate) struct DevKey {
    pub issuer: String,
    pub alg: Algorithm,
    pub material: String,
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevKey")
            .field("issuer", &self.issuer)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A publisher token (publish and subscribe on every topic) and a
/// subscriber token (subscribe on every topic).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct DevTokens {
    #[serde(rename = "publisherToken")]
    pub publisher: Option<String>,
    #[serde(rename = "subscriberToken")]
    pub subscriber: Option<String>,
}

impl DevKey {
    /// Tokens whose `aud` lists `audiences`.
    pub fn tokens(&self, audiences: &[&str]) -> DevTokens {
        let mint = |actions: &[&str]| {
            let claims = auth::token_claims(&self.issuer, audiences, actions, DEV_TOKEN_TTL);
            auth::mint(self.alg, &self.material, &claims)
                .inspect_err(|err| tracing::warn!(%err, "cannot mint a development token"))
                .ok()
        };
        DevTokens {
            publisher: mint(&["publish", "subscribe"]),
            subscriber: mint(&["subscribe"]),
        }
    }
}
