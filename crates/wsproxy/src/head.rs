//! The changes the proxy makes to the client's request: the `Host` header
//! (and, by the rule below, the target's path), and, only with
//! `--no-compression`, the removal of `Sec-WebSocket-Extensions` lines so
//! that the upstream does not negotiate compression. Every other byte of the
//! head is forwarded as it came.
//!
//! Target rule: when the upstream URL has a path and the client asked for
//! `/` (with or without a query), the upstream path replaces it (the
//! client's query is kept if it has one, else the upstream URL's). Any other
//! target is forwarded unchanged.

use std::ops::Range;

/// Where the request line's target and the `Host` value sit in the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadLayout {
    /// The request target in the request line.
    pub target: Range<usize>,
    /// The value of the first `Host` header line, without surrounding
    /// whitespace.
    pub host_value: Option<Range<usize>>,
    /// Every `Sec-WebSocket-Extensions` line, CRLF included.
    pub extension_lines: Vec<Range<usize>>,
}

/// Finds the target and the `Host` value in a complete, parsed head.
pub fn layout(head: &[u8]) -> Option<HeadLayout> {
    // RFC 9112 §2.2: empty lines before the request line are ignored (the
    // scanner and httparse skip them too).
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line_end = start + head[start..].iter().position(|&b| b == b'\r')?;
    let line = &head[start..line_end];
    let first_space = start + line.iter().position(|&b| b == b' ')?;
    let target_len = head[first_space + 1..line_end].iter().position(|&b| b == b' ')?;
    let target = first_space + 1..first_space + 1 + target_len;
    let mut host_value = None;
    let mut extension_lines = Vec::new();
    let mut pos = line_end + 2;
    while pos < head.len() {
        let end = head[pos..].windows(2).position(|w| w == b"\r\n").map_or(head.len(), |i| pos + i);
        let field = &head[pos..end];
        if field.is_empty() {
            break;
        }
        let colon = field.iter().position(|&b| b == b':');
        if let Some(colon) = colon
            && field[..colon].eq_ignore_ascii_case(b"sec-websocket-extensions")
        {
            extension_lines.push(pos..(end + 2).min(head.len()));
        }
        if let Some(colon) = colon
            && host_value.is_none()
            && field[..colon].eq_ignore_ascii_case(b"host")
        {
            let mut start = pos + colon + 1;
            let mut stop = end;
            while start < stop && matches!(head[start], b' ' | b'\t') {
                start += 1;
            }
            while stop > start && matches!(head[stop - 1], b' ' | b'\t') {
                stop -= 1;
            }
            host_value = Some(start..stop);
        }
        pos = end + 2;
    }
    Some(HeadLayout { target, host_value, extension_lines })
}

/// The target to send upstream, per the module's rule, if it changes.
///
/// An absolute-form target (`GET http://client:9002/?room=1`) is sent in
/// origin form (`/?room=1`, then the rule above): RFC 9112 §3.2.1 has a
/// request to an origin server carry only the path and query, and the
/// authority the client named is not the upstream's (§3.2.2).
pub fn forwarded_target(client_target: &str, upstream_path: &str) -> Option<String> {
    let origin_form = absolute_to_origin_form(client_target);
    let target = origin_form.as_deref().unwrap_or(client_target);
    let replaced = path_rule(target, upstream_path);
    replaced.or(origin_form)
}

/// The origin form of an absolute-form target; `None` for any other form.
fn absolute_to_origin_form(target: &str) -> Option<String> {
    if target.starts_with('/') || target == "*" {
        return None;
    }
    let uri: http::Uri = target.parse().ok()?;
    uri.scheme()?;
    uri.authority()?;
    Some(match uri.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => pq.as_str().to_owned(),
        Some(pq) => format!("/{}", pq.as_str()),
        None => "/".to_owned(),
    })
}

fn path_rule(client_target: &str, upstream_path: &str) -> Option<String> {
    if upstream_path.is_empty() || upstream_path == "/" {
        return None;
    }
    let (path, query) = match client_target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (client_target, None),
    };
    if path != "/" {
        return None;
    }
    let upstream_path_only = upstream_path.split_once('?').map_or(upstream_path, |(p, _)| p);
    Some(match query {
        Some(q) => format!("{upstream_path_only}?{q}"),
        None => upstream_path.to_owned(),
    })
}

/// The changes to make to a request head.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rewrite<'a> {
    /// A new request target.
    pub target: Option<&'a str>,
    /// A new `Host` value.
    pub host: Option<&'a str>,
    /// Remove the `Sec-WebSocket-Extensions` lines.
    pub drop_extensions: bool,
}

/// The head to send upstream: `head` with the changes of `with`. Without
/// changes it is `head` itself.
pub fn rewrite(head: &[u8], layout: &HeadLayout, with: Rewrite<'_>) -> Vec<u8> {
    let Rewrite { target, host, drop_extensions } = with;
    let mut edits: Vec<(Range<usize>, &[u8])> = Vec::new();
    if drop_extensions {
        edits.extend(layout.extension_lines.iter().map(|r| (r.clone(), &b""[..])));
    }
    if let Some(t) = target {
        edits.push((layout.target.clone(), t.as_bytes()));
    }
    if let (Some(h), Some(range)) = (host, layout.host_value.clone()) {
        edits.push((range, h.as_bytes()));
    }
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(head.len() + 64);
    let mut pos = 0;
    for (range, with) in edits {
        out.extend_from_slice(&head[pos..range.start]);
        out.extend_from_slice(with);
        pos = range.end;
    }
    out.extend_from_slice(&head[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] =
        b"GET /?room=1 HTTP/1.1\r\nUser-Agent: x\r\nhOsT:   client.example:9002 \r\nUpgrade: websocket\r\n\r\n";

    #[test]
    fn finds_target_and_host() {
        let l = layout(HEAD).expect("layout");
        assert_eq!(&HEAD[l.target.clone()], b"/?room=1");
        assert_eq!(&HEAD[l.host_value.clone().expect("host")], b"client.example:9002");
    }

    #[test]
    fn rewrites_only_what_it_must() {
        let l = layout(HEAD).expect("layout");
        let host = |h| Rewrite { host: Some(h), ..Rewrite::default() };
        let out = rewrite(HEAD, &l, host("127.0.0.1:9001"));
        assert_eq!(
            out,
            b"GET /?room=1 HTTP/1.1\r\nUser-Agent: x\r\nhOsT:   127.0.0.1:9001 \r\nUpgrade: websocket\r\n\r\n"
        );
        let out = rewrite(HEAD, &l, Rewrite { target: Some("/chat?room=1"), ..host("up") });
        assert_eq!(out, b"GET /chat?room=1 HTTP/1.1\r\nUser-Agent: x\r\nhOsT:   up \r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(rewrite(HEAD, &l, Rewrite::default()), HEAD);
        // No extensions offered: nothing to drop.
        assert_eq!(rewrite(HEAD, &l, Rewrite { drop_extensions: true, ..Rewrite::default() }), HEAD);
    }

    #[test]
    fn no_compression_drops_every_extensions_line_and_nothing_else() {
        let head =
            b"GET / HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
            X: y\r\nsec-websocket-extensions: x-other\r\n\r\n";
        let l = layout(head).expect("layout");
        assert_eq!(l.extension_lines.len(), 2);
        let out = rewrite(head, &l, Rewrite { drop_extensions: true, ..Rewrite::default() });
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n");
    }

    #[test]
    fn empty_lines_before_the_request_line_are_skipped() {
        let head = b"\r\n\r\nGET /x HTTP/1.1\r\nHost: client\r\n\r\n";
        let l = layout(head).expect("a layout");
        assert_eq!(&head[l.target.clone()], b"/x");
        assert_eq!(&head[l.host_value.clone().expect("host")], b"client");
        let out = rewrite(head, &l, Rewrite { host: Some("up:1"), ..Rewrite::default() });
        assert_eq!(out, b"\r\n\r\nGET /x HTTP/1.1\r\nHost: up:1\r\n\r\n");
    }

    #[test]
    fn target_rule() {
        assert_eq!(forwarded_target("/", "/chat"), Some("/chat".into()));
        assert_eq!(forwarded_target("/?a=1", "/chat?b=2"), Some("/chat?a=1".into()));
        assert_eq!(forwarded_target("/", "/chat?b=2"), Some("/chat?b=2".into()));
        assert_eq!(forwarded_target("/other", "/chat"), None);
        assert_eq!(forwarded_target("/", ""), None);
        assert_eq!(forwarded_target("/", "/"), None);
    }

    /// RFC 9112 §3.2.2: an absolute-form target reaches the upstream as
    /// its own path (and the Host is rewritten as always).
    #[test]
    fn absolute_form_targets_are_sent_in_origin_form() {
        let cases = [
            ("http://client:9002/?room=1", "", Some("/?room=1")),
            ("http://client:9002/?room=1", "/chat", Some("/chat?room=1")),
            ("ws://client/socket", "/chat", Some("/socket")),
            ("HTTPS://Client.Example", "", Some("/")),
            ("wss://[::1]:9001/a/b?c", "", Some("/a/b?c")),
            ("/plain", "/chat", None),
            ("*", "", None),
            ("chat", "", None),
        ];
        for (target, upstream_path, want) in cases {
            assert_eq!(forwarded_target(target, upstream_path).as_deref(), want, "{target} with {upstream_path:?}");
        }
    }
}
