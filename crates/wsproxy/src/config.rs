//! The proxy's settings, validated once at start (the binary parses the
//! command line into them).

use std::sync::Arc;
use std::time::Duration;

use crate::fault::FaultRule;
use crate::inspect::{InspectOptions, PreviewLimit};
use crate::upstream::Upstream;

/// The proxy's settings, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to connect.
    pub upstream: Upstream,
    /// Payload preview size.
    pub max_preview: PreviewLimit,
    /// Log messages and control frames, not each data frame.
    pub messages_only: bool,
    /// End connections that break a rule (and answer bad upgrades itself).
    pub enforce: bool,
    /// Forward the client's `Host` header unchanged.
    pub preserve_host: bool,
    /// How long a client has to send its request head.
    pub handshake_timeout: Duration,
    /// End connections with no traffic either way for this long.
    pub idle_timeout: Option<Duration>,
    /// How long shutdown waits for open connections.
    pub drain: Duration,
    /// Most bytes one compressed message may inflate to (RFC 7692); past it
    /// the message is reported as a decompression bomb.
    pub max_inflate: u64,
    /// Remove `Sec-WebSocket-Extensions` from the client's request so that
    /// nothing is compressed on the wire.
    pub no_compression: bool,
    /// Show `Authorization`, `Proxy-Authorization`, `Cookie` and
    /// `Set-Cookie` values in the log instead of their length.
    pub show_secrets: bool,
    /// TLS towards a `wss://` upstream (see [`crate::tls::client_config`]).
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// TLS for the listener (clients connect with `wss://`).
    pub listen_tls: Option<Arc<rustls::ServerConfig>>,
    /// Also print per-connection errors on stderr (rate-limited): when the
    /// events go to a file or a pipe, stderr is where people look.
    pub errors_to_stderr: bool,
    /// `--fault` rules, in the order given: the first that matches a frame
    /// acts on it.
    pub faults: Arc<[FaultRule]>,
    /// `--seed`: makes `p=` draws (and the masking keys of frames a rule
    /// makes) the same on every run.
    pub fault_seed: Option<u64>,
    /// Keep the headers of plain HTTP exchanges and write them in the
    /// `http` event (`--har` sets it for its own sessions; the log does
    /// not carry them).
    pub http_headers: bool,
}

impl Config {
    /// A configuration with the defaults for `upstream`.
    pub fn new(upstream: Upstream) -> Config {
        Config {
            upstream,
            max_preview: PreviewLimit::Bytes(256),
            messages_only: false,
            enforce: false,
            preserve_host: false,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
            drain: Duration::from_secs(5),
            max_inflate: 64 << 20,
            no_compression: false,
            show_secrets: false,
            upstream_tls: None,
            listen_tls: None,
            errors_to_stderr: false,
            faults: Arc::from(Vec::new()),
            fault_seed: None,
            http_headers: false,
        }
    }

    pub(crate) fn inspect_options(&self) -> InspectOptions {
        InspectOptions {
            max_preview: self.max_preview,
            messages_only: self.messages_only,
            enforce: self.enforce,
            max_inflate: self.max_inflate,
        }
    }
}
