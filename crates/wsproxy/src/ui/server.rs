//! The view's own server, on its own address (it never takes a path from
//! the proxied traffic): the page (`/`, `/app.js`, `/app.css`, compiled
//! into the binary) and `/events`, the WebSocket that streams the events,
//! answered with `wsproto`'s handshake and frame encoder over tokio.
//!
//! `POST /download.har` and `POST /download.pcapng` take the events the
//! page shows (JSON Lines) and answer them as HAR or pcapng ([`export`]).
//!
//! One request per TCP connection (`Connection: close`). The page, the
//! event stream and the downloads need the token when one is set. Against
//! other web pages reading the traffic through the visitor's browser: a
//! `Host` that is not an IP address or `localhost` is refused (DNS
//! rebinding), and `/events` and the downloads refuse an `Origin` other
//! than the view's own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsproto::handshake::{Limits, Request, build_rejection, build_response, parse_request};
use wsproto::{FrameHeader, OpCode, Status, apply_mask, encode_frame, parse_header};

use super::export::{self, ExportError};
use super::{Hub, MAX_CLIENTS, Subscription};

/// The page.
const INDEX_HTML: &str = include_str!("index.html");
/// Its script.
const APP_JS: &str = include_str!("app.js");
/// Its style.
const APP_CSS: &str = include_str!("app.css");

/// How long a browser has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame a page may send (it sends only control frames).
const MAX_PAGE_FRAME: u64 = 4096;
/// How long a page has to send the events of a download.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest download request: the events of a page, which keeps at most
/// what the view keeps (64 MiB by default), and room for JSON's own
/// spelling of them.
fn max_download_body(hub: &Hub) -> usize {
    hub.options().total_bytes.saturating_mul(2).max(1 << 20)
}

/// Downloads rendered and being answered at once (each holds its events
/// while it is rendered and its file until it is written: up to
/// [`max_download_body`] and 256 MiB); more are answered 503. A download
/// takes its place once its events have arrived, and keeps it until its
/// answer is written or fails ([`WRITE_TIMEOUT`]).
const MAX_DOWNLOADS: usize = 2;
static DOWNLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_DOWNLOADS);

/// Bytes of download requests held in all, counted as they arrive (a
/// client that sends only a `Content-Length` holds nothing) and until
/// they are rendered: at most [`MAX_DOWNLOADS`] full ones; past that, 503.
static BODY_BYTES: AtomicUsize = AtomicUsize::new(0);

/// How long a page has to read a download's answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// After a refusal, how long and how much of the request is read and
/// thrown away: closing with unread bytes would reset the connection, and
/// the page would see "Failed to fetch" rather than the reason.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_DRAIN: usize = 16 << 20;

/// A download's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Download {
    Har,
    Pcapng,
}

/// Serves the view on `listener` until the process ends.
pub async fn serve(listener: TcpListener, hub: Hub) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream, hub.clone()));
            }
            // Out of file descriptors and the like: try again shortly.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// What to answer a request.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// A static file: content type and body.
    File(&'static str, &'static str),
    /// An error status with a plain-text reason.
    Refuse(u16, &'static str, String),
    /// A WebSocket upgrade to the event stream: the 101 to send.
    Events(Vec<u8>),
    /// A WebSocket handshake that breaks RFC 6455 §4: the answer to send.
    BadUpgrade(Vec<u8>),
    /// A download: the events (JSON Lines, `Content-Length` bytes) to
    /// answer in this format.
    Download(Download, usize),
}

/// The value of `name` in a query string (no percent-decoding: tokens need none).
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Whether a `Host` value names this machine by address or as `localhost`.
fn host_is_address(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

fn route(req: &Request<'_>, token: Option<&str>) -> Route {
    let refuse = |status, reason, text: &str| Route::Refuse(status, reason, text.to_owned());
    let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
    let host = req.header("host").and_then(|h| std::str::from_utf8(h).ok()).unwrap_or("");
    if !host_is_address(host) {
        return refuse(403, "Forbidden", "the view answers only to an IP address or localhost in Host");
    }
    // The script and the style are the same for everyone (and the page
    // asks for them without the query): only the page and the event
    // stream need the token.
    let public = matches!(path, "/app.js" | "/app.css");
    if let Some(token) = token
        && !public
        && query_param(query, "token") != Some(token)
    {
        return refuse(403, "Forbidden", "this view needs its token: open the URL wsproxy printed (…/?token=…)");
    }
    let origin_differs = || {
        req.header("origin").is_some_and(|origin| {
            let origin = std::str::from_utf8(origin).unwrap_or("");
            let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            authority.is_none_or(|a| !a.eq_ignore_ascii_case(host))
        })
    };
    let download = match path {
        "/download.har" => Some(Download::Har),
        "/download.pcapng" => Some(Download::Pcapng),
        _ => None,
    };
    if let Some(download) = download {
        if req.method != "POST" {
            return refuse(405, "Method Not Allowed", "POST the events to render (JSON Lines)");
        }
        if origin_differs() {
            return refuse(403, "Forbidden", "downloads are for the view's own page (Origin differs)");
        }
        let length = req.header("content-length").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
        return match length {
            Some(length) => Route::Download(download, length),
            None => refuse(411, "Length Required", "send the events with a Content-Length"),
        };
    }
    if req.method != "GET" {
        return refuse(405, "Method Not Allowed", "only GET");
    }
    match path {
        "/" | "/index.html" => Route::File("text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => Route::File("text/javascript; charset=utf-8", APP_JS),
        "/app.css" => Route::File("text/css; charset=utf-8", APP_CSS),
        "/events" => {
            if origin_differs() {
                return refuse(403, "Forbidden", "the event stream is for the view's own page (Origin differs)");
            }
            match req.validate().map_err(build_rejection).and_then(|hs| {
                build_response(&hs.accept_key(), None, None).map_err(|_| build_rejection(wsproto::Error::InvalidToken))
            }) {
                Ok(answer) => Route::Events(answer),
                Err(rejection) => Route::BadUpgrade(rejection),
            }
        }
        _ => refuse(404, "Not Found", "not found"),
    }
}

/// An HTTP/1.1 response that closes the connection.
fn response(status: u16, reason: &str, content_type: &str, body: &str) -> Vec<u8> {
    let mut out = response_head(status, reason, content_type, "", body.len());
    out.extend_from_slice(body.as_bytes());
    out
}

/// The head of an HTTP/1.1 response that closes the connection, with
/// `extra` header lines (each ending in CRLF), for a body of `length` bytes.
fn response_head(status: u16, reason: &str, content_type: &str, extra: &str, length: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n{extra}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// The answer to a download, head and body apart (the file is not copied
/// behind its head): the events in `body` rendered as `download`, or why
/// not (at most `max_events` events).
fn render_download(download: Download, body: &[u8], max_events: usize) -> (Vec<u8>, Vec<u8>) {
    let lines = String::from_utf8_lossy(body);
    let rendered = match download {
        Download::Har => export::har(&lines, max_events).map(|c| (c, "application/json", "wsproxy-view.har")),
        Download::Pcapng => {
            export::pcapng(&lines, max_events).map(|c| (c, "application/x-pcapng", "wsproxy-view.pcapng"))
        }
    };
    match rendered {
        Ok((file, content_type, name)) => {
            let disposition = format!("Content-Disposition: attachment; filename=\"{name}\"\r\n");
            (response_head(200, "OK", content_type, &disposition, file.len()), file)
        }
        Err(e @ (ExportError::TooLarge | ExportError::TooManyEvents(_))) => {
            let text = e.to_string().into_bytes();
            (response_head(413, "Content Too Large", "text/plain; charset=utf-8", "", text.len()), text)
        }
    }
}

/// A download's events, counted in [`BODY_BYTES`] while they are held.
struct Body {
    bytes: Vec<u8>,
    counted: usize,
}

impl Drop for Body {
    fn drop(&mut self) {
        BODY_BYTES.fetch_sub(self.counted, Ordering::AcqRel);
    }
}

/// Why a download's events were not read.
enum BodyError {
    /// The page went away or was too slow.
    Gone,
    /// Other downloads hold the bytes they may.
    Busy,
}

/// Reads the rest of a request body of `length` bytes (`start` holds its
/// start), counting what arrives against `budget` bytes held in all.
async fn read_body(
    stream: &mut TcpStream,
    mut start: Vec<u8>,
    length: usize,
    budget: usize,
) -> Result<Body, BodyError> {
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    start.truncate(length);
    let mut body = Body { bytes: Vec::new(), counted: 0 };
    let take = |body: &mut Body, piece: &[u8]| {
        if BODY_BYTES.fetch_add(piece.len(), Ordering::AcqRel) + piece.len() > budget {
            BODY_BYTES.fetch_sub(piece.len(), Ordering::AcqRel);
            return Err(BodyError::Busy);
        }
        body.counted += piece.len();
        // Grown as the bytes arrive, never past `length`.
        let bytes = &mut body.bytes;
        if bytes.capacity() - bytes.len() < piece.len() {
            bytes.reserve_exact(piece.len().max(bytes.len()).min(length - bytes.len()));
        }
        bytes.extend_from_slice(piece);
        Ok(())
    };
    take(&mut body, &start)?;
    drop(start);
    let mut chunk = vec![0u8; 64 << 10];
    while body.bytes.len() < length {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                let n = n.min(length - body.bytes.len());
                take(&mut body, &chunk[..n])?;
            }
            _ => return Err(BodyError::Gone),
        }
    }
    Ok(body)
}

/// Answers a refusal, then reads and throws away what the client still
/// sends (a bounded amount, for a short while) so that the connection
/// ends with the answer read, not reset.
async fn refuse(mut stream: TcpStream, answer: &[u8]) {
    let written = tokio::time::timeout(HEAD_TIMEOUT, async {
        stream.write_all(answer).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    let mut chunk = vec![0u8; 64 << 10];
    let mut drained = 0;
    while drained < MAX_DRAIN {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

async fn handle(mut stream: TcpStream, hub: Hub) {
    let limits = Limits::default();
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let (route, head_len) = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
        match parse_request(&buf, &limits) {
            Ok(Status::Complete((req, len))) => break (route(&req, hub.options().token.as_deref()), len),
            Ok(Status::Partial) => {}
            Err(e) => {
                let _ = stream.write_all(&build_rejection(e)).await;
                return;
            }
        }
    };
    let text = "text/plain; charset=utf-8";
    let answer = match route {
        Route::Download(_, length) if length > max_download_body(&hub) => {
            let reason = format!("at most {} MiB of events per download", max_download_body(&hub) >> 20);
            return refuse(stream, &response(413, "Content Too Large", text, &reason)).await;
        }
        Route::Download(download, length) => {
            buf.drain(..head_len);
            let budget = max_download_body(&hub).saturating_mul(MAX_DOWNLOADS);
            let busy = format!("at most {MAX_DOWNLOADS} downloads at once: try again when one is done");
            let body = match read_body(&mut stream, buf, length, budget).await {
                Ok(body) => body,
                Err(BodyError::Gone) => return,
                Err(BodyError::Busy) => {
                    return refuse(stream, &response(503, "Service Unavailable", text, &busy)).await;
                }
            };
            // Taken once the events are here, kept until the answer is
            // written or fails.
            let Ok(_permit) = DOWNLOADS.try_acquire() else {
                return refuse(stream, &response(503, "Service Unavailable", text, &busy)).await;
            };
            let max_events = hub.options().total.max(1);
            // Rendering a large capture takes a while: off the runtime's
            // threads. The events are let go of once rendered.
            let rendered =
                tokio::task::spawn_blocking(move || render_download(download, &body.bytes, max_events)).await;
            let (head, file) = match rendered {
                Ok(answer) => answer,
                Err(_) => (response(500, "Internal Server Error", text, "rendering failed"), Vec::new()),
            };
            let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
                stream.write_all(&head).await?;
                stream.write_all(&file).await?;
                stream.shutdown().await
            })
            .await;
            return;
        }
        Route::File(content_type, body) => response(200, "OK", content_type, body),
        Route::Refuse(status, reason, reason_text) => {
            return refuse(stream, &response(status, reason, text, &reason_text)).await;
        }
        Route::BadUpgrade(answer) => answer,
        Route::Events(answer) => {
            // Subscribed before the 101: what happens after it reaches the page.
            let Some(sub) = hub.subscribe() else {
                let reason = format!("at most {MAX_CLIENTS} pages watch at once");
                let _ = stream.write_all(&response(503, "Service Unavailable", text, &reason)).await;
                return;
            };
            if stream.write_all(&answer).await.is_ok() {
                buf.drain(..head_len);
                events(stream, &hub, sub, buf).await;
            } else {
                hub.unsubscribe(sub.id);
            }
            return;
        }
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&answer)).await;
    let _ = stream.shutdown().await;
}

/// Appends a server frame (unmasked, RFC 6455 §5.1) to `out`.
fn frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    encode_frame(&FrameHeader::new(opcode, payload.len() as u64), payload, out);
}

/// The event stream of one page: every batch from the hub as one text
/// frame (JSON lines separated by `\n`); the page's pings answered, its
/// close echoed.
async fn events(mut stream: TcpStream, hub: &Hub, mut sub: Subscription, mut inbuf: Vec<u8>) {
    let mut out = Vec::new();
    let (mut rd, mut wr) = stream.split();
    for batch in std::mem::take(&mut sub.snapshot) {
        out.clear();
        frame(&mut out, OpCode::Text, batch.as_bytes());
        if wr.write_all(&out).await.is_err() {
            hub.unsubscribe(sub.id);
            return;
        }
    }
    let mut chunk = [0u8; 4096];
    'conn: loop {
        // The page's frames: control frames only matter.
        while let Status::Complete(parsed) = parse_header(&inbuf) {
            let len = parsed.header.payload_len;
            if len > MAX_PAGE_FRAME {
                break 'conn;
            }
            let end = parsed.header_len + len as usize;
            if inbuf.len() < end {
                break;
            }
            let mut payload = inbuf[parsed.header_len..end].to_vec();
            if let Some(key) = parsed.header.mask {
                apply_mask(&mut payload, key, 0);
            }
            inbuf.drain(..end);
            out.clear();
            match parsed.header.opcode {
                OpCode::Ping => frame(&mut out, OpCode::Pong, &payload),
                OpCode::Close => {
                    // §5.5.1: echo the status code.
                    frame(&mut out, OpCode::Close, payload.get(..2).unwrap_or(&[]));
                    let _ = wr.write_all(&out).await;
                    break 'conn;
                }
                _ => continue,
            }
            if wr.write_all(&out).await.is_err() {
                break 'conn;
            }
        }
        tokio::select! {
            batch = sub.rx.recv() => {
                let Some(batch) = batch else { break };
                sub.queued.fetch_sub(batch.len(), Ordering::AcqRel);
                out.clear();
                frame(&mut out, OpCode::Text, batch.as_bytes());
                if wr.write_all(&out).await.is_err() {
                    break;
                }
            }
            read = rd.read(&mut chunk) => match read {
                Ok(n) if n > 0 => inbuf.extend_from_slice(&chunk[..n]),
                _ => break,
            },
        }
    }
    hub.unsubscribe(sub.id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(head: &str, token: Option<&str>) -> Route {
        let Ok(Status::Complete((req, _))) = parse_request(head.as_bytes(), &Limits::default()) else {
            panic!("unparsable test head {head:?}");
        };
        route(&req, token)
    }

    const UPGRADE: &str = "GET /events HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                           Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    #[test]
    fn routes() {
        let get = |target: &str, host: &str| format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert!(matches!(route_of(&get("/", "127.0.0.1:9"), None), Route::File(t, _) if t.starts_with("text/html")));
        assert!(matches!(route_of(&get("/app.js", "localhost:9"), None), Route::File(..)));
        assert!(matches!(route_of(&get("/app.css", "[::1]:9"), None), Route::File(..)));
        assert!(matches!(route_of(&get("/nope", "127.0.0.1"), None), Route::Refuse(404, ..)));
        // DNS rebinding: a name other than localhost.
        assert!(matches!(route_of(&get("/", "evil.example:9"), None), Route::Refuse(403, ..)));
        // The token, on the page and the event stream.
        assert!(matches!(route_of(&get("/", "127.0.0.1"), Some("s3cret")), Route::Refuse(403, ..)));
        assert!(matches!(route_of(&get("/?token=nope", "127.0.0.1"), Some("s3cret")), Route::Refuse(403, ..)));
        assert!(matches!(route_of(&get("/?token=s3cret", "127.0.0.1"), Some("s3cret")), Route::File(..)));
        assert!(matches!(route_of(&get("/events?token=nope", "127.0.0.1"), Some("s3cret")), Route::Refuse(403, ..)));
        // The page's script and style carry no secret (and no query).
        assert!(matches!(route_of(&get("/app.js", "127.0.0.1"), Some("s3cret")), Route::File(..)));
        // /events without an upgrade is a bad upgrade (426/400 from wsproto).
        assert!(matches!(route_of(&get("/events", "127.0.0.1"), None), Route::BadUpgrade(_)));
    }

    #[test]
    fn downloads_are_posted_with_their_length_from_the_page_itself() {
        let post = |target: &str, extra: &str| format!("POST {target} HTTP/1.1\r\nHost: 127.0.0.1:9\r\n{extra}\r\n");
        let len = "Content-Length: 12\r\n";
        assert_eq!(route_of(&post("/download.har", len), None), Route::Download(Download::Har, 12));
        assert_eq!(route_of(&post("/download.pcapng", len), None), Route::Download(Download::Pcapng, 12));
        assert!(matches!(route_of(&post("/download.har", ""), None), Route::Refuse(411, ..)));
        let get = "GET /download.har HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n";
        assert!(matches!(route_of(get, None), Route::Refuse(405, ..)));
        let foreign = format!("{len}Origin: http://evil.example\r\n");
        assert!(matches!(route_of(&post("/download.har", &foreign), None), Route::Refuse(403, ..)));
        let own = format!("{len}Origin: http://127.0.0.1:9\r\n");
        assert!(matches!(route_of(&post("/download.har", &own), None), Route::Download(..)));
        // The token, as for the page.
        assert!(matches!(route_of(&post("/download.har", len), Some("s3cret")), Route::Refuse(403, ..)));
        assert!(matches!(route_of(&post("/download.har?token=s3cret", len), Some("s3cret")), Route::Download(..)));
        // Pages are only GET.
        assert!(matches!(route_of(&post("/", len), None), Route::Refuse(405, ..)));
    }

    #[test]
    fn a_download_answers_the_file_or_why_not() {
        let events =
            r#"{"ts":"2026-01-01T00:00:00Z","conn":1,"event":"open","client":"127.0.0.1:1","upstream":"127.0.0.1:2"}"#;
        let render = |download, events: &str| {
            let (head, file) = render_download(download, events.as_bytes(), 10);
            [head, file].concat()
        };
        let har = String::from_utf8(render(Download::Har, events)).expect("text");
        assert!(har.starts_with("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"), "{har}");
        assert!(
            har.contains("filename=\"wsproxy-view.har\"") && har.contains("{\"log\":{\"version\":\"1.2\""),
            "{har}"
        );
        let pcap = render(Download::Pcapng, events);
        assert!(pcap.starts_with(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-pcapng\r\n"));
        let huge = r#"{"ts":"2026-01-01T00:00:00Z","conn":1,"event":"frame","from":"client","fin":true,"rsv1":false,"rsv2":false,"rsv3":false,"opcode":"binary","masked":false,"mask":null,"len":999999999999,"header_len":10,"offset":0,"preview":"","preview_encoding":"hex","preview_truncated":true}"#;
        let refused = String::from_utf8(render(Download::Pcapng, huge)).expect("text");
        assert!(refused.starts_with("HTTP/1.1 413 ") && refused.contains("larger than 256 MiB"), "{refused}");
        let many: String = (0..11).map(|c| events.replace("\"conn\":1", &format!("\"conn\":{c}")) + "\n").collect();
        for download in [Download::Har, Download::Pcapng] {
            let refused = String::from_utf8(render(download, &many)).expect("text");
            assert!(refused.starts_with("HTTP/1.1 413 ") && refused.contains("more than 10 events"), "{refused}");
        }
    }

    #[test]
    fn the_event_stream_checks_origin_and_answers_with_the_accept_key() {
        let Route::Events(answer) = route_of(&format!("{UPGRADE}\r\n"), None) else { panic!("no upgrade") };
        let answer = String::from_utf8(answer).expect("ascii");
        // RFC 6455 §1.3's example key and accept value.
        assert!(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{answer}");
        let same = format!("{UPGRADE}Origin: http://127.0.0.1:9\r\n\r\n");
        assert!(matches!(route_of(&same, None), Route::Events(_)));
        let other = format!("{UPGRADE}Origin: http://evil.example\r\n\r\n");
        assert!(matches!(route_of(&other, None), Route::Refuse(403, ..)));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("a=1&token=x", "token"), Some("x"));
        assert_eq!(query_param("tokens=x", "token"), None);
        assert_eq!(query_param("", "token"), None);
    }
}
