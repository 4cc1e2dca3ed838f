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
    /// The syntax is RFC 3986's, as `http::Uri` reads it: an IPv6 address
    /// must be in brackets (`ws://[::1]:9001/`; `ws://::1` is refused), and
    /// the path and query hold no space, CR, LF, control or non-ASCII
    /// character, so that they can reach a request line unchanged. On top:
    /// §3: "Fragment identifiers are meaningless in the context of WebSocket
    /// URIs and MUST NOT be used on these URIs." User information is not
    /// part of the grammar either, and the port must be 1–65535.
    pub fn parse(url: &str) -> Result<WsUrl, Error> {
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "ws://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "wss://") {
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
        if authority.is_empty() || authority.contains('@') {
            return Err(Error::UrlHost);
        }
        let authority: http::uri::Authority = authority.parse().map_err(|_| Error::UrlHost)?;
        // `http` reads an out-of-range port as no port at all; read it here.
        let port = match authority.as_str().rsplit_once(':') {
            // RFC 3986 §3.2.3: an empty port is the scheme's default.
            Some((_, p)) if !p.contains(']') && !p.is_empty() => {
                p.parse::<u16>().ok().filter(|p| *p != 0).ok_or(Error::UrlPort)?
            }
            _ if secure => 443,
            _ => 80,
        };
        let host = authority.host();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(Error::UrlHost);
        }
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
        // RFC 3986 §3.3, §3.4: `http` refuses spaces, CR, LF and controls,
        // but lets non-ASCII and a few characters real servers meet through
        // (`{`, `"`, `|`, ...); a URI we write into a request line holds
        // only what the grammar allows.
        if !path.bytes().all(is_path_or_query_byte)
            || (!path.is_empty() && path.parse::<http::uri::PathAndQuery>().is_err())
        {
            return Err(Error::UrlPath);
        }
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

/// RFC 3986 §3.3, §3.4: `pchar / "/" / "?"`, where `pchar = unreserved /
/// pct-encoded / sub-delims / ":" / "@"` (the digits after `%` are bytes of
/// this set too; `http::uri::PathAndQuery` checks nothing finer).
pub(crate) fn is_path_or_query_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@/?".contains(&b)
}

/// `s` without `prefix`, compared case-insensitively (RFC 3986 §3.1: "schemes
/// are case-insensitive").
fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
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
            ("ws://h:99999", Error::UrlPort),
            ("ws://u@h", Error::UrlHost),
            ("ws://h/#frag", Error::UrlFragment),
        ];
        for (url, error) in bad {
            assert_eq!(WsUrl::parse(url), Err(error), "{url}");
        }
    }

    /// The issue's inputs: unbracketed IPv6 is refused, bracketed accepted;
    /// a path with a space or CR/LF never reaches a request line.
    #[test]
    fn ipv6_and_paths_from_the_issue() {
        assert_eq!(WsUrl::parse("ws://::1"), Err(Error::UrlHost));
        let u = WsUrl::parse("ws://[::1]:9001/").expect("valid");
        assert_eq!((u.host.as_str(), u.port, u.resource(), u.connect_addr()), ("::1", 9001, "/", "[::1]:9001".into()));
        for url in
            ["ws://h/a b", "ws://h/a\r\nX-Injected: 1", "ws://h/a\nb", "ws://h/?q=a b", "ws://h/\u{e4}", "ws://h/<x>"]
        {
            assert_eq!(WsUrl::parse(url), Err(Error::UrlPath), "{url:?}");
        }
    }

    /// Our answers against the `url` crate's (WHATWG URL) on a table of
    /// cases. Where both accept, the host, port and path agree. Where we
    /// refuse and `url` accepts, it is because `url` repairs the input
    /// (percent-encodes a space or a non-ASCII letter, drops CR/LF, drops
    /// user information, or reads port 0), or because the scheme is not
    /// ws/wss; each such case is listed.
    #[test]
    fn agrees_with_the_url_crate() {
        // (input, we accept, url repairs what we refuse)
        let cases: [(&str, bool, bool); 26] = [
            ("ws://example.com", true, false),
            ("ws://example.com/", true, false),
            ("wss://example.com:8443/a/b?c=d&e", true, false),
            ("WS://Example.com/", true, false),
            ("ws://127.0.0.1:9001/x", true, false),
            ("ws://[::1]:9001/", true, false),
            ("ws://[::1]/", true, false),
            ("ws://[2001:db8::7]:80/p", true, false),
            ("ws://h:/", true, false),
            ("ws://h/a%20b", true, false),
            ("ws://h?x", true, false),
            ("ws://h:65535", true, false),
            ("ws://::1", false, false),
            ("ws://[::1", false, false),
            ("ws://h:99999", false, false),
            ("ws://h h/", false, false),
            ("ws://h/a b", false, true),
            ("ws://h/a\r\nX: y", false, true),
            ("ws://h/\u{e4}", false, true),
            ("ws://h/{x}", false, true),
            ("ws://h/a\"b", false, true),
            ("ws://u@h/", false, true),
            ("ws://u:p@h/", false, true),
            ("ws://h:0", false, true),
            ("ws://h/#f", false, true),
            ("http://h/", false, true),
        ];
        for (input, accept, repaired) in cases {
            let ours = WsUrl::parse(input);
            let theirs = url::Url::parse(input);
            assert_eq!(ours.is_ok(), accept, "{input:?}: {ours:?}");
            match (&ours, &theirs) {
                (Ok(ours), Ok(theirs)) => {
                    let host = theirs.host_str().unwrap_or_default();
                    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
                    assert!(ours.host.eq_ignore_ascii_case(host), "{input:?}");
                    assert_eq!(Some(ours.port), theirs.port_or_known_default(), "{input:?}");
                    let mut resource = theirs.path().to_owned();
                    if let Some(q) = theirs.query() {
                        resource.push('?');
                        resource.push_str(q);
                    }
                    assert_eq!(ours.resource(), resource, "{input:?}");
                }
                (Ok(_), Err(e)) => panic!("{input:?}: we accept what url refuses ({e})"),
                (Err(_), Ok(_)) => assert!(repaired, "{input:?}: url accepts it; say why we do not"),
                (Err(_), Err(_)) => assert!(!repaired, "{input:?}"),
            }
        }
    }
}
