//! The upstream: a `ws://` URI (RFC 6455 §3, parsed by `wsproto`).

use anyhow::bail;

pub use wsproto::WsUrl as Upstream;

/// Parses `--upstream`.
pub fn parse(url: &str) -> anyhow::Result<Upstream> {
    let upstream = match Upstream::parse(url) {
        Ok(u) => u,
        Err(e) => bail!("--upstream {url}: {e} (expected ws://HOST[:PORT][/PATH])"),
    };
    if upstream.secure {
        bail!("--upstream {url}: wss:// upstreams need TLS, which this build of wsproxy does not speak yet");
    }
    Ok(upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        assert_eq!(parse("ws://127.0.0.1:9001/x").map(|u| u.connect_addr()).ok().as_deref(), Some("127.0.0.1:9001"));
        assert!(parse("wss://h").expect_err("tls").to_string().contains("TLS"));
        assert!(parse("http://h").expect_err("scheme").to_string().contains("ws://HOST"));
    }
}
