//! WebSocket URIs (RFC 6455 §3): `ws://host[:port][/path][?query]` and
//! `wss://…`.

use core::fmt;

use crate::error::Error;

/// A parsed `ws://` or `wss://` URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsUrl {
    /// `wss://`: the connection runs over TLS.
    pub secure: bool,
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Port: as given, else 80 for ws and 443 for wss.
    pub port: u16,
    /// Path and query as given; empty when the URI has neither.
    pub path: String,
}

impl WsUrl {
    /// Parses a WebSocket URI.
    ///
    /// §3: "Fragment identifiers are meaningless in the context of WebSocket
    /// URIs and MUST NOT be used on these URIs." User information is not
    /// part of the grammar either.
    pub fn parse(url: &str) -> Result<WsUrl, Error> {
        let (secure, rest) = if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else {
            return Err(Error::UrlScheme);
        };
        if rest.contains('#') {
            return Err(Error::UrlFragment);
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(Error::UrlHost);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(Error::UrlHost)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or(Error::UrlHost)?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains([' ', '[', ']']) {
            return Err(Error::UrlHost);
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or(Error::UrlPort)?,
            None if secure => 443,
            None => 80,
        };
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
        Ok(WsUrl { secure, host: host.to_owned(), port, path })
    }

    fn default_port(&self) -> u16 {
        if self.secure { 443 } else { 80 }
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() }
    }

    /// The value of a `Host` header for this URI: the host, and the port
    /// unless it is the scheme's default.
    pub fn authority(&self) -> String {
        if self.port == self.default_port() {
            self.bracketed_host()
        } else {
            format!("{}:{}", self.bracketed_host(), self.port)
        }
    }

    /// `host:port`, for connecting.
    pub fn connect_addr(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    /// The request target: the path and query, `/` when empty.
    pub fn resource(&self) -> &str {
        if self.path.is_empty() { "/" } else { &self.path }
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", if self.secure { "wss" } else { "ws" }, self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = WsUrl::parse("ws://127.0.0.1:9001").expect("valid");
        assert_eq!((u.host.as_str(), u.port, u.path.as_str(), u.resource()), ("127.0.0.1", 9001, "", "/"));
        assert_eq!(u.authority(), "127.0.0.1:9001");
        let u = WsUrl::parse("ws://example.com/chat?x=1").expect("valid");
        assert_eq!((u.port, u.resource(), u.authority()), (80, "/chat?x=1", "example.com".to_string()));
        let u = WsUrl::parse("wss://example.com?x").expect("valid");
        assert_eq!((u.secure, u.port, u.resource()), (true, 443, "/?x"));
        let u = WsUrl::parse("ws://[::1]:8080/a").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.connect_addr(), u.authority()),
            ("::1", "[::1]:8080".into(), "[::1]:8080".into())
        );
        assert_eq!(u.to_string(), "ws://[::1]:8080/a");
        let bad = [
            ("http://x", Error::UrlScheme),
            ("x:80", Error::UrlScheme),
            ("ws://", Error::UrlHost),
            ("ws://h:port", Error::UrlPort),
            ("ws://h:0", Error::UrlPort),
            ("ws://u@h", Error::UrlHost),
            ("ws://h/#frag", Error::UrlFragment),
        ];
        for (url, error) in bad {
            assert_eq!(WsUrl::parse(url), Err(error), "{url}");
        }
    }
}
