//! The one change the proxy makes to the client's request: the `Host`
//! header (and, by the rule below, the target's path). Every other byte of
//! the head is forwarded as it came.
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
}

/// Finds the target and the `Host` value in a complete, parsed head.
pub fn layout(head: &[u8]) -> Option<HeadLayout> {
    let line_end = head.iter().position(|&b| b == b'\r')?;
    let line = &head[..line_end];
    let first_space = line.iter().position(|&b| b == b' ')?;
    let target_len = line[first_space + 1..].iter().position(|&b| b == b' ')?;
    let target = first_space + 1..first_space + 1 + target_len;
    let mut host_value = None;
    let mut pos = line_end + 2;
    while pos < head.len() {
        let end = head[pos..].windows(2).position(|w| w == b"\r\n").map_or(head.len(), |i| pos + i);
        let field = &head[pos..end];
        if field.is_empty() {
            break;
        }
        if let Some(colon) = field.iter().position(|&b| b == b':')
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
            break;
        }
        pos = end + 2;
    }
    Some(HeadLayout { target, host_value })
}

/// The target to send upstream, per the module's rule, if it changes.
pub fn forwarded_target(client_target: &str, upstream_path: &str) -> Option<String> {
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

/// The head to send upstream: `head` with the target and the `Host` value
/// replaced where given. Without replacements it is `head` itself.
pub fn rewrite(head: &[u8], layout: &HeadLayout, target: Option<&str>, host: Option<&str>) -> Vec<u8> {
    let mut edits: Vec<(Range<usize>, &[u8])> = Vec::new();
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
        let out = rewrite(HEAD, &l, None, Some("127.0.0.1:9001"));
        assert_eq!(
            out,
            b"GET /?room=1 HTTP/1.1\r\nUser-Agent: x\r\nhOsT:   127.0.0.1:9001 \r\nUpgrade: websocket\r\n\r\n"
        );
        let out = rewrite(HEAD, &l, Some("/chat?room=1"), Some("up"));
        assert_eq!(out, b"GET /chat?room=1 HTTP/1.1\r\nUser-Agent: x\r\nhOsT:   up \r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(rewrite(HEAD, &l, None, None), HEAD);
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
}
