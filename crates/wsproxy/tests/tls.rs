//! TLS end to end, with certificates generated here (rcgen) and every peer
//! on 127.0.0.1: a `wss://` upstream verified against a CA file, refused
//! with a 502 that names the reason (unknown issuer, name mismatch,
//! expired, plain HTTP where TLS was expected and the reverse), accepted
//! under `--insecure`; a self-signed `CA:TRUE` certificate (as `openssl req
//! -x509` makes them) pinned with `--upstream-ca`; and the TLS listener.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Proxy, connect, read_to_end, upgrade_request, write};
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::Message;
use wsproxy::schema::Event;

/// A test CA and a directory with its files.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("wsproxy-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "wsproxy test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
        Pki { dir, ca }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate for `names`, signed by this CA (or expired);
    /// returns the paths of its chain and key.
    fn leaf(&self, file: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("p");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let (cert_path, key_path) = (self.dir.join(format!("{file}.pem")), self.dir.join(format!("{file}.key")));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// A self-signed certificate as `openssl req -x509 -newkey rsa:2048 -nodes
/// -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost`
/// makes it: marked `CA:TRUE`, for `names`. Returns the paths of the
/// certificate and key, in `pki`'s directory.
fn self_signed_ca_true(pki: &Pki, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("p");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-signed");
    let (cert_path, key_path) = (pki.dir.join(format!("{file}.pem")), pki.dir.join(format!("{file}.key")));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn server_config(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    wsproxy::tls::server_config(cert, key).expect("server config")
}

/// A wss:// echo server on 127.0.0.1 (tokio-tungstenite over rustls);
/// stops with the runtime.
async fn tls_echo(config: Arc<rustls::ServerConfig>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else { return };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        if ws.send(m).await.is_err() {
                            return;
                        }
                    } else if m.is_close() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Sends two messages through the proxy and checks the echoes.
async fn echo_through(proxy: &Proxy) {
    let url = format!("ws://{}/", proxy.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("handshake through the proxy");
    for m in [Message::text("over tls"), Message::binary(vec![0u8, 1, 2, 255])] {
        ws.send(m.clone()).await.expect("send");
        assert_eq!(ws.next().await.expect("echo").expect("echo"), m);
    }
    ws.close(None).await.expect("close");
}

/// What a client of the proxy gets when the upstream's TLS fails.
fn bad_gateway_text(proxy: &Proxy) -> String {
    let mut c = connect(proxy.addr);
    write(&mut c, &upgrade_request("x", "/"));
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_upstream_verified_against_a_ca_file() {
    let pki = Pki::new("ok");
    let (cert, key) = pki.leaf("localhost", &["localhost"], false);
    let port = tls_echo(server_config(&cert, &key)).await;
    let ca = pki.ca_file();
    let upstream = format!("wss://localhost:{port}/");
    let mut proxy = Proxy::start(&["--upstream", &upstream, "--upstream-ca", ca.to_str().expect("utf-8 path")]);
    echo_through(&proxy).await;
    let events = tokio::task::block_in_place(|| proxy.connection(1));
    assert!(events.iter().any(|e| matches!(e, Event::HandshakeResponse { status: 101, .. })), "{events:#?}");
    assert!(events.iter().any(|e| matches!(e, Event::Message { preview, .. } if preview == "over tls")));
    assert!(!events.iter().any(|e| matches!(e, Event::Violation { .. } | Event::Error { .. })), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_give_502_with_the_reason() {
    let pki = Pki::new("bad");
    let ca = pki.ca_file();
    let ca = ca.to_str().expect("utf-8 path");
    let cases: [(&str, &[&str], bool, &[&str], &str); 3] = [
        ("unknown", &["localhost"], false, &[], "unknown issuer"),
        ("other", &["other.example"], false, &["--upstream-ca", ca], "name mismatch"),
        ("expired", &["localhost"], true, &["--upstream-ca", ca], "certificate expired"),
    ];
    for (file, names, expired, extra, reason) in cases {
        let (cert, key) = pki.leaf(file, names, expired);
        let port = tls_echo(server_config(&cert, &key)).await;
        let upstream = format!("wss://localhost:{port}/");
        let mut args = vec!["--upstream", upstream.as_str()];
        args.extend_from_slice(extra);
        let mut proxy = Proxy::start(&args);
        let text = tokio::task::block_in_place(|| bad_gateway_text(&proxy));
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{file}: {text}");
        assert!(text.contains(reason), "{file}: {text}");
        let events = tokio::task::block_in_place(|| proxy.connection(1));
        assert!(
            events.iter().any(|e| matches!(e, Event::Error { message } if message.contains(reason))),
            "{file}: {events:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_ca_true_certificate_is_pinned_with_upstream_ca() {
    let pki = Pki::new("pinned");
    let (cert, key) = self_signed_ca_true(&pki, "self", &["localhost", "127.0.0.1"]);
    let cert_arg = cert.to_str().expect("utf-8 path");
    let port = tls_echo(server_config(&cert, &key)).await;
    // By name and by address: both are in the certificate's SANs.
    for host in ["localhost", "127.0.0.1"] {
        let upstream = format!("wss://{host}:{port}/");
        let mut proxy = Proxy::start(&["--upstream", &upstream, "--upstream-ca", cert_arg]);
        echo_through(&proxy).await;
        let events = tokio::task::block_in_place(|| proxy.connection(1));
        assert!(events.iter().any(|e| matches!(e, Event::HandshakeResponse { status: 101, .. })), "{events:#?}");
        assert!(!events.iter().any(|e| matches!(e, Event::Error { .. })), "{host}: {events:#?}");
    }
    // Pinning does not skip the name check.
    let (cert, key) = self_signed_ca_true(&pki, "elsewhere", &["elsewhere.example"]);
    let port = tls_echo(server_config(&cert, &key)).await;
    let upstream = format!("wss://localhost:{port}/");
    let proxy = Proxy::start(&["--upstream", &upstream, "--upstream-ca", cert.to_str().expect("utf-8 path")]);
    let text = tokio::task::block_in_place(|| bad_gateway_text(&proxy));
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n") && text.contains("name mismatch"), "{text}");
    // Another self-signed certificate is no pin, and none is no pin either;
    // the reason says what to give.
    let (other, _) = self_signed_ca_true(&pki, "other", &["localhost"]);
    let upstream = format!("wss://localhost:{port}/");
    let proxy = Proxy::start(&["--upstream", &upstream, "--upstream-ca", other.to_str().expect("utf-8 path")]);
    let text = tokio::task::block_in_place(|| bad_gateway_text(&proxy));
    assert!(text.contains("502") && text.contains("give that very certificate with --upstream-ca FILE"), "{text}");
    let proxy = Proxy::start(&["--upstream", &upstream]);
    let text = tokio::task::block_in_place(|| bad_gateway_text(&proxy));
    assert!(text.contains("502") && text.contains("CA:TRUE") && text.contains("--upstream-ca FILE"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_tls_mix_ups_are_named() {
    let pki = Pki::new("mixup");
    // wss:// to a plain server: the 502 says to use ws://.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let echo = wsecho::spawn(plain, wsecho::Config::default()).expect("echo");
    let upstream = format!("wss://127.0.0.1:{}/", echo.local_addr().port());
    let mut proxy = Proxy::start(&["--upstream", &upstream, "--insecure"]);
    let text = tokio::task::block_in_place(|| bad_gateway_text(&proxy));
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n") && text.contains("use ws://"), "{text}");
    let events = tokio::task::block_in_place(|| proxy.connection(1));
    assert!(events.iter().any(|e| matches!(e, Event::Error { message } if message.contains("use ws://"))));
    // ws:// to a TLS server: the 502 says to use wss://.
    let (cert, key) = pki.leaf("localhost", &["localhost"], false);
    let port = tls_echo(server_config(&cert, &key)).await;
    let upstream = format!("ws://127.0.0.1:{port}/");
    let mut proxy = Proxy::start(&["--upstream", &upstream]);
    let text = tokio::task::block_in_place(|| bad_gateway_text(&proxy));
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n") && text.contains("use wss://"), "{text}");
    let events = tokio::task::block_in_place(|| proxy.connection(1));
    assert!(events.iter().any(|e| matches!(e, Event::Error { message } if message.contains("use wss://"))));
    // A TLS client at a plain listener: dropped at once, with the reason.
    let mut proxy = Proxy::start(&[]);
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.expect("connect");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let started = std::time::Instant::now();
    let _ = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await.expect_err("no TLS there");
    let events = tokio::task::block_in_place(|| proxy.connection(1));
    assert!(
        events.iter().any(|e| matches!(e, Event::Error { message } if message.contains("connect with ws://"))),
        "{events:#?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "not left to the handshake timeout");
    echo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_accepts_an_unknown_issuer() {
    let pki = Pki::new("insecure");
    let (cert, key) = pki.leaf("localhost", &["localhost"], false);
    let port = tls_echo(server_config(&cert, &key)).await;
    let upstream = format!("wss://localhost:{port}/");
    let proxy = Proxy::start(&["--upstream", &upstream, "--insecure"]);
    echo_through(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_speaks_tls() {
    let pki = Pki::new("listener");
    let (cert, key) = pki.leaf("localhost", &["localhost"], false);
    let args = ["--tls-cert", cert.to_str().expect("path"), "--tls-key", key.to_str().expect("path")];
    let mut proxy = Proxy::start(&args);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(pki.ca_file()).expect("CA")).expect("add CA");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await.expect("TLS to the proxy");
    let url = format!("wss://localhost:{}/", proxy.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tls).await.expect("handshake over TLS");
    ws.send(Message::text("hello over wss")).await.expect("send");
    assert_eq!(ws.next().await.expect("echo").expect("echo"), Message::text("hello over wss"));
    ws.close(None).await.expect("close");
    // The close handshake completes and the connection ends.
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    let events = tokio::task::block_in_place(|| proxy.connection(1));
    assert!(
        events.iter().any(|e| matches!(e, Event::End { reason, .. } if reason == "close_handshake")),
        "{events:#?}"
    );
    assert!(events.iter().any(|e| matches!(e, Event::Message { preview, .. } if preview == "hello over wss")));
    // A client that does not speak TLS is dropped with a logged reason.
    let mut plain = connect(proxy.addr);
    write(&mut plain, &upgrade_request("x", "/"));
    let mut got = Vec::new();
    tokio::task::block_in_place(|| read_to_end(&mut plain, &mut got));
    assert!(!got.starts_with(b"HTTP/1.1 101"));
    let events = tokio::task::block_in_place(|| proxy.connection(2));
    assert!(
        events.iter().any(|e| matches!(e, Event::Error { message }
            if message.contains("TLS handshake") && message.contains("connect with wss://"))),
        "{events:#?}"
    );
}

#[test]
fn missing_certificate_files_name_their_flag() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsproxy")).args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let text = run(&["--listen", "0", "--upstream", "wss://localhost", "--upstream-ca", "/nonexistent/ca.pem"]);
    assert!(text.starts_with("wsproxy: error: --upstream-ca /nonexistent/ca.pem: cannot open it"), "{text}");
    let text = run(&["--listen", "0", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"]);
    assert!(text.starts_with("wsproxy: error: --tls-cert /nonexistent/c.pem: cannot open it"), "{text}");
}
