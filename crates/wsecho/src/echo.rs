//! The WebSocket side: echo every data message back, as tokio-tungstenite
//! hands it over.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use crate::{Config, Lifecycle};

/// How long a connection closed by shutdown waits for the peer's close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

fn ws_config(config: &Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_frame_size))
        .read_buffer_size(config.read_buffer_size)
        // Replies are flushed as soon as no further message is ready; in
        // between, up to this much is gathered into one write.
        .write_buffer_size(16 << 10)
}

/// Echoes on an upgraded connection until the peer closes, an error
/// occurs, or the server shuts down (then: close 1001).
pub(crate) async fn run<S>(io: S, peer: SocketAddr, config: &Config, mut life: Lifecycle)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config(config))).await;
    debug!(%peer, "websocket open");
    let result = tokio::select! {
        result = echo(&mut ws, config.idle_timeout) => match result {
            Err(Idle) => {
                debug!(%peer, "idle timeout: closing with 1001");
                let close = CloseFrame { code: CloseCode::Away, reason: "idle timeout".into() };
                let _ = ws.send(Message::Close(Some(close))).await;
                let _ = tokio::time::timeout(CLOSE_WAIT, async { while ws.next().await.is_some() {} }).await;
                Ok(())
            }
            Ok(result) => result,
        },
        _ = life.shutting_down() => {
            let close = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
            let _ = ws.send(Message::Close(Some(close))).await;
            // Read until the peer's close arrives (tungstenite then ends the
            // stream), or give up.
            let _ = tokio::time::timeout(CLOSE_WAIT, async { while ws.next().await.is_some() {} }).await;
            Ok(())
        }
    };
    match result {
        Ok(()) | Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => debug!(%peer, "websocket closed"),
        Err(e) => match close_code_for(&e) {
            // RFC 6455 §7.1.7: to _Fail the WebSocket Connection_ an endpoint
            // sends a close frame with the matching code (§7.4.1), then
            // closes once the peer answers (or soon after).
            Some(code) => {
                debug!(%peer, error = %e, ?code, "failing the connection");
                let close = CloseFrame { code, reason: e.to_string().chars().take(100).collect::<String>().into() };
                if ws.send(Message::Close(Some(close))).await.is_ok() {
                    let _ = tokio::time::timeout(CLOSE_WAIT, async { while ws.next().await.is_some() {} }).await;
                }
            }
            None => debug!(%peer, error = %e, "websocket ended"),
        },
    }
}

/// The close code for an error the peer caused; `None` for I/O errors.
fn close_code_for(error: &WsError) -> Option<CloseCode> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match error {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake | ProtocolError::SendAfterClosing) => None,
        WsError::Protocol(_) => Some(CloseCode::Protocol),
        WsError::Utf8(_) => Some(CloseCode::Invalid),
        WsError::Capacity(_) => Some(CloseCode::Size),
        _ => None,
    }
}

/// The connection received nothing for [`Config::idle_timeout`].
struct Idle;

/// The echo loop. Replies are queued without flushing while more messages
/// are already readable, then flushed together: one write for a burst.
/// Ends with `Err(Idle)` when nothing arrives for `idle_timeout`.
async fn echo<S>(ws: &mut WebSocketStream<S>, idle_timeout: Option<Duration>) -> Result<Result<(), WsError>, Idle>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = match ws.next().now_or_never() {
            Some(next) => next,
            None => {
                if let Err(e) = ws.flush().await {
                    return Ok(Err(e));
                }
                match idle_timeout {
                    Some(idle) => tokio::time::timeout(idle, ws.next()).await.map_err(|_| Idle)?,
                    None => ws.next().await,
                }
            }
        };
        match next {
            None => return Ok(Ok(())),
            Some(Err(e)) => return Ok(Err(e)),
            Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                if let Err(e) = ws.feed(msg).await {
                    return Ok(Err(e));
                }
            }
            // Pings are answered and closes acknowledged by tungstenite itself.
            Some(Ok(_)) => {}
        }
    }
}
