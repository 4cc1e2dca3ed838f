//! The upstream: a `ws://` or `wss://` URI (RFC 6455 §3, parsed by `wsproto`).

use anyhow::bail;

pub use wsproto::WsUrl as Upstream;

/// Parses `--upstream`. The error names the flag and, for the URLs people
/// paste from elsewhere (`http://`, `https://`, a bare `host:port`), the
/// URL they meant.
pub fn parse(url: &str) -> anyhow::Result<Upstream> {
    match Upstream::parse(url) {
        Ok(u) => Ok(u),
        Err(e) => {
            let lower = url.to_ascii_lowercase();
            let suggestion = if let Some(rest) = lower.strip_prefix("http://").map(|_| &url[7..]) {
                format!("WebSocket URLs start with ws:// where HTTP's start with http://: try --upstream ws://{rest}")
            } else if let Some(rest) = lower.strip_prefix("https://").map(|_| &url[8..]) {
                format!(
                    "WebSocket URLs start with wss:// where HTTPS's start with https://: try --upstream wss://{rest}"
                )
            } else if !url.contains("://") {
                format!("try --upstream ws://{url}")
            } else {
                "the form is ws://HOST[:PORT][/PATH], or wss://… for TLS".to_owned()
            };
            bail!("--upstream {url}: {e}; {suggestion}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        assert_eq!(parse("ws://127.0.0.1:9001/x").map(|u| u.connect_addr()).ok().as_deref(), Some("127.0.0.1:9001"));
        let secure = parse("wss://example.com/x").expect("wss");
        assert_eq!((secure.secure, secure.connect_addr()), (true, "example.com:443".to_owned()));
    }

    #[test]
    fn errors_suggest_the_url_meant() {
        let cases = [
            ("http://127.0.0.1:8080/chat", "try --upstream ws://127.0.0.1:8080/chat"),
            ("HTTPS://h/x", "try --upstream wss://h/x"),
            ("127.0.0.1:8080", "try --upstream ws://127.0.0.1:8080"),
            ("ws://h:0", "ws://HOST[:PORT][/PATH]"),
        ];
        for (url, want) in cases {
            let e = parse(url).expect_err(url).to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(e.starts_with(&format!("--upstream {url}: ")), "{e}");
            assert_eq!(e.matches("expected").count(), 1.min(e.matches("expected").count()), "{e}");
        }
    }
}
