//! The `wsproto` engine: tokio reads and writes, `wsproto`'s sans-IO
//! [`Endpoint`] does the protocol (frames, permessage-deflate, the
//! closing handshake), and this loop echoes every message it completes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::debug;
use wsproto::CloseCode;
use wsproto::deflate::DeflateParams;
use wsproto::endpoint::{Endpoint, EndpointConfig, Received};

use crate::{Config, Lifecycle};

/// How long the server waits for the client's close after sending its own
/// (shutdown, idle timeout, or a violation).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Echoes at least this long are written from the message's own buffer
/// (see [`Endpoint::send_header`]).
const DIRECT_WRITE: usize = 16 << 10;

/// A frame with at least this much payload still to come is read straight
/// into its message's buffer (see [`Endpoint::payload_buffer`]) instead of
/// into the read buffer and then copied.
const DIRECT_READ: usize = 16 << 10;

/// The most the read buffer grows to while large messages flow (it starts
/// at `--read-buffer-size`, and goes back to it once reads are small).
/// Frames with 16 KiB or more to come are read into their messages instead
/// ([`DIRECT_READ`]), so more than this bought no CPU per echo at 16 B,
/// 64 KiB or 1 MiB (measured A/B against 256 KiB: the same to 1 %), and
/// cost about 200 KiB of peak memory per busy connection.
const MAX_READ_BUFFER: usize = 64 << 10;

/// Echoes on an upgraded connection until the closing handshake is over,
/// the peer goes away, or the close wait runs out.
pub(crate) async fn run<S>(
    mut io: S,
    peer: SocketAddr,
    config: &Config,
    deflate: Option<DeflateParams>,
    mut life: Lifecycle,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut endpoint = Endpoint::server(EndpointConfig {
        max_message_len: config.max_message_size as u64,
        max_frame_len: config.max_frame_size as u64,
        deflate,
        ..EndpointConfig::default()
    });
    debug!(%peer, ?deflate, "websocket open (wsproto)");
    // Reads and writes take turns (an echo waits for its own writes), so
    // the stream is not split.
    let base = config.read_buffer_size.max(1);
    let mut buf = vec![0u8; base];
    let mut received = Vec::new();
    let mut shutting_down = false;
    // When the server's close went out: the client then has CLOSE_WAIT to answer.
    let mut close_deadline: Option<Instant> = None;
    loop {
        let output = endpoint.output();
        if !output.is_empty() {
            if let Err(e) = io.write_all(output).await {
                debug!(%peer, error = %e, "write failed");
                return;
            }
            output.clear();
        }
        if endpoint.is_closed() {
            // RFC 6455 §7.1.1: the server closes the TCP connection first.
            let _ = io.shutdown().await;
            debug!(%peer, "websocket closed");
            return;
        }
        if endpoint.close_sent() && close_deadline.is_none() {
            close_deadline = Some(Instant::now() + CLOSE_WAIT);
        }
        let idle = config.idle_timeout.filter(|_| close_deadline.is_none());
        // The rest of a large frame goes straight into its message.
        let direct = endpoint.payload_buffer().filter(|(_, limit)| *limit >= DIRECT_READ);
        let read = tokio::select! {
            read = read_some(&mut io, &mut buf, direct) => read,
            () = life.shutting_down(), if !shutting_down => {
                shutting_down = true;
                endpoint.close(CloseCode::GOING_AWAY, "server shutting down");
                continue;
            }
            () = sleep_or_never(idle) => {
                debug!(%peer, "idle timeout: closing with 1001");
                endpoint.close(CloseCode::GOING_AWAY, "idle timeout");
                continue;
            }
            () = until_or_never(close_deadline) => {
                debug!(%peer, "no close from the client in time");
                return;
            }
        };
        let n = match read {
            Ok(Read::Direct(0)) | Ok(Read::Buffered(0)) => {
                debug!(%peer, "websocket ended without a close");
                return;
            }
            Ok(Read::Direct(_)) => {
                endpoint.payload_read(&mut received);
                0
            }
            Ok(Read::Buffered(n)) => n,
            Err(e) => {
                debug!(%peer, error = %e, "read failed");
                return;
            }
        };
        let n = match n {
            // A read that filled the buffer: big messages are flowing, so
            // the buffer grows (to MAX_READ_BUFFER), and each read takes
            // more of them per system call.
            n if n == buf.len() && buf.len() < MAX_READ_BUFFER => {
                buf.resize((buf.len() * 2).min(MAX_READ_BUFFER), 0);
                n
            }
            // Back to the configured size once reads are small again, so
            // that a connection keeps no large buffer after a burst.
            n if n > 0 && n <= base && buf.len() > base && n < buf.len() / 4 => {
                buf.truncate(base);
                buf.shrink_to_fit();
                n
            }
            n => n,
        };
        // Each message is answered before the rest of the input is read, so
        // that a violation after it closes after its echo.
        let mut used = 0;
        loop {
            let before = used;
            used += endpoint.handle_input(&mut buf[used..n], &mut received);
            if used == before && received.is_empty() {
                break;
            }
            for event in received.drain(..) {
                match event {
                    // A large echo goes out from its own buffer, after what
                    // was queued before it, instead of being copied into
                    // the output first (small ones are gathered into one
                    // write).
                    Received::Message { kind, data }
                        if data.len() >= DIRECT_WRITE && endpoint.send_header(kind, data.len()) =>
                    {
                        let output = endpoint.output();
                        if let Err(e) = write_all_vectored(&mut io, output, &data).await {
                            debug!(%peer, error = %e, "write failed");
                            return;
                        }
                        output.clear();
                        endpoint.recycle(data);
                    }
                    Received::Message { kind, data } => {
                        endpoint.send(kind, &data);
                        endpoint.recycle(data);
                    }
                    Received::Failed(error) => debug!(%peer, rule = error.rule(), "failing the connection"),
                    Received::Ping(_) | Received::Pong(_) | Received::Close(_) => {}
                }
            }
        }
    }
}

/// What one read got: bytes in the read buffer, or payload appended
/// straight to the message being received.
enum Read {
    Buffered(usize),
    Direct(usize),
}

/// Reads into `direct` (a message buffer and how much it may take) if
/// given, else into `buf`.
async fn read_some<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut [u8],
    direct: Option<(&mut Vec<u8>, usize)>,
) -> std::io::Result<Read> {
    match direct {
        // Into the vector's spare capacity, with no zeroing first.
        Some((message, limit)) => io.read_buf(&mut bytes::BufMut::limit(message, limit)).await.map(Read::Direct),
        None => io.read(buf).await.map(Read::Buffered),
    }
}

/// Writes `head` then `body`, in as few system calls as the stream allows.
async fn write_all_vectored<S: AsyncWrite + Unpin>(io: &mut S, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        let n = io.write_vectored(&[std::io::IoSlice::new(head), std::io::IoSlice::new(body)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

async fn sleep_or_never(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
