//! The client address behind trusted reverse proxies: the address the
//! per-address limits (`--max-connections-per-ip`, `--subscribe-rate`)
//! count, read from `Forwarded` (RFC 7239) or `X-Forwarded-For` only when
//! the TCP peer is a proxy the operator listed in `--trusted-proxy`.
//!
//! Behind a proxy every connection comes from the proxy's address, so
//! without this every browser behind it would share one quota. The
//! headers are read from the right (the hop nearest the hub) and trusted
//! hops are skipped: the first address not listed is the client, so a
//! client cannot forge its way past the proxy it came through.

use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

/// One `--trusted-proxy` value: an address (`10.0.0.7`, `::1`) or a
/// network (`10.0.0.0/8`, `fd00::/8`).
///
/// ```
/// use ssehub_server::forwarded::TrustedProxy;
/// let net: TrustedProxy = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// let one: TrustedProxy = "192.168.1.4".parse().unwrap();
/// assert!(!one.contains("192.168.1.5".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

impl TrustedProxy {
    /// Whether `ip` is this proxy (or in this network).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

/// A `--trusted-proxy` value that is neither an address nor a network.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or network (e.g. 10.0.0.7, 10.0.0.0/8, fd00::/8)")]
pub struct BadProxy(String);

impl FromStr for TrustedProxy {
    type Err = BadProxy;

    fn from_str(value: &str) -> Result<Self, BadProxy> {
        let value = value.trim();
        if let Ok(net) = value.parse::<IpNet>() {
            return Ok(Self(net.trunc()));
        }
        value
            .parse::<IpAddr>()
            .map(|ip| Self(IpNet::from(canonical(ip))))
            .map_err(|_| BadProxy(value.to_owned()))
    }
}

impl std::fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`, as a dual-stack
/// listener reports v4 peers) is compared as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The address to count a request from `peer` against: `peer` itself
/// unless it is a trusted proxy, else the nearest forwarded address that
/// is not one. `Forwarded` wins over `X-Forwarded-For` when both are
/// present. A hop that names no usable address (`unknown`, an obfuscated
/// identifier, garbage) ends the walk at the trusted hop that forwarded
/// it: the request counts as coming from that proxy.
///
/// ```
/// use ssehub_server::forwarded::{client_address, TrustedProxy};
/// let trusted: Vec<TrustedProxy> = vec!["10.0.0.0/8".parse().unwrap()];
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "198.51.100.7, 10.0.0.3".parse().unwrap());
/// let peer = "10.0.0.2".parse().unwrap();
/// assert_eq!(client_address(&trusted, peer, &headers), "198.51.100.7".parse::<std::net::IpAddr>().unwrap());
/// // From an untrusted peer, the header is ignored.
/// let stranger = "203.0.113.9".parse().unwrap();
/// assert_eq!(client_address(&trusted, stranger, &headers), stranger);
/// ```
#[must_use]
pub fn client_address(trusted: &[TrustedProxy], peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|proxy| proxy.contains(ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let hops = if headers.contains_key(http::header::FORWARDED) {
        forwarded_for(headers)
    } else {
        x_forwarded_for(headers)
    };
    let mut client = canonical(peer);
    // Nearest hop first.
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(*ip);
                if !is_trusted(client) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The addresses of every `X-Forwarded-For` header, in order (`None` for
/// an entry that is not an address).
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(|entry| node_address(entry.trim()))
        .collect()
}

/// The `for=` addresses of every `Forwarded` element, in order.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(http::header::FORWARDED)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, node)| node_address(node.trim().trim_matches('"')))
        })
        .collect()
}

/// The address of a node as proxies write it: `198.51.100.7`,
/// `198.51.100.7:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, or a bare
/// IPv6 address.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.rsplit_once(':').and_then(|(ip, port)| {
        port.parse::<u16>().ok()?;
        ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_address(&[], ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.0.1"]);
        // A client-supplied value on the left cannot win: 203.0.113.5 is
        // the first untrusted hop from the right.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 192.168.0.1")]);
        assert_eq!(
            client_address(&trusted, ip("10.1.1.1"), &h),
            ip("203.0.113.5")
        );
        // Several headers read as one list.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.5"),
            ("x-forwarded-for", "10.9.9.9"),
        ]);
        assert_eq!(
            client_address(&trusted, ip("10.1.1.1"), &h),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn forwarded_wins_and_reads_ports_brackets_and_quotes() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            (
                "forwarded",
                "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.9:80;by=10.0.0.1",
            ),
        ]);
        assert_eq!(
            client_address(&trusted, ip("10.0.0.1"), &h),
            ip("2001:db8::7")
        );
        let h = headers(&[("forwarded", "proto=http;For=198.51.100.3")]);
        assert_eq!(
            client_address(&trusted, ip("10.0.0.1"), &h),
            ip("198.51.100.3")
        );
    }

    #[test]
    fn an_unusable_hop_stops_at_the_proxy_that_forwarded_it() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4, unknown, 10.0.0.5")]);
        assert_eq!(client_address(&trusted, ip("10.0.0.1"), &h), ip("10.0.0.5"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(client_address(&trusted, ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // No header at all: the proxy itself.
        assert_eq!(
            client_address(&trusted, ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn every_hop_trusted_leaves_the_leftmost() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "10.0.0.8, 10.0.0.9")]);
        assert_eq!(client_address(&trusted, ip("10.0.0.1"), &h), ip("10.0.0.8"));
    }

    #[test]
    fn mapped_v4_peers_compare_as_v4() {
        let trusted = proxies(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            client_address(&trusted, ip("::ffff:127.0.0.1"), &h),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn proxies_parse_addresses_and_networks_only() {
        assert_eq!(
            "10.1.2.3/8".parse::<TrustedProxy>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "::1".parse::<TrustedProxy>().unwrap().to_string(),
            "::1/128"
        );
        for bad in ["", "example.com", "10.0.0.0/40", "10.0.0.1:80"] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
    }
}
