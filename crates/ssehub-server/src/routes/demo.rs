//! The demo page at `/`: subscribe, publish, watch updates arrive, and
//! the hub's live figures (the debugger's live view, inlined).
//!
//! In development mode `/demo/config.json` hands the page a publisher and
//! a subscriber token minted for the identity the page was loaded from
//! (their `aud` is that origin's hub URL); otherwise the page asks for one.

use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, Uri, header};
use serde::Serialize;

use super::app::{App, HUB_PATH};
use super::debugger::{BASE_STYLE, LIVE_SCRIPT, LIVE_STYLE};
use crate::demo::DevTokens;

const PAGE: &str = include_str!("../../assets/index.html");

/// The page with the shared styles and the live view's style and script
/// put in place of their markers: one self-contained document, sharing
/// the debugger's base styles and live view.
static ASSEMBLED: LazyLock<String> = LazyLock::new(|| {
    PAGE.replace(
        "<!-- base:style -->",
        &format!("<style>\n{BASE_STYLE}</style>"),
    )
    .replace(
        "<!-- live-view:style -->",
        &format!("<style>\n{}</style>", LIVE_STYLE),
    )
    .replace(
        "<!-- live-view:script -->",
        &format!("<script>\n{}</script>", LIVE_SCRIPT),
    )
});

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_inlines_the_shared_styles_before_its_own_and_the_live_view() {
        for marker in ["<!-- base:style -->", "<!-- live-view:"] {
            assert!(!ASSEMBLED.contains(marker), "{marker} left in the page");
        }
        let shared = ASSEMBLED.find(BASE_STYLE).expect("base.css inlined");
        let own = ASSEMBLED
            .find("section.wide")
            .expect("the page's own rules");
        assert!(
            shared < own,
            "the page's own rules come after the shared ones"
        );
        assert!(ASSEMBLED.contains(LIVE_STYLE) && ASSEMBLED.contains(LIVE_SCRIPT));
    }
}
