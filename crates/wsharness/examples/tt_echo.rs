//! The benchmarks' reference point: the echo loop of tokio-tungstenite's own
//! example (`examples/echo-server.rs`): the read half filtered to data
//! messages and forwarded into the write half, which flushes only when no
//! further message is ready (`StreamExt::forward` batches), with default
//! settings.
//!
//! `cargo run --release -p wsharness --example tt_echo -- [127.0.0.1:PORT]`
//! prints `listening on ws://ADDR` on stderr.

use futures_util::{StreamExt, TryStreamExt, future};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("listening on ws://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
            let (write, read) = ws.split();
            // As in tokio-tungstenite's example: "We should not forward
            // messages other than text or binary."
            let _ = read.try_filter(|msg| future::ready(msg.is_text() || msg.is_binary())).forward(write).await;
        });
    }
}
