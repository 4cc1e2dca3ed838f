//! `wsproxy`: a byte-transparent WebSocket proxy that shows every
//! handshake, frame, message, close and protocol violation as it passes.
//!
//! Clients connect to the proxy as if it were the server. For each client
//! the proxy opens a TCP connection to the upstream and relays every byte
//! both ways. A sans-IO session follows every HTTP/1.1 exchange on the
//! connection (request heads rewritten for the upstream: `Host`, and the
//! target by the README's rule), and after a `101` decodes a copy of both
//! directions with `wsproto`. What it relays is never re-encoded: a
//! malformed frame passes as it came and is reported, unless `--enforce`
//! is given.
//!
//! Compressed messages (permessage-deflate, RFC 7692) are shown inflated,
//! per the parameters the 101 agreed on. Either side may speak TLS
//! ([`tls`]): a `wss://` upstream, and a listener with `--tls-cert`.
//!
//! Events are typed values rendered once per output ([`log::Output`]: JSON
//! Lines or pretty lines, to stdout or a file) and written by a separate
//! writer through a bounded channel; the relay slows down rather than drop
//! events. [`schema`] reads the JSON back.
//!
//! # Layout
//!
//! | module | holds | calls |
//! |---|---|---|
//! | `config` | [`Config`], the validated settings | |
//! | `server` | [`serve`]: the accept loop and the drain at shutdown | `relay` |
//! | `relay` | one connection's I/O: TLS accept, the first head within the timeout, the upstream connection, two pumps | `session`, `hold` |
//! | `hold` | what a direction holds back for a `--fault` delay, in order | |
//! | `session` | the sans-IO state of a connection: heads, bodies, interim answers, upgrades, what to forward, `--enforce` | `head`, `http1`, `inspect`, `fault` |
//! | [`fault`] | `--fault` rules and the engine that applies them to one direction's frames | |
//! | `head`, `http1` | request-head rewriting (RFC 9112 §3.2); body framing (§6, §7) | |
//! | `inspect` | the WebSocket inspector of one direction; ping round trips | |
//! | `event`, `json` | the typed events and their two renderings | |
//! | [`log`], [`logfile`] | the outputs: per-connection event buffers, the writer thread, the streamed log file | `event` |
//! | [`capture`] | `--pcap` (the bytes each side sent as pcapng) and `wsproxy read` (a capture decoded into events) | `session`, `event`, `log`, `record` |
//! | `record` | what the relay and the session record of a connection for a capture | `event` |
//! | `totals` | counters over the proxy's life; errors echoed on stderr | |
//! | [`schema`] | the JSON Lines format as types, and the strict reader the tests use | |
//! | [`ui`] | `--ui`: the live view in the browser, one more output of the events, its own server | `event` |
//!
//! No module imports from one that calls it; the session and everything
//! below it take the time of each read as an argument and touch no socket.

// The public interface: the settings, the accept loop, the event sinks and
// the log's schema; TLS and upstream parsing for the binary; captures.
pub mod capture;
mod config;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod log;
pub mod logfile;
pub mod schema;
mod server;
pub mod tls;
mod totals;
pub mod ui;
pub mod upstream;

// The machinery: one connection's I/O (relay), its sans-IO state (session),
// the HTTP/1.1 pieces it follows (head, http1), the WebSocket inspector, the
// typed events and their renderings (event, json), buffers and streams.
mod event;
mod head;
mod hold;
mod http1;
mod inspect;
mod json;
mod pool;
mod record;
mod relay;
mod session;
mod stream;

pub use config::Config;
pub use event::{Format, Side};
pub use fault::FaultRule;
pub use inspect::{InspectOptions, PreviewLimit};
pub use server::{Summary, serve};
pub use totals::Totals;
pub use upstream::Upstream;
