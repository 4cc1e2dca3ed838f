//! tokio-tungstenite's Autobahn client driver, as the crate's own
//! `examples/autobahn-client.rs` writes it: `getCaseCount`, then each
//! `runCase` echoing text and binary messages back, then `updateReports`,
//! as agent `tokio-tungstenite`. The one change: the base URL comes from
//! the first argument or `$AUTOBAHN_URL` (default `ws://127.0.0.1:9001`)
//! instead of being `ws://localhost:9001`.
//!
//! `wsharness autobahn client -- cargo run -p wsharness --example tt_autobahn_client`

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::{Error, Result};

const AGENT: &str = "tokio-tungstenite";

async fn get_case_count(base: &str) -> Result<u32> {
    let (mut socket, _) = connect_async(format!("{base}/getCaseCount")).await?;
    let msg = socket.next().await.expect("Can't fetch case count")?;
    socket.close(None).await?;
    Ok(msg.to_text()?.parse::<u32>().expect("Can't parse case count"))
}

async fn update_reports(base: &str) -> Result<()> {
    let (mut socket, _) = connect_async(format!("{base}/updateReports?agent={AGENT}")).await?;
    socket.close(None).await?;
    Ok(())
}

async fn run_test(base: &str, case: u32) -> Result<()> {
    let case_url = format!("{base}/runCase?case={case}&agent={AGENT}");
    let (mut ws_stream, _) = connect_async(case_url).await?;
    while let Some(msg) = ws_stream.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws_stream.send(msg).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let base = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AUTOBAHN_URL").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let total = get_case_count(&base).await.expect("Error getting case count");
    for case in 1..=total {
        if let Err(e) = run_test(&base, case).await {
            match e {
                Error::ConnectionClosed | Error::Protocol(_) | Error::Utf8(_) => (),
                err => eprintln!("Testcase failed: {err}"),
            }
        }
    }
    update_reports(&base).await.expect("Error updating reports");
}
