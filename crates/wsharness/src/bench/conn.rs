//! Opening a bench connection: TCP, TLS for `wss://` (the proxy's client,
//! [`wsproxy::tls`]), and the opening handshake with the caller's headers
//! and subprotocols, each step timed on its own. A failure says which step
//! failed and how, so the report can count it by kind.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wsproto::WsUrl;
use wsproto::handshake::{self, Limits};

/// A connection's byte stream: plain TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open connection's stream, whichever it is.
pub type BoxStream = Box<dyn Stream>;

/// The headers the handshake itself writes: set them with the flags
/// named here, not with `--header`.
const MANAGED: [(&str, &str); 7] = [
    ("host", "it comes from --url"),
    ("upgrade", "the handshake sets it"),
    ("connection", "the handshake sets it"),
    ("sec-websocket-key", "the handshake sets it"),
    ("sec-websocket-version", "the handshake sets it"),
    ("sec-websocket-protocol", "use --subprotocol"),
    (
        "sec-websocket-extensions",
        "bench offers no extension: its echoes are checked byte for byte, and the 101's answer to an offer would go unchecked",
    ),
];

/// How to open connections to one server.
#[derive(Clone)]
pub struct Connector {
    target: WsUrl,
    tls: Option<TlsConnector>,
    /// Extra request headers, checked: `Name: value` lines without CR/LF.
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    /// A `Sec-WebSocket-Extensions` offer (the replay's recorded one).
    extensions: Option<String>,
}

/// The TLS settings for a `wss://` server.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// A PEM file of CA certificates (or the server's own) to trust besides
    /// the platform's and the webpki roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Do not verify the server's certificate.
    pub insecure: bool,
}

/// How long each step of opening a connection took.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// TCP connect.
    pub tcp: Duration,
    /// TLS handshake (`wss://` only).
    pub tls: Option<Duration>,
    /// The WebSocket opening handshake (request sent to 101 read).
    pub ws: Duration,
}

/// An open connection.
pub struct Opened {
    /// The stream, after the 101.
    pub stream: BoxStream,
    /// Bytes that came after the 101 (the first frames, if any).
    pub rest: Vec<u8>,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// The permessage-deflate parameters agreed, if an offer made one.
    pub deflate: Option<wsproto::deflate::DeflateParams>,
    /// Step times.
    pub timings: Timings,
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// TCP connect or the TLS handshake failed.
    Connect,
    /// The server answered the upgrade with another status than 101.
    Status(u16),
    /// The 101 or the exchange before it was wrong (accept key, an
    /// unoffered subprotocol, a malformed head, a closed connection).
    Handshake,
    /// Connecting and the handshakes took longer than [`OPEN_TIMEOUT`].
    Timeout,
}

/// The longest a connection may take to open (TCP, TLS and the upgrade).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed open, with its kind and a message that names the server.
#[derive(Debug)]
pub struct OpenError {
    /// Which step failed.
    pub kind: OpenFailure,
    /// What happened.
    pub error: anyhow::Error,
}

impl Connector {
    /// Checks the options and prepares the TLS client for `wss://`.
    pub fn new(
        target: WsUrl,
        tls: &TlsOptions,
        headers: &[String],
        origin: Option<&str>,
        protocols: &[String],
    ) -> anyhow::Result<Connector> {
        let mut parsed = Vec::new();
        for h in headers {
            parsed.push(parse_header(h)?);
        }
        if let Some(origin) = origin {
            anyhow::ensure!(
                !parsed.iter().any(|(n, _)| n.eq_ignore_ascii_case("origin")),
                "give the Origin once: with --origin or with --header, not both"
            );
            parsed.push(parse_header(&format!("Origin: {origin}")).map_err(|e| anyhow::anyhow!("--origin: {e}"))?);
        }
        let names: Vec<&str> = protocols.iter().map(String::as_str).collect();
        // build_request checks the subprotocols (tokens, each once); try it
        // once here so a bad one is a usage error, not a failed connection.
        handshake::build_request(&target.authority(), target.resource(), &handshake::encode_key([0; 16]), &names, None)
            .map_err(|e| anyhow::anyhow!("--subprotocol {}: {e}", names.join(", ")))?;
        let tls = if target.secure {
            if tls.insecure {
                eprintln!("wsharness: warning: --insecure: the server's certificate is not verified");
            }
            let trust = wsproxy::tls::UpstreamTrust { ca_file: tls.ca_file.clone(), insecure: tls.insecure };
            Some(TlsConnector::from(wsproxy::tls::client_config_for(&trust, "--ca")?))
        } else {
            if tls.ca_file.is_some() || tls.insecure {
                eprintln!("wsharness: note: --ca and --insecure only apply to a wss:// URL");
            }
            None
        };
        Ok(Connector { target, tls, headers: parsed, protocols: protocols.to_vec(), extensions: None })
    }

    /// Offers `offer` (a `Sec-WebSocket-Extensions` value) in the opening
    /// handshake; the server's answer is checked against it (RFC 6455
    /// §4.1, RFC 7692 §7.1).
    pub fn with_extensions(mut self, offer: Option<&str>) -> anyhow::Result<Connector> {
        if let Some(offer) = offer {
            handshake::parse_extensions(offer.as_bytes(), &mut Vec::new())
                .map_err(|e| anyhow::anyhow!("the extension offer {offer:?}: {e}"))?;
        }
        self.extensions = offer.map(str::to_owned);
        Ok(self)
    }

    /// The server's URL.
    pub fn target(&self) -> &WsUrl {
        &self.target
    }

    /// The opening request with `key`.
    fn request(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        let names: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        let mut request = handshake::build_request(
            &self.target.authority(),
            self.target.resource(),
            key,
            &names,
            self.extensions.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!("cannot build the opening request: {e}"))?;
        // Before the blank line that ends the head.
        request.truncate(request.len() - 2);
        for (name, value) in &self.headers {
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        Ok(request)
    }

    /// Opens a connection and completes the opening handshake, within
    /// [`OPEN_TIMEOUT`].
    pub async fn open(&self, nonce: [u8; 16]) -> Result<Opened, OpenError> {
        self.open_within(nonce, OPEN_TIMEOUT).await
    }

    /// [`Connector::open`], within `timeout`.
    pub async fn open_within(&self, nonce: [u8; 16], timeout: Duration) -> Result<Opened, OpenError> {
        tokio::time::timeout(timeout, self.open_unbounded(nonce)).await.unwrap_or_else(|_| {
            Err(OpenError {
                kind: OpenFailure::Timeout,
                error: anyhow::anyhow!(
                    "{}: no answer to the opening handshake within {timeout:?}",
                    self.target.connect_addr()
                ),
            })
        })
    }

    async fn open_unbounded(&self, nonce: [u8; 16]) -> Result<Opened, OpenError> {
        let addr = self.target.connect_addr();
        let fail = |kind, error| OpenError { kind, error };
        let started = Instant::now();
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| fail(OpenFailure::Connect, anyhow::Error::new(e).context(format!("connecting to {addr}"))))?;
        let _ = tcp.set_nodelay(true);
        let tcp_time = started.elapsed();
        let (mut stream, tls_time): (BoxStream, _) = match &self.tls {
            None => (Box::new(tcp), None),
            Some(connector) => {
                let name = wsproxy::tls::server_name(&self.target.host).map_err(|e| fail(OpenFailure::Connect, e))?;
                let at = Instant::now();
                let tls = connector.connect(name, tcp).await.map_err(|e| {
                    let why = wsproxy::tls::describe_server_error(&e, "--ca");
                    fail(OpenFailure::Connect, anyhow::anyhow!("TLS handshake with {addr} failed: {why}"))
                })?;
                (Box::new(tls), Some(at.elapsed()))
            }
        };
        let at = Instant::now();
        let key = handshake::encode_key(nonce);
        let request = self.request(&key).map_err(|e| fail(OpenFailure::Handshake, e))?;
        let io = |e: std::io::Error| {
            fail(OpenFailure::Handshake, anyhow::Error::new(e).context(format!("{addr}: during the handshake")))
        };
        stream.write_all(&request).await.map_err(io)?;
        let mut buf = Vec::with_capacity(1024);
        let limits = Limits::default();
        loop {
            if stream.read_buf(&mut buf).await.map_err(io)? == 0 {
                return Err(fail(
                    OpenFailure::Handshake,
                    anyhow::anyhow!("{addr} closed the connection during the handshake"),
                ));
            }
            let (res, n) = match handshake::parse_response(&buf, &limits) {
                Ok(wsproto::Status::Partial) => continue,
                Err(e) => {
                    return Err(fail(
                        OpenFailure::Handshake,
                        anyhow::anyhow!("{addr} sent a malformed handshake response: {e}"),
                    ));
                }
                Ok(wsproto::Status::Complete(done)) => done,
            };
            if res.status != 101 {
                // The body's first line often says why (a proxy's 502 does).
                let body = buf.get(n..).unwrap_or_default();
                let why = String::from_utf8_lossy(body).lines().next().unwrap_or_default().trim().to_owned();
                let why = if why.is_empty() { String::new() } else { format!(": {why}") };
                return Err(fail(
                    OpenFailure::Status(res.status),
                    anyhow::anyhow!("{addr} refused the upgrade: {} {}{why}", res.status, res.reason),
                ));
            }
            let names: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
            let mut offers = Vec::new();
            if let Some(offer) = &self.extensions {
                // Checked in `with_extensions`.
                let _ = handshake::parse_extensions(offer.as_bytes(), &mut offers);
            }
            let (protocol, deflate) = match res.validate_offers(key.as_bytes(), &names, &offers) {
                Ok(agreed) => (
                    agreed.protocol.map(str::to_owned),
                    wsproto::deflate::DeflateParams::from_response(&agreed.extensions).ok().flatten(),
                ),
                Err(wsproto::Error::UnofferedProtocol) => {
                    let chosen = res.headers_named("sec-websocket-protocol").next().unwrap_or_default();
                    let offered = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                    return Err(fail(
                        OpenFailure::Handshake,
                        anyhow::anyhow!(
                            "{addr}: invalid 101 response: the server chose the subprotocol {:?}, which was not offered \
                             (offered: {offered})",
                            String::from_utf8_lossy(chosen)
                        ),
                    ));
                }
                Err(e) => {
                    return Err(fail(OpenFailure::Handshake, anyhow::anyhow!("{addr}: invalid 101 response: {e}")));
                }
            };
            return Ok(Opened {
                stream,
                rest: buf.split_off(n),
                protocol,
                deflate,
                timings: Timings { tcp: tcp_time, tls: tls_time, ws: at.elapsed() },
            });
        }
    }
}

/// A `--header` argument: `Name: value`, the name an HTTP token, the value
/// without control characters, and not a header the handshake writes.
fn parse_header(s: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = s.split_once(':').ok_or_else(|| anyhow::anyhow!("--header {s:?}: expected 'Name: value'"))?;
    let name = name.trim();
    let value = value.trim();
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| anyhow::anyhow!("--header {s:?}: {name:?} is not a header name"))?;
    http::HeaderValue::from_str(value)
        .map_err(|_| anyhow::anyhow!("--header {s:?}: the value holds a control character"))?;
    if let Some((_, why)) = MANAGED.iter().find(|(m, _)| m.eq_ignore_ascii_case(name)) {
        anyhow::bail!("--header {s:?}: {name} cannot be set with --header: {why}");
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let cases: [(&str, Option<(&str, &str)>); 8] = [
            ("Authorization: Bearer abc", Some(("Authorization", "Bearer abc"))),
            ("Cookie:a=1; b=2", Some(("Cookie", "a=1; b=2"))),
            ("X-Empty:", Some(("X-Empty", ""))),
            ("no colon", None),
            ("Bad Name: x", None),
            ("X-Inject: a\r\nHost: evil", None),
            ("sec-websocket-protocol: chat", None),
            // An offer bench would not honour (nor check the answer to).
            ("Sec-WebSocket-Extensions: permessage-deflate", None),
        ];
        for (s, want) in cases {
            let got = parse_header(s).ok();
            assert_eq!(got.as_ref().map(|(n, v)| (n.as_str(), v.as_str())), want, "{s:?}");
        }
        let host = parse_header("Host: example.com").expect_err("managed").to_string();
        assert!(host.contains("--url"), "{host}");
    }

    #[test]
    fn the_request_carries_headers_origin_and_subprotocols() {
        let target = WsUrl::parse("ws://127.0.0.1:9/chat").expect("url");
        let connector = Connector::new(
            target,
            &TlsOptions::default(),
            &["Authorization: Bearer t".into()],
            Some("https://example.com"),
            &["chat.v2".into(), "chat.v1".into()],
        )
        .expect("valid options");
        let request = connector.request(&handshake::encode_key([7; 16])).expect("request");
        let text = String::from_utf8(request).expect("ASCII");
        assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"), "{text}");
        assert!(text.contains("\r\nSec-WebSocket-Protocol: chat.v2, chat.v1\r\n"), "{text}");
        assert!(text.ends_with("\r\nAuthorization: Bearer t\r\nOrigin: https://example.com\r\n\r\n"), "{text}");
        let twice = Connector::new(
            WsUrl::parse("ws://127.0.0.1:9").expect("url"),
            &TlsOptions::default(),
            &["Origin: a".into()],
            Some("b"),
            &[],
        );
        assert!(twice.is_err());
        let bad = Connector::new(
            WsUrl::parse("ws://127.0.0.1:9").expect("url"),
            &TlsOptions::default(),
            &[],
            None,
            &["a b".into()],
        );
        assert!(bad.is_err());
    }
}
