//! An Autobahn fuzzingserver driver for this workspace's own client: the
//! bench's connector (TCP, the opening handshake, a permessage-deflate
//! offer) and `wsproto`'s sans-IO [`Endpoint`] in the client role. Shaped
//! as every client library's driver: ask the case count, run each case
//! echoing every message back, then ask the server to update its reports.
//!
//! ```text
//! cargo run --release -p wsharness --example wsproto_autobahn_client -- ws://127.0.0.1:9001
//! wsharness autobahn client --agent wsproto -- target/release/examples/wsproto_autobahn_client
//! ```
//!
//! The base URL comes from the first argument, else from `AUTOBAHN_URL`;
//! the agent from `AUTOBAHN_AGENT` (default `wsproto`).

use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsharness::bench::{Connector, TlsOptions, XorShift};
use wsproto::WsUrl;
use wsproto::endpoint::{Endpoint, EndpointConfig, Received};

/// What the client offers: permessage-deflate, any client window (RFC 7692
/// §7.1.2.2), as browsers do.
const OFFER: &str = "permessage-deflate; client_max_window_bits";
/// 9.* sends messages of up to 16 MiB.
const MAX_MESSAGE: u64 = 64 << 20;
/// How long the client waits for the server to close TCP after the closing
/// handshake (RFC 6455 §7.1.1: the server closes first).
const SERVER_CLOSE_WAIT: Duration = Duration::from_secs(2);

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let base = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AUTOBAHN_URL").ok())
        .context("usage: wsproto_autobahn_client ws://HOST:PORT (or AUTOBAHN_URL)")?;
    let base = base.trim_end_matches('/').to_owned();
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "wsproto".into());
    let mut rng = XorShift::new();

    let messages = session(&base, "/getCaseCount", false, &mut rng).await?;
    let count: u32 = messages
        .first()
        .and_then(|m| std::str::from_utf8(m).ok())
        .and_then(|t| t.trim().parse().ok())
        .context("/getCaseCount: no count")?;
    for case in 1..=count {
        // The case's outcome is the fuzzingserver's to judge.
        if let Err(e) = session(&base, &format!("/runCase?case={case}&agent={agent}"), true, &mut rng).await {
            eprintln!("case {case}: {e:#}");
        }
    }
    session(&base, &format!("/updateReports?agent={agent}"), false, &mut rng).await?;
    eprintln!("{count} cases run as {agent}");
    Ok(())
}

/// One connection to `base` + `resource`, echoing every message (if `echo`)
/// until the closing handshake is over; returns the messages received when
/// it does not echo them.
async fn session(base: &str, resource: &str, echo: bool, rng: &mut XorShift) -> anyhow::Result<Vec<Vec<u8>>> {
    let url = WsUrl::parse(&format!("{base}{resource}")).map_err(|e| anyhow::anyhow!("{base}{resource}: {e}"))?;
    let connector = Connector::new(url, &TlsOptions::default(), &[], None, &[])?.with_extensions(Some(OFFER))?;
    let opened = connector.open(rng.nonce()).await.map_err(|e| e.error)?;
    let mut keys = XorShift::new();
    let config = EndpointConfig {
        max_message_len: MAX_MESSAGE,
        max_frame_len: MAX_MESSAGE,
        deflate: opened.deflate,
        ..EndpointConfig::default()
    };
    let mut endpoint = Endpoint::client(config, Box::new(move || keys.mask()));
    let (mut stream, mut buf) = (opened.stream, opened.rest);
    let mut messages = Vec::new();
    let mut received = Vec::new();
    loop {
        // handle_input stops after each message, so that its echo goes out
        // before a violation that follows it closes the connection.
        let mut used = 0;
        loop {
            let n = endpoint.handle_input(&mut buf[used..], &mut received);
            used += n;
            let got = !received.is_empty();
            for r in received.drain(..) {
                if let Received::Message { kind, data } = r {
                    // A case's messages are echoed, not kept (9.* sends
                    // 16 MiB ones); only /getCaseCount's is read.
                    if echo {
                        endpoint.send(kind, &data);
                        endpoint.recycle(data);
                    } else {
                        messages.push(data);
                    }
                }
            }
            if n == 0 && !got {
                break;
            }
        }
        buf.drain(..used);
        let out = endpoint.output();
        if !out.is_empty() {
            stream.write_all(out).await?;
            out.clear();
        }
        if endpoint.is_closed() {
            let mut rest = [0u8; 4096];
            let _ = tokio::time::timeout(SERVER_CLOSE_WAIT, async {
                while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
            })
            .await;
            let _ = stream.shutdown().await;
            return Ok(messages);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(messages);
        }
    }
}
