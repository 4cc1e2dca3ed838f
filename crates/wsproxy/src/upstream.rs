//! The upstream URL: `ws://host[:port][/path]`.

use std::fmt;

use anyhow::{Context, bail};

/// Where the proxy connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query from the URL; empty when the URL has none.
    pub path: String,
}

impl Upstream {
    /// Parses `ws://host[:port][/path]`.
    pub fn parse(url: &str) -> anyhow::Result<Upstream> {
        let rest = match url.split_once("://") {
            Some(("ws", rest)) => rest,
            Some(("wss", _)) => {
                bail!("{url}: wss:// upstreams need TLS, which this build of wsproxy does not speak yet")
            }
            Some((scheme, _)) => bail!("{url}: unsupported scheme {scheme:?} (expected ws://)"),
            None => bail!("{url}: expected a URL like ws://host:port/path"),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            bail!("{url}: credentials in the URL are not supported");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').with_context(|| format!("{url}: unterminated IPv6 address"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            bail!("{url}: no host");
        }
        let port = match port {
            Some(p) => p.parse().with_context(|| format!("{url}: invalid port {p:?}"))?,
            None => 80,
        };
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
        Ok(Upstream { host: host.to_owned(), port, path })
    }

    /// The value for the `Host` header: host, with the port unless it is 80.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == 80 { host } else { format!("{host}:{}", self.port) }
    }

    /// `host:port` to connect to.
    pub fn connect_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Upstream::parse("ws://127.0.0.1:9001").expect("valid");
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 9001, ""));
        assert_eq!(u.authority(), "127.0.0.1:9001");
        let u = Upstream::parse("ws://example.com/chat?x=1").expect("valid");
        assert_eq!((u.port, u.path.as_str(), u.authority()), (80, "/chat?x=1", "example.com".to_string()));
        let u = Upstream::parse("ws://[::1]:8080/a").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.connect_addr(), u.authority()),
            ("::1", "[::1]:8080".to_string(), "[::1]:8080".to_string())
        );
        for bad in ["http://x", "x:80", "ws://", "ws://h:port", "ws://u@h"] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
        assert!(Upstream::parse("wss://h").expect_err("tls").to_string().contains("TLS"));
    }
}
