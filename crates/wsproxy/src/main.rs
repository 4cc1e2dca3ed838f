//! `wsproxy`: the logging WebSocket proxy. See the library documentation
//! and the README for the event format.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use wsproxy::capture::read::{ReadError, ReadOptions, ServerHint};
use wsproxy::{Config, Format, PreviewLimit, Upstream};

/// A byte-transparent WebSocket proxy that shows every handshake, frame,
/// message, close and protocol violation as it passes.
///
/// Without --upstream it starts an echo server in-process and proxies to it:
/// open the printed demo page in a browser to watch the traffic.
///
/// Events go to stdout (or --log FILE); status lines go to stderr: the
/// `listening on ws://ADDR` line, per-connection errors (rate-limited, when
/// the events do not go to the terminal) and, at exit, the totals:
/// connections, bytes, frames, violations, errors, and log stalls (how often
/// a relay had to wait for the event writer because the output was slower
/// than the traffic: the proxy never drops an event, it slows down instead).
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about,
    override_usage = "wsproxy [OPTIONS]\n       wsproxy read [OPTIONS] FILE",
    after_help = EXAMPLES,
    after_long_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The server to relay to: ws://HOST[:PORT][/PATH] or wss://… (TLS). If PATH is given it
    /// replaces the request path of clients that ask for `/`.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Address to listen on: PORT or :PORT (on 127.0.0.1), IP:PORT,
    /// [IPv6]:PORT or localhost:PORT; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9002", value_parser = listen_addr)]
    listen: SocketAddr,
    /// Output format (default: pretty on a terminal, json otherwise).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write events to FILE instead of standard output (written as a
    /// stream: synced and dropped from the page cache every 16 MiB).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// With --log: the same events on standard output too, in their own
    /// format (default: pretty on a terminal, json otherwise). For example
    /// JSON Lines to a file while watching pretty lines in the terminal.
    #[arg(long, value_enum, value_name = "FORMAT", requires = "log", num_args = 0..=1, default_missing_value = "auto")]
    tee: Option<TeeArg>,
    /// Also record every byte that passes as a pcapng capture in FILE, for
    /// Wireshark or tshark: each connection a TCP conversation from the
    /// client to the upstream, TLS legs as their decrypted plaintext.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Also write the HTTP exchanges and WebSocket messages as HAR 1.2 in
    /// FILE (DevTools' format, messages in `_webSocketMessages`), valid
    /// JSON after every entry.
    #[arg(long, value_name = "FILE")]
    har: Option<PathBuf>,
    /// With --har: the most bytes of one message kept (1MiB, 64KiB).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = wscli::parse_size_usize)]
    har_max_message: usize,
    /// Payload bytes to show per frame and message: a size (256, 4KiB; 0: none) or `all`.
    #[arg(long, value_name = "SIZE|all", default_value = "256", value_parser = parse_preview)]
    max_preview: PreviewLimit,
    /// Log messages and control frames, but not each data frame.
    #[arg(long)]
    messages_only: bool,
    /// End a connection on the first protocol violation (the offender gets
    /// 1002/1007/1009, the other side 1001) and answer bad upgrades with
    /// 400/426 without contacting the upstream.
    #[arg(long)]
    enforce: bool,
    /// Forward the client's Host header unchanged.
    #[arg(long)]
    preserve_host: bool,
    /// How long a client has to send its request head (10s, 500ms, or seconds: 1).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = wscli::parse_duration)]
    handshake_timeout: Duration,
    /// End connections with no traffic either way for this long (default: never).
    #[arg(long, value_name = "DURATION", value_parser = wscli::parse_duration)]
    idle_timeout: Option<Duration>,
    /// On Ctrl-C/SIGTERM, how long open connections may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = wscli::parse_duration)]
    drain: Duration,
    /// Most bytes one compressed (permessage-deflate) message may inflate to;
    /// past it the message is reported as a decompression bomb (65536, 64KiB, 64MiB, 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = wscli::parse_size)]
    max_inflate: u64,
    /// Remove Sec-WebSocket-Extensions from the client's request so that the
    /// upstream does not negotiate compression and frames are readable on the
    /// wire (the one change besides Host; logged as such).
    #[arg(long)]
    no_compression: bool,
    /// Show Authorization, Proxy-Authorization, Cookie and Set-Cookie values
    /// in the log (by default only their length).
    #[arg(long)]
    show_secrets: bool,
    /// Trust the CA certificates in this PEM file for a wss:// upstream
    /// (besides the platform's and the webpki roots). A certificate in it
    /// that is the upstream's own (a self-signed test certificate) is
    /// accepted as it is: pinned.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<PathBuf>,
    /// Do not verify a wss:// upstream's certificate (for test servers only).
    #[arg(long)]
    insecure: bool,
    /// Serve TLS with this PEM certificate chain (clients connect with
    /// wss://); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Relay threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Make frames misbehave on purpose: RULE is WHERE:ACTION (repeatable; the first rule that
    /// matches a frame acts).
    ///
    /// WHERE is a comma-separated list of selectors, all of which must match: the sender (client,
    /// upstream), the kind (text, binary, ping, pong, close, data, control; kinds are ANDed, so
    /// use data or control for a group), msg=N or msg=N-M (the
    /// sender's Nth data message, from 1), p=P (a probability; see --seed), and last, taking the
    /// rest, match=REGEX (on the payload as text, or as hex for binary).
    ///
    /// ACTION is one of delay=DURATION, drop, duplicate, fragment=N,
    /// corrupt=rsv1|rsv2|rsv3|mask|bit|utf8, close=CODE[,REASON] (relay the frame, then close both
    /// sides with CODE), reset (relay the frame, then RST both TCP connections), truncate (cut the
    /// frame in the middle, then end both), throttle=BYTES/S (at least 10), swallow.
    ///
    /// Every action is a `fault` event; violations in bytes a rule changed are marked `injected`.
    /// Frames no rule matches are relayed byte for byte. Examples:
    ///   'upstream,pong:swallow'  'upstream,text:fragment=3'  'client,data:delay=200ms'
    ///   'upstream,msg=5:reset'  'upstream,text,msg=2:corrupt=rsv2'
    ///   'upstream,msg=3:close=1012,restarting'  'client,match="type":"chat":duplicate'
    #[arg(long = "fault", value_name = "RULE", value_parser = parse_fault)]
    faults: Vec<wsproxy::FaultRule>,
    /// Seed for --fault's p= draws, so that runs are repeatable (default: random).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Serve the live view (every connection and frame, in a browser) on
    /// this address: PORT, IP:PORT… as for --listen. On by default, on a
    /// free port of 127.0.0.1, with the embedded echo server (no --upstream).
    #[arg(long, value_name = "ADDR", value_parser = ui_addr)]
    ui: Option<SocketAddr>,
    /// No live view, not even with the embedded echo server.
    #[arg(long, conflicts_with = "ui")]
    no_ui: bool,
    /// Require this token in the view's URL (?token=TOKEN; letters, digits, - . _ ~).
    #[arg(long, value_name = "TOKEN", value_parser = wsproxy::ui::parse_token)]
    ui_token: Option<String>,
    /// Events the view keeps per connection (older ones are dropped, the handshake kept).
    #[arg(long, value_name = "N", default_value_t = wsproxy::ui::UiOptions::default().per_conn, value_parser = at_least_one)]
    ui_per_conn: usize,
    /// Events the view keeps in all (the oldest connection's go first).
    #[arg(long, value_name = "N", default_value_t = wsproxy::ui::UiOptions::default().total, value_parser = at_least_one)]
    ui_max_events: usize,
}

/// A count of at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?}: expected a number of events, at least 1")),
    }
}

fn ui_addr(s: &str) -> Result<SocketAddr, String> {
    wscli::parse_listen(s, 0)
}

fn parse_fault(s: &str) -> Result<wsproxy::FaultRule, String> {
    wsproxy::FaultRule::parse(s)
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Decode a packet capture into the events the proxy shows live.
    ///
    /// Reads a packet capture (pcap or pcapng: wsproxy's own --pcap, or
    /// tcpdump's and tshark's of unencrypted traffic) and writes the events
    /// the proxy would have shown live, with the capture's timestamps: every
    /// TCP conversation is reassembled (retransmissions taken once,
    /// out-of-order segments put in order, missing bytes reported as a `gap`
    /// event, never guessed) and fed to the proxy's own decoder.
    ///
    /// Link types: Ethernet, Linux cooked (SLL, SLL2: tcpdump -i any),
    /// loopback (NULL, LOOP) and raw IP. The client of a conversation is the
    /// side that sent the SYN; when the capture has no TCP handshake, say which
    /// side is the server with --port or --server, or it is told by who sent
    /// the HTTP request.
    Read(ReadArgs),
}

/// `wsproxy read`'s flags.
#[derive(Debug, clap::Args)]
#[command(after_help = READ_EXAMPLES, after_long_help = READ_EXAMPLES)]
struct ReadArgs {
    /// The capture (pcap or pcapng); - for standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Output format (default: pretty on a terminal, json otherwise).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write events to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Payload bytes to show per frame and message: a size (256, 4KiB; 0: none) or `all`.
    #[arg(long, value_name = "SIZE|all", default_value = "256", value_parser = parse_preview)]
    max_preview: PreviewLimit,
    /// Log messages and control frames, but not each data frame.
    #[arg(long)]
    messages_only: bool,
    /// Most bytes one compressed message may inflate to.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = wscli::parse_size)]
    max_inflate: u64,
    /// Show Authorization, Proxy-Authorization, Cookie and Set-Cookie values.
    #[arg(long)]
    show_secrets: bool,
    /// The server's port, for conversations the capture has no handshake
    /// of; only conversations with this port are decoded.
    #[arg(long, value_name = "PORT", conflicts_with = "server")]
    port: Option<u16>,
    /// The server's address, as --port.
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<SocketAddr>,
    /// Also write the HTTP exchanges and WebSocket messages as HAR 1.2 in FILE.
    #[arg(long, value_name = "FILE")]
    har: Option<PathBuf>,
    /// With --har: the most bytes of one message kept (1MiB, 64KiB).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = wscli::parse_size_usize)]
    har_max_message: usize,
}

const READ_EXAMPLES: &str = "\
Examples:
  wsproxy read session.pcapng                    a capture written with wsproxy --pcap
  tcpdump -i lo -w ws.pcap port 9001             (capture on a server, then:)
  wsproxy read ws.pcap --format json --log events.jsonl
  wsproxy read ws.pcap --port 9001 --messages-only   no handshake captured: the server's port
  wsproxy read session.pcapng --har session.har  the same as HAR, for DevTools
";

const EXAMPLES: &str = "\
Examples:
  wsproxy                                        an embedded echo server; open the printed page
  wsproxy --upstream ws://127.0.0.1:8080/socket  pretty output on a terminal
  wsproxy --upstream ws://127.0.0.1:8080 --format json --log events.jsonl
  wsproxy --upstream ws://127.0.0.1:8080 --log events.jsonl --tee   (JSON there, pretty here)
  wsproxy --upstream ws://127.0.0.1:8080 --ui 9003   (a live view at http://127.0.0.1:9003/)
  wsproxy --listen 9003 --upstream wss://localhost:8443 --upstream-ca cert.pem
  wsproxy --upstream ws://127.0.0.1:8080 --enforce --messages-only
  wsproxy --upstream ws://127.0.0.1:8080 --fault 'upstream,pong:swallow'   (keepalives fire)
  wsproxy --upstream ws://127.0.0.1:8080 --fault 'client,data,p=0.1:drop' --seed 7
  wsproxy --upstream ws://127.0.0.1:8080 --fault 'upstream,msg=3:close=1012,restarting'
  wsproxy --upstream ws://127.0.0.1:8080 --pcap session.pcapng   (open it in Wireshark)
  wsproxy --upstream ws://127.0.0.1:8080 --har session.har       (load it in DevTools)
  wsproxy read session.pcapng                    a capture (wsproxy's, tcpdump's) as events
";

fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    wscli::parse_listen(s, 9002)
}

/// `--tee`'s format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TeeArg {
    /// Pretty on a terminal, json otherwise.
    Auto,
    /// One aligned, colored line per event.
    Pretty,
    /// JSON Lines: one object per event.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// One aligned, colored line per event.
    Pretty,
    /// JSON Lines: one object per event.
    Json,
    /// No events: relay and inspect only (the totals at exit; --enforce,
    /// --fault, --pcap, --har and --ui work as ever).
    None,
}

/// `all`, 0 (no preview) or a size (`256`, `4KiB`).
fn parse_preview(s: &str) -> Result<PreviewLimit, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(PreviewLimit::All);
    }
    if s.trim() == "0" {
        return Ok(PreviewLimit::Bytes(0));
    }
    let n = wscli::parse_size_usize(s).map_err(|e| format!("{e}, or `all`, or 0 for none"))?;
    Ok(PreviewLimit::Bytes(n))
}

fn main() -> ExitCode {
    let args: Args = wscli::parse_args("wsproxy");
    if let Some(Command::Read(read)) = args.command {
        return match run_read(read) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                wscli::report("wsproxy", &e);
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match args.threads {
        Some(0) => Err(std::io::Error::other("--threads must be at least 1")),
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let result = runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            wscli::report("wsproxy", &e);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.map_err(|e| wscli::bind_error("--listen", args.listen, e))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        eprintln!("wsproxy: warning: listening on {addr}: anyone who can reach it can relay through this proxy");
    }
    // With no upstream, an echo server in-process.
    let (upstream, embedded) = match &args.upstream {
        Some(url) => (wsproxy::upstream::parse(url)?, None),
        None => {
            let echo_listener =
                tokio::net::TcpListener::bind("127.0.0.1:0").await.context("starting the embedded echo server")?;
            // wsproto's engine, so that a browser's permessage-deflate offer
            // is accepted and the proxy shows compressed frames inflated.
            let config = wsecho::Config { engine: wsecho::Engine::Wsproto, ..wsecho::Config::default() };
            let server = wsecho::spawn(echo_listener, config)?;
            let upstream = Upstream {
                secure: false,
                host: "127.0.0.1".into(),
                port: server.local_addr().port(),
                path: String::new(),
            };
            (upstream, Some(server))
        }
    };
    let upstream_tls = if upstream.secure {
        if args.insecure {
            eprintln!("wsproxy: warning: --insecure: the upstream's certificate is not verified");
        }
        let trust = wsproxy::tls::UpstreamTrust { ca_file: args.upstream_ca.clone(), insecure: args.insecure };
        Some(wsproxy::tls::client_config(&trust)?)
    } else {
        if args.upstream_ca.is_some() || args.insecure {
            eprintln!("wsproxy: note: --upstream-ca and --insecure only apply to a wss:// upstream");
        }
        None
    };
    let listen_tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(wsproxy::tls::server_config(cert, key)?),
        _ => None,
    };
    let scheme = if listen_tls.is_some() { "wss" } else { "ws" };
    let to_terminal = args.log.is_none() && std::io::stdout().is_terminal();
    let color = to_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Errors are events; on stderr too unless the events are on the terminal.
    let no_events = args.format == Some(FormatArg::None);
    if no_events && (args.log.is_some() || args.tee.is_some()) {
        anyhow::bail!("--format none writes no events: --log and --tee would have nothing to write");
    }
    let events_on_terminal = !no_events && (to_terminal || (args.tee.is_some() && std::io::stdout().is_terminal()));
    let errors_to_stderr = !events_on_terminal;
    let format = match args.format {
        Some(FormatArg::Json | FormatArg::None) => Format::Json,
        Some(FormatArg::Pretty) => Format::Pretty { color },
        None if to_terminal => Format::Pretty { color },
        None => Format::Json,
    };
    // Few large writes: a 32 KiB buffer (so batches of ~48 KiB skip the
    // copy) cost more CPU per echo than the copy saves, measured A/B
    // (16 B echo: 3.7 vs 3.3 µs; 64 KiB: 55.7 vs 48.6 µs).
    const WRITE_BUF: usize = 1 << 20;
    let stdout = || Box::new(std::io::BufWriter::with_capacity(WRITE_BUF, std::io::stdout()));
    let mut outputs = vec![match &args.log {
        Some(path) => wsproxy::log::Output {
            format,
            writer: Box::new(std::io::BufWriter::with_capacity(
                WRITE_BUF,
                wsproxy::logfile::LogFile::create(path)
                    .with_context(|| format!("creating the log file {}", path.display()))?,
            )),
        },
        None => wsproxy::log::Output { format, writer: stdout() },
    }];
    if no_events {
        // Nothing rendered: the session still decodes every frame (for the
        // totals, --enforce and --fault), but writes no event anywhere.
        outputs.clear();
    }
    if let Some(tee) = args.tee {
        let stdout_is_terminal = std::io::stdout().is_terminal();
        let color = stdout_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let format = match tee {
            TeeArg::Json => Format::Json,
            TeeArg::Pretty => Format::Pretty { color },
            TeeArg::Auto if stdout_is_terminal => Format::Pretty { color },
            TeeArg::Auto => Format::Json,
        };
        outputs.push(wsproxy::log::Output { format, writer: stdout() });
    }
    if let Some(path) = &args.pcap {
        // A log file: written as a stream, its pages reused (see
        // `logfile`): a capture writes as many bytes as pass.
        let file =
            wsproxy::logfile::LogFile::create(path).with_context(|| format!("--pcap: creating {}", path.display()))?;
        let writer = wsproxy::capture::pcapng::PcapngWriter::new(file, Some((&upstream, args.preserve_host)))
            .with_context(|| format!("--pcap: writing to {}", path.display()))?;
        outputs.push(wsproxy::log::Output { format: Format::Capture, writer: Box::new(writer) });
    }
    let har_config =
        Config { max_inflate: args.max_inflate, show_secrets: args.show_secrets, ..Config::new(upstream.clone()) };
    if let Some(path) = &args.har {
        let writer = har_writer(path, &har_config, args.har_max_message)?;
        outputs.push(wsproxy::log::Output { format: Format::Capture, writer: Box::new(writer) });
    }
    if args.messages_only && matches!(args.max_preview, PreviewLimit::Bytes(0)) {
        eprintln!("wsproxy: note: --max-preview 0 shows no payloads");
    }
    let mut config = Config {
        max_preview: args.max_preview,
        messages_only: args.messages_only,
        enforce: args.enforce,
        preserve_host: args.preserve_host,
        handshake_timeout: args.handshake_timeout,
        idle_timeout: args.idle_timeout,
        drain: args.drain,
        max_inflate: args.max_inflate,
        no_compression: args.no_compression,
        show_secrets: args.show_secrets,
        upstream_tls,
        listen_tls,
        errors_to_stderr,
        faults: std::sync::Arc::from(args.faults),
        fault_seed: args.seed,
        ..Config::new(upstream.clone())
    };
    if config.handshake_timeout.is_zero() {
        bail!("--handshake-timeout must be more than 0");
    }
    let ui_addr = args.ui.or((embedded.is_some() && !args.no_ui).then(|| SocketAddr::from(([127, 0, 0, 1], 0))));
    let view = match ui_addr {
        Some(ui_addr) => {
            let options = wsproxy::ui::UiOptions {
                per_conn: args.ui_per_conn,
                total: args.ui_max_events,
                token: args.ui_token.clone(),
                ..Default::default()
            };
            let view = wsproxy::ui::View::bind(ui_addr, options).await?;
            if !view.local_addr().ip().is_loopback() {
                let who = match &args.ui_token {
                    Some(_) => "anyone who can reach it and has the token (sent in clear: plain HTTP)",
                    None => "anyone who can reach it (--ui-token requires a token)",
                };
                eprintln!(
                    "wsproxy: warning: --ui {}: {who} can watch all traffic through this proxy",
                    view.local_addr()
                );
            }
            outputs.push(view.output());
            // Before `listening on`: scripts that wait for that line have this one too.
            eprintln!("wsproxy: live view at {}", view.url());
            Some(view)
        }
        None => {
            if args.ui_token.is_some() {
                eprintln!("wsproxy: note: --ui-token applies to the live view, which is off (add --ui ADDR)");
            }
            None
        }
    };
    if no_events && view.is_none() {
        // No event is rendered anywhere: no previews to cut and escape.
        config.max_preview = PreviewLimit::Bytes(0);
    }
    let (sink, writer) = wsproxy::log::start(outputs);
    eprintln!("listening on {scheme}://{addr}");
    match &embedded {
        Some(_) => {
            eprintln!("wsproxy: upstream: embedded echo server at {upstream}");
            eprintln!(
                "wsproxy: open {}://{addr}/ in a browser: the demo page talks to the echo server through this proxy",
                if scheme == "wss" { "https" } else { "http" }
            );
            if let Some(view) = &view {
                eprintln!("wsproxy: then watch its handshake and frames live at {}", view.url());
            }
        }
        None => {
            eprintln!("wsproxy: upstream: {upstream}");
            // A word now about an upstream that is not there; it may come
            // up later, so the proxy keeps running.
            tokio::spawn(probe_upstream(upstream.clone()));
        }
    }
    let summary = wsproxy::serve(listener, config, sink, wsecho::shutdown_signal()).await?;
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    // The writer ends once every sink is gone and the queue is written.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    eprintln!("wsproxy: {}", totals_line(&summary));
    Ok(())
}

/// A HAR file at `path`.
fn har_writer(
    path: &std::path::Path,
    config: &Config,
    max_message: usize,
) -> anyhow::Result<wsproxy::capture::har::HarWriter<std::fs::File>> {
    let file = std::fs::File::create(path).with_context(|| format!("--har: creating {}", path.display()))?;
    wsproxy::capture::har::HarWriter::new(file, config, max_message)
        .with_context(|| format!("--har: writing to {}", path.display()))
}

/// `wsproxy read`: the capture's events to stdout or `--log`.
fn run_read(args: ReadArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let to_terminal = args.log.is_none() && std::io::stdout().is_terminal();
    let color = to_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let format = match args.format {
        Some(FormatArg::None) => None,
        Some(FormatArg::Json) => Some(Format::Json),
        Some(FormatArg::Pretty) => Some(Format::Pretty { color }),
        None if to_terminal => Some(Format::Pretty { color }),
        None => Some(Format::Json),
    };
    if format.is_none() && (args.har.is_none() || args.log.is_some()) {
        anyhow::bail!("--format none writes no events: give --har FILE (and no --log) to convert the capture");
    }
    let mut out: Box<dyn Write> = match &args.log {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating the log file {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let input: Box<dyn std::io::Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.file).with_context(|| format!("opening the capture {}", args.file.display()))?,
        )
    };
    // The upstream is the capture's; this one is a placeholder.
    let placeholder = Upstream { secure: false, host: "0.0.0.0".into(), port: 1, path: String::new() };
    let config = Config {
        max_preview: args.max_preview,
        messages_only: args.messages_only,
        max_inflate: args.max_inflate,
        show_secrets: args.show_secrets,
        ..Config::new(placeholder)
    };
    let server = match (args.port, args.server) {
        (Some(p), _) => Some(ServerHint::Port(p)),
        (None, Some(a)) => Some(ServerHint::Addr(a)),
        (None, None) => None,
    };
    let mut har = match &args.har {
        Some(path) => Some(har_writer(path, &config, args.har_max_message)?.upstream_from_records()),
        None => None,
    };
    let options = ReadOptions { config, server };
    let formats: Vec<Format> = format.into_iter().chain(har.is_some().then_some(Format::Capture)).collect();
    let har_slot = usize::from(format.is_some());
    let mut sink = |events: &wsproxy::log::Events| {
        if let Some(har) = &mut har {
            har.write_all(events.output(har_slot))?;
        }
        if format.is_some() { out.write_all(events.output(0)) } else { Ok(()) }
    };
    let result = wsproxy::capture::read::read(input, &options, &formats, &mut sink);
    if let (Some(har), Some(path)) = (&mut har, &args.har) {
        har.finish().with_context(|| format!("--har: writing {}", path.display()))?;
    }
    // A closed pipe (`wsproxy read … | head`) is not an error.
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        r => r.context("writing the events")?,
    }
    let summary = match result {
        Ok(s) => s,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", args.file.display()))),
    };
    let mut line = format!(
        "wsproxy: {}: {}, {}",
        args.file.display(),
        wscli::count(summary.packets, "packet"),
        wscli::count(summary.connections, "connection")
    );
    if summary.not_tcp > 0 {
        line += &format!(", {} not TCP (skipped)", wscli::count(summary.not_tcp, "packet"));
    }
    if summary.skipped_conversations > 0 {
        line += &format!(
            ", {} skipped ({})",
            wscli::count(summary.skipped_conversations, "TCP conversation"),
            if server.is_some() {
                "not the --port/--server given"
            } else {
                "no handshake and no HTTP to tell the server: give --port or --server"
            }
        );
    }
    if summary.gaps > 0 {
        line += &format!(", {} in the capture", wscli::count(summary.gaps, "gap"));
    }
    if summary.resyncs > 0 {
        line += &format!(
            ", {} decoded from the first frame boundary found (the capture begins inside the connection)",
            wscli::count(summary.resyncs, "direction")
        );
    }
    eprintln!("{line}");
    Ok(())
}

/// How long the start-up probe waits for the upstream's TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens (and closes) one TCP connection to the upstream and warns on
/// stderr if it is refused or does not come.
async fn probe_upstream(upstream: Upstream) {
    let addr = upstream.connect_addr();
    let failure = match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
    };
    eprintln!(
        "wsproxy: warning: upstream {addr} does not accept connections ({failure}); \
         running anyway: clients get 502 Bad Gateway until it does"
    );
}

/// The totals printed at exit, with plurals.
fn totals_line(s: &wsproxy::Summary) -> String {
    let mut line = format!(
        "{}, {}, {}, {}, {}, {}",
        wscli::count(s.connections, "connection"),
        wscli::count(s.bytes, "byte"),
        wscli::count(s.frames, "frame"),
        wscli::count(s.violations, "violation"),
        wscli::count(s.errors, "error"),
        wscli::count(s.log_stalls, "log stall"),
    );
    if s.abandoned > 0 {
        line += &format!(", {} cut after the drain time", wscli::count(s.abandoned, "connection"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn view_bounds_are_at_least_one() {
        assert_eq!(at_least_one("5000"), Ok(5000));
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("many").is_err());
    }

    #[test]
    fn previews() {
        assert_eq!(parse_preview("all"), Ok(PreviewLimit::All));
        assert_eq!(parse_preview("0"), Ok(PreviewLimit::Bytes(0)));
        assert_eq!(parse_preview("4KiB"), Ok(PreviewLimit::Bytes(4096)));
        assert!(parse_preview("lots").is_err());
    }

    #[test]
    fn totals_use_plurals() {
        let summary = wsproxy::Summary {
            connections: 1,
            bytes: 2,
            frames: 1,
            violations: 0,
            errors: 1,
            log_stalls: 0,
            abandoned: 1,
        };
        assert_eq!(
            totals_line(&summary),
            "1 connection, 2 bytes, 1 frame, 0 violations, 1 error, 0 log stalls, 1 connection cut after the drain time"
        );
    }
}
