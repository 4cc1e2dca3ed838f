//! `wsproxy`: the logging WebSocket proxy. See the library documentation
//! and the README for the event format.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use wsproxy::{Config, Format, PreviewLimit, Upstream};

/// A byte-transparent WebSocket proxy that shows every handshake, frame,
/// message, close and protocol violation as it passes.
///
/// Without --upstream it starts an echo server in-process and proxies to it:
/// open the printed demo page in a browser to watch the traffic.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// The server to relay to: ws://HOST[:PORT][/PATH] or wss://… (TLS). If PATH is given it
    /// replaces the request path of clients that ask for `/`.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: SocketAddr,
    /// Output format (default: pretty on a terminal, json otherwise).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write events to FILE instead of standard output (written as a
    /// stream: synced and dropped from the page cache every 16 MiB).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Payload bytes to show per frame and message: a number (0: none) or `all`.
    #[arg(long, default_value = "256", value_parser = parse_preview)]
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
    /// How long a client has to send its request head (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    handshake_timeout: Duration,
    /// End connections with no traffic either way for this long (default: never).
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// On Ctrl-C/SIGTERM, how long open connections may take to finish.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Most bytes one compressed (permessage-deflate) message may inflate to;
    /// past it the message is reported as a decompression bomb (e.g. 64MiB, 1G).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
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
    /// (besides the platform's and the webpki roots).
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
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// One aligned, colored line per event.
    Pretty,
    /// JSON Lines: one object per event.
    Json,
}

fn parse_preview(s: &str) -> Result<PreviewLimit, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(PreviewLimit::All);
    }
    s.parse().map(PreviewLimit::Bytes).map_err(|_| format!("{s:?} is not a number of bytes or `all`"))
}

/// A byte count: a number with an optional KiB/MiB/GiB (or K/M/G) suffix.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(format!("{s:?}: expected a size such as 65536, 64KiB, 64MiB or 1GiB")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?}: expected a size such as 64MiB"))?;
    n.checked_mul(1 << shift).filter(|&n| n > 0).ok_or_else(|| format!("{s:?}: must be more than 0 and fit in 64 bits"))
}

fn main() -> ExitCode {
    let args = Args::parse();
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
            eprintln!("wsproxy: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
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
            let server = wsecho::spawn(echo_listener, wsecho::Config::default())?;
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
    let format = match args.format {
        Some(FormatArg::Json) => Format::Json,
        Some(FormatArg::Pretty) => Format::Pretty { color: to_terminal },
        None if to_terminal => Format::Pretty { color: true },
        None => Format::Json,
    };
    let output: Box<dyn std::io::Write + Send> = match &args.log {
        Some(path) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            wsproxy::logfile::LogFile::create(path)
                .with_context(|| format!("creating the log file {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout())),
    };
    if args.messages_only && matches!(args.max_preview, PreviewLimit::Bytes(0)) {
        eprintln!("wsproxy: note: --max-preview 0 shows no payloads");
    }
    let config = Config {
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
        ..Config::new(upstream.clone())
    };
    if config.handshake_timeout.is_zero() {
        bail!("--handshake-timeout must be more than 0");
    }
    let (sink, writer) = wsproxy::log::start(vec![wsproxy::log::Output { format, writer: output }]);
    eprintln!("listening on {scheme}://{addr}");
    match &embedded {
        Some(_) => {
            eprintln!("wsproxy: upstream: embedded echo server at {upstream}");
            eprintln!(
                "wsproxy: open {}://{addr}/ in a browser: the demo page talks to the echo server through this proxy",
                if scheme == "wss" { "https" } else { "http" }
            );
        }
        None => eprintln!("wsproxy: upstream: {upstream}"),
    }
    let summary = wsproxy::serve(listener, config, sink, wsecho::shutdown_signal()).await?;
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    // The writer ends once every sink is gone and the queue is written.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    eprintln!(
        "wsproxy: {} connections, {} bytes, {} frames, {} violations, {} log stalls{}",
        summary.connections,
        summary.bytes,
        summary.frames,
        summary.violations,
        summary.log_stalls,
        if summary.abandoned > 0 {
            format!(", {} connections cut after the drain time", summary.abandoned)
        } else {
            String::new()
        }
    );
    Ok(())
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
    fn previews() {
        assert_eq!(parse_preview("all"), Ok(PreviewLimit::All));
        assert_eq!(parse_preview("0"), Ok(PreviewLimit::Bytes(0)));
        assert!(parse_preview("lots").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
