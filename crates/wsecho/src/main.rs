//! `wsecho`: the WebSocket echo server. See the library documentation.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A WebSocket echo server: every text and binary message comes back
/// unchanged. `GET /` serves a demo page, `GET /healthz` answers 200.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Largest message accepted, in bytes (larger: close 1009).
    #[arg(long, default_value_t = 16 << 20)]
    max_message_size: usize,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_frame_size: usize,
    /// Receive buffer per connection, in bytes: allocated per connection, and
    /// the most read from the socket at once.
    #[arg(long, default_value_t = wsecho::Config::default().read_buffer_size)]
    read_buffer_size: usize,
    /// Log only warnings and errors (RUST_LOG overrides).
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let default_level = if args.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsecho: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let config = wsecho::Config {
        max_message_size: args.max_message_size,
        max_frame_size: args.max_frame_size,
        read_buffer_size: args.read_buffer_size,
        drain: Duration::from_secs(4),
    };
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
}
