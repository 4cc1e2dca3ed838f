//! The HTTP/1.1 side: routing, the upgrade decision (RFC 6455 §4.2 checked
//! by `wsproto`), and the answers to requests that are not upgrades.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::debug;
use wsproto::deflate::{DeflateOffer, DeflateParams, DeflateServerConfig, Negotiation};
use wsproto::handshake;

use crate::{Config, Engine, Lifecycle, echo, endpoint};

/// The demo page, embedded: one file, no build step.
const DEMO_PAGE: &str = include_str!("demo.html");

type Body = Full<Bytes>;

/// Serves one TCP connection: HTTP/1.1 keep-alive, with upgrades.
pub(crate) async fn serve_connection(stream: TcpStream, peer: SocketAddr, config: Arc<Config>, mut life: Lifecycle) {
    let service_life = life.clone();
    let handshake_timeout = config.handshake_timeout;
    let service = hyper::service::service_fn(move |req| {
        let config = config.clone();
        let life = service_life.clone();
        async move { Ok::<_, Infallible>(route(req, peer, config, life)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // A client that sends half a request head and stops would otherwise
        // hold its connection forever.
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                debug!(%peer, error = %e, "http connection ended with an error");
            }
        }
        _ = life.shutting_down() => {
            // Finish the request in flight, then close; an upgraded
            // connection has left hyper and is closed by its own task.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    res
}

/// Converts hyper's parsed head into `wsproto`'s, so the WebSocket rules are
/// checked by the same code the proxy and the fuzzers use.
/// Returns the accept key and, when `deflate` is given, the
/// permessage-deflate parameters chosen from the client's offers.
fn validate_upgrade(
    req: &Request<Incoming>,
    deflate: Option<&DeflateServerConfig>,
) -> Result<(String, Option<DeflateParams>), wsproto::Error> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let version_minor = match req.version() {
        Version::HTTP_09 | Version::HTTP_10 => 0,
        _ => 1,
    };
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| handshake::Header { name: name.as_str(), value: value.as_bytes() })
        .collect();
    let head = handshake::Request { method: req.method().as_str(), target, version_minor, headers };
    let upgrade = head.validate()?;
    let params = deflate.and_then(|config| match DeflateOffer::negotiate(&upgrade.extensions, config) {
        Negotiation::Declined(error) => {
            debug!(rule = error.rule(), "declined every permessage-deflate offer");
            None
        }
        negotiation => negotiation.params(),
    });
    Ok((upgrade.accept_key().as_str().to_owned(), params))
}

fn is_upgrade_attempt(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(UPGRADE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket"))))
}

fn route(mut req: Request<Incoming>, peer: SocketAddr, config: Arc<Config>, life: Lifecycle) -> Response<Body> {
    if is_upgrade_attempt(&req) {
        let deflate = match config.engine {
            Engine::Wsproto => config.deflate.as_ref(),
            Engine::Tungstenite => None,
        };
        let (accept, params) = match validate_upgrade(&req, deflate) {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!(%peer, rule = error.rule(), "refused upgrade");
                let status = error.http_status().and_then(|s| StatusCode::from_u16(s).ok());
                let mut res = text_response(status.unwrap_or(StatusCode::BAD_REQUEST), format!("{error}\n"));
                if error == wsproto::Error::UnsupportedVersion {
                    res.headers_mut().insert("sec-websocket-version", HeaderValue::from_static("13"));
                }
                return res;
            }
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => match config.engine {
                    Engine::Tungstenite => echo::run(TokioIo::new(upgraded), peer, &config, life).await,
                    Engine::Wsproto => endpoint::run(TokioIo::new(upgraded), peer, &config, params, life).await,
                },
                Err(e) => debug!(%peer, error = %e, "upgrade failed"),
            }
        });
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = res.headers_mut();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert("sec-websocket-accept", accept);
        }
        if let Some(params) = params
            && let Ok(value) = HeaderValue::from_str(&params.to_string())
        {
            headers.insert("sec-websocket-extensions", value);
        }
        return res;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/") => {
            let mut res = Response::new(Full::new(Bytes::from_static(DEMO_PAGE.as_bytes())));
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            res
        }
        (&Method::GET | &Method::HEAD, "/healthz") => text_response(StatusCode::OK, "ok\n"),
        (_, "/" | "/healthz") => text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text_response(StatusCode::NOT_FOUND, "not found: this server echoes WebSocket messages on any path\n"),
    }
}
