//! The demo page at `/`: subscribe, publish, watch updates arrive, and
//! the hub's live figures (the debugger's live view, inlined).
//!
//! In development mode `/demo/config.json` hands the page a publisher and
//! a subscriber token minted for the identity the page was loaded from
//! (their `aud` is that origin's hub URL); otherwise the page asks for one.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, Uri, header};
use serde::Serialize;

use crate::auth::{self, Algorithm};
use crate::routes::{App, HUB_PATH};

const PAGE: &str = include_str!("../assets/index.html");

/// The page with the live view's style and script put in place of their
/// markers: one self-contained document, as before, sharing the
/// debugger's live view.
static ASSEMBLED: LazyLock<String> = LazyLock::new(|| {
    PAGE.replace(
        "<!-- live-view:style -->",
        &format!("<style>\n{}</style>", crate::debugger::LIVE_STYLE),
    )
    .replace(
        "<!-- live-view:script -->",
        &format!("<script>\n{}</script>", crate::debugger::LIVE_SCRIPT),
    )
});

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

/// `GET /`.
pub(crate) async fn page() -> Html<&'static str> {
    Html(ASSEMBLED.as_str())
}

/// What the page reads at start.
#[derive(Serialize)]
struct PageConfig<'a> {
    hub: &'a str,
    dev: bool,
    #[serde(rename = "cookieName")]
    cookie_name: &'a str,
    #[serde(flatten)]
    tokens: DevTokens,
}

/// `GET /demo/config.json`.
pub(crate) async fn config(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    let tokens = match (&app.dev_key, app.settings.identities.of(&uri, &headers)) {
        (Some(key), Ok(identity)) => key.tokens(&[&identity.resource]),
        _ => DevTokens::default(),
    };
    let document = PageConfig {
        hub: HUB_PATH,
        dev: app.settings.dev,
        cookie_name: &app.auth.cookie_name,
        tokens,
    };
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(document)).into_response()
}
