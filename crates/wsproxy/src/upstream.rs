//! The upstream: a `ws://` or `wss://` URI (RFC 6455 §3, parsed by `wsproto`).

use anyhow::bail;

pub use wsproto::WsUrl as Upstream;

/// Parses `--upstream`.
pub fn parse(url: &str) -> anyhow::Result<Upstream> {
    let upstream = match Upstream::parse(url) {
        Ok(u) => u,
        Err(e) => bail!("--upstream {url}: {e} (expected ws://HOST[:PORT][/PATH] or wss://…)"),
    };
    Ok(upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        assert_eq!(parse("ws://127.0.0.1:9001/x").map(|u| u.connect_addr()).ok().as_deref(), Some("127.0.0.1:9001"));
        let secure = parse("wss://example.com/x").expect("wss");
        assert_eq!((secure.secure, secure.connect_addr()), (true, "example.com:443".to_owned()));
        assert!(parse("http://h").expect_err("scheme").to_string().contains("ws://HOST"));
    }
}
