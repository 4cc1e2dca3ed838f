//! `wsecho`: the WebSocket echo server. See the library documentation.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A WebSocket echo server: every text and binary message comes back
/// unchanged. `GET /` serves a demo page, `GET /healthz` answers 200.
#[derive(Debug, Parser)]
#[command(version, about, override_usage = "wsecho [OPTIONS]", after_help = EXAMPLES)]
struct Args {
    /// Address to listen on: PORT or :PORT (on 127.0.0.1), IP:PORT,
    /// [IPv6]:PORT or localhost:PORT; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001", value_parser = listen_addr)]
    listen: SocketAddr,
    /// Largest message accepted (larger: close 1009): 65536, 64KiB, 16MiB, 1GiB.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = wscli::parse_size_usize)]
    max_message_size: usize,
    /// Largest frame accepted: 65536, 64KiB, 16MiB, 1GiB.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = wscli::parse_size_usize)]
    max_frame_size: usize,
    /// Receive buffer per connection: allocated per connection, and the most
    /// read from the socket at once (65536, 16KiB). The wsproto engine grows
    /// it up to 64 KiB while reads fill it, and shrinks it back after;
    /// tokio-tungstenite reads at most this much at a time.
    #[arg(long, value_name = "SIZE", default_value = "16KiB", value_parser = wscli::parse_size_usize)]
    read_buffer_size: usize,
    /// The WebSocket implementation: wsproto (this workspace's, with
    /// permessage-deflate) or tokio-tungstenite (no compression).
    #[arg(long, value_enum, default_value = "wsproto")]
    engine: wsecho::Engine,
    /// Decline permessage-deflate offers (the tokio-tungstenite engine
    /// always does).
    #[arg(long)]
    no_compression: bool,
    /// How long a client has to send its request head (10s, 500ms, or seconds: 1).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = wscli::parse_duration)]
    handshake_timeout: Duration,
    /// End WebSocket connections that send nothing for this long, with close
    /// 1001 (default: never).
    #[arg(long, value_name = "DURATION", value_parser = wscli::parse_duration)]
    idle_timeout: Option<Duration>,
    /// Log only warnings and errors (RUST_LOG overrides).
    #[arg(long, short)]
    quiet: bool,
}

const EXAMPLES: &str = "\
Examples:
  wsecho                                   ws://127.0.0.1:9001
  wsecho --listen 0 --quiet                a free port, printed as `listening on ws://ADDR`
  wsecho --listen 9003 --max-message-size 64MiB
  wsecho --no-compression                  decline permessage-deflate offers
  wsecho --engine tokio-tungstenite        tokio-tungstenite's frames instead of ours
  RUST_LOG=debug wsecho                    also log each connection opening and closing
";

fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    wscli::parse_listen(s, 9001)
}

fn main() -> ExitCode {
    let args: Args = wscli::parse_args("wsecho");
    let default_level = if args.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr)
        // No escape codes in a file or a pipe.
        .with_ansi(wscli::color_stderr())
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            wscli::report("wsecho", &e);
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.map_err(|e| wscli::bind_error("--listen", args.listen, e))?;
    let addr = listener.local_addr()?;
    let config = wsecho::Config {
        max_message_size: args.max_message_size,
        max_frame_size: args.max_frame_size,
        read_buffer_size: args.read_buffer_size,
        drain: Duration::from_secs(4),
        handshake_timeout: args.handshake_timeout,
        idle_timeout: args.idle_timeout,
        engine: args.engine,
        deflate: (!args.no_compression).then(wsecho::DeflateServerConfig::default),
    };
    if config.handshake_timeout.is_zero() {
        anyhow::bail!("--handshake-timeout must be more than 0");
    }
    if config.idle_timeout.is_some_and(|t| t.is_zero()) {
        anyhow::bail!("--idle-timeout must be more than 0");
    }
    eprintln!("listening on ws://{addr}");
    wsecho::serve(listener, config, wsecho::shutdown_signal()).await?;
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
    fn defaults_match_the_library() {
        let args = Args::try_parse_from(["wsecho"]).expect("defaults");
        let lib = wsecho::Config::default();
        assert_eq!(
            (args.max_message_size, args.max_frame_size, args.read_buffer_size),
            (lib.max_message_size, lib.max_frame_size, lib.read_buffer_size)
        );
        assert_eq!((args.handshake_timeout, args.idle_timeout), (lib.handshake_timeout, lib.idle_timeout));
        assert_eq!((args.engine, args.no_compression), (lib.engine, lib.deflate.is_none()));
    }
}
