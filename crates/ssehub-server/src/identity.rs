//! Who the hub is to a request: its OAuth 2.0 resource identifier (the
//! `aud` tokens must carry), the URL of its protected resource metadata
//! (RFC 9728), and the origin a browser's request should come from.
//!
//! Unless a resource identifier is pinned, the hub derives its identity
//! from each request — the scheme it is served on and the `Host` the client
//! contacted — so one hub reachable under several names needs no
//! configuration: a token minted for `https://a.example/.well-known/mercure`
//! works on `a.example`, not on `b.example`. When public URLs are
//! configured, a request for any other host is answered
//! `421 Misdirected Request` before an identity is derived from it, and a
//! listed host takes its public URL's scheme: behind a proxy that ends TLS,
//! `--public-url https://hub.example` makes the identity `https://…` while
//! the hub itself serves plain HTTP.
//!
//! ```
//! use ssehub_server::identity::Identities;
//!
//! let identities = Identities::new("http", None, &["http://hub.example".parse().unwrap()]).unwrap();
//! let request = http::Request::get("/.well-known/mercure").header("host", "Hub.Example").body(()).unwrap();
//! let identity = identities.of(request.uri(), request.headers()).unwrap();
//! assert_eq!(&*identity.resource, "http://hub.example/.well-known/mercure");
//! assert_eq!(&*identity.metadata, "http://hub.example/.well-known/oauth-protected-resource/.well-known/mercure");
//!
//! let elsewhere = http::Request::get("/").header("host", "other.example").body(()).unwrap();
//! assert!(identities.of(elsewhere.uri(), elsewhere.headers()).is_err());
//! ```

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Uri, header};
use url::Url;

use crate::topic::RESERVED_PATH;

/// Where RFC 9728 puts the metadata of a resource whose path is the hub's.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

/// The hub's identity for one request.
///
/// Shared strings: a hub answers few hosts, and each request's identity is
/// a copy of its host's, made once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The request's origin (`scheme://host[:port]`, lowercase host).
    pub origin: Arc<str>,
    /// The resource identifier: the `aud` a token must carry.
    pub resource: Arc<str>,
    /// The absolute URL of the protected resource metadata; empty when a
    /// pinned identifier is not an absolute URL.
    pub metadata: Arc<str>,
    /// The `Link` to the hub of this origin responses carry
    /// (`<origin/.well-known/mercure>; rel="mercure"`).
    pub hub_link: HeaderValue,
}

/// Why no identity could be derived for a request.
///
/// ```
/// use ssehub_server::identity::IdentityError;
/// assert_eq!(IdentityError::NoHost.status(), http::StatusCode::BAD_REQUEST);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Neither a `Host` header nor an authority in the request target.
    #[error("the request names no host")]
    NoHost,
    /// The origin is not one of the configured public URLs.
    #[error("{0} is not a public host of this hub")]
    Misdirected(String),
}

impl IdentityError {
    /// `400` without a host, `421 Misdirected Request` for an unlisted origin.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::NoHost => http::StatusCode::BAD_REQUEST,
            Self::Misdirected(_) => http::StatusCode::MISDIRECTED_REQUEST,
        }
    }
}

/// How the hub derives its identity: the scheme it serves, an optional
/// pinned resource identifier and the allowlist of public origins.
#[derive(Debug, Clone)]
pub struct Identities {
    scheme: &'static str,
    pinned: Option<(String, String)>,
    /// The public origins, each with its authority as a `Host` header
    /// names it (`host[:port]`, lowercase).
    origins: Vec<(String, String)>,
    /// Identities made, by the host as requests name it.
    made: Arc<quick_cache::sync::Cache<String, Identity>>,
}

/// Hosts whose identities are kept: a hub has a handful; more (a client
/// inventing hosts, with no public URLs set) only costs remaking them.
const HOSTS_KEPT: usize = 64;

/// Why a configured identity setting is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityConfigError {
    /// A public URL that is not an absolute URL with a host.
    #[error("--public-url {0:?} is not an absolute URL with a host")]
    PublicUrl(String),
    /// A resource identifier that RFC 9728 cannot carry.
    #[error(
        "--resource-identifier {0:?} must be an absolute URL with a host and without a fragment"
    )]
    ResourceIdentifier(String),
}

impl Identities {
    /// `scheme` is `https` when the hub serves TLS itself; `resource` pins
    /// the resource identifier; `public` lists the URLs the hub answers on
    /// (only their scheme and host count; empty: any).
    ///
    /// # Errors
    /// [`IdentityConfigError`] for a public URL without a host, or a
    /// resource identifier with a fragment.
    pub fn new(
        scheme: &'static str,
        resource: Option<&Url>,
        public: &[Url],
    ) -> Result<Self, IdentityConfigError> {
        let pinned = match resource {
            None => None,
            Some(url) if url.fragment().is_some() || url.cannot_be_a_base() => {
                return Err(IdentityConfigError::ResourceIdentifier(url.to_string()));
            }
            Some(url) => {
                let origin = url.origin();
                let metadata = if origin.is_tuple() {
                    format!("{}{METADATA_PATH}", origin.ascii_serialization())
                } else {
                    String::new()
                };
                Some((url.to_string(), metadata))
            }
        };
        let origins = public
            .iter()
            .map(|url| {
                let origin = url.origin();
                match (&origin, url.host_str()) {
                    (url::Origin::Tuple(..), Some(host)) => {
                        let authority = match url.port() {
                            Some(port) => format!("{host}:{port}"),
                            None => host.to_owned(),
                        };
                        Ok((origin.ascii_serialization(), authority))
                    }
                    _ => Err(IdentityConfigError::PublicUrl(url.to_string())),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            scheme,
            pinned,
            origins,
            made: Arc::new(quick_cache::sync::Cache::new(HOSTS_KEPT)),
        })
    }

    /// The pinned resource identifier, if any.
    pub fn pinned(&self) -> Option<&str> {
        self.pinned.as_ref().map(|(resource, _)| resource.as_str())
    }

    /// The configured public origins (`scheme://host[:port]`).
    pub fn public_origins(&self) -> impl Iterator<Item = &str> {
        self.origins.iter().map(|(origin, _)| origin.as_str())
    }

    /// The identity for a request with this target and these headers.
    ///
    /// # Errors
    /// [`IdentityError::NoHost`] when the request names no host,
    /// [`IdentityError::Misdirected`] when its origin is not a public URL.
    pub fn of(&self, uri: &Uri, headers: &HeaderMap) -> Result<Identity, IdentityError> {
        // HTTP/2 carries the host in `:authority` (the URI); HTTP/1.1 in
        // `Host`.
        let host = uri
            .authority()
            .map(http::uri::Authority::as_str)
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .filter(|h| !h.is_empty() && !h.contains(['/', '@', ' ']))
            .ok_or(IdentityError::NoHost)?;
        if let Some(identity) = self.made.get(host) {
            return Ok(identity);
        }
        let identity = self.make(host.to_ascii_lowercase())?;
        self.made.insert(host.to_owned(), identity.clone());
        Ok(identity)
    }

    /// The identity for `host` (lowercase), made afresh.
    fn make(&self, host: String) -> Result<Identity, IdentityError> {
        let origin = match self
            .origins
            .iter()
            .find(|(_, authority)| *authority == host)
        {
            Some((origin, _)) => origin.clone(),
            None if self.origins.is_empty() => format!("{}://{host}", self.scheme),
            None => return Err(IdentityError::Misdirected(host)),
        };
        let (resource, metadata) = match &self.pinned {
            Some((resource, metadata)) => (resource.clone(), metadata.clone()),
            None => (
                format!("{origin}{RESERVED_PATH}"),
                format!("{origin}{METADATA_PATH}"),
            ),
        };
        let hub_link =
            HeaderValue::from_str(&format!("<{origin}{RESERVED_PATH}>; rel=\"mercure\""))
                .unwrap_or_else(|_| {
                    HeaderValue::from_static("</.well-known/mercure>; rel=\"mercure\"")
                });
        Ok(Identity {
            origin: origin.into(),
            resource: resource.into(),
            metadata: metadata.into(),
            hub_link,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: Option<&str>, uri: &str) -> http::request::Parts {
        let mut builder = http::Request::get(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn identities_are_derived_per_host_unless_pinned() {
        let open = Identities::new("https", None, &[]).unwrap();
        let a = request(Some("a.example"), "/.well-known/mercure");
        let b = request(Some("b.example:8443"), "/.well-known/mercure");
        assert_eq!(
            &*open.of(&a.uri, &a.headers).unwrap().resource,
            "https://a.example/.well-known/mercure"
        );
        assert_eq!(
            &*open.of(&b.uri, &b.headers).unwrap().origin,
            "https://b.example:8443"
        );
        let h2 = request(None, "https://c.example/.well-known/mercure");
        assert_eq!(
            &*open.of(&h2.uri, &h2.headers).unwrap().origin,
            "https://c.example"
        );
        let none = request(None, "/.well-known/mercure");
        assert_eq!(
            open.of(&none.uri, &none.headers),
            Err(IdentityError::NoHost)
        );

        let pinned_url = Url::parse("https://hub.example/.well-known/mercure").unwrap();
        let pinned = Identities::new("http", Some(&pinned_url), &[]).unwrap();
        let identity = pinned.of(&a.uri, &a.headers).unwrap();
        assert_eq!(
            &*identity.resource,
            "https://hub.example/.well-known/mercure"
        );
        assert_eq!(
            &*identity.metadata,
            "https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure"
        );
        assert_eq!(&*identity.origin, "http://a.example");
    }

    #[test]
    fn public_urls_pin_scheme_and_host() {
        let urls = [
            Url::parse("https://a.example").unwrap(),
            Url::parse("https://b.example:8443/ignored/path").unwrap(),
        ];
        // Behind a proxy that ends TLS the hub serves plain HTTP; the
        // public URL still says what clients see.
        let http = Identities::new("http", None, &urls).unwrap();
        let a = request(Some("a.example"), "/");
        assert_eq!(
            &*http.of(&a.uri, &a.headers).unwrap().resource,
            "https://a.example/.well-known/mercure"
        );
        let https = Identities::new("https", None, &urls).unwrap();
        assert!(https.of(&a.uri, &a.headers).is_ok());
        let wrong_port = request(Some("a.example:8443"), "/");
        assert!(matches!(
            https.of(&wrong_port.uri, &wrong_port.headers),
            Err(IdentityError::Misdirected(_))
        ));
        let b = request(Some("B.example:8443"), "/");
        assert!(https.of(&b.uri, &b.headers).is_ok());
        let c = request(Some("c.example"), "/");
        assert_eq!(
            https.of(&c.uri, &c.headers).unwrap_err().status(),
            http::StatusCode::MISDIRECTED_REQUEST
        );
    }

    #[test]
    fn unusable_settings_are_refused() {
        let fragment = Url::parse("https://hub.example/.well-known/mercure#x").unwrap();
        assert!(Identities::new("https", Some(&fragment), &[]).is_err());
        let urn = Url::parse("urn:hub").unwrap();
        assert!(Identities::new("https", None, &[urn]).is_err());
    }
}
