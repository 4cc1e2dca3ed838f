//! `wsbroken --flaw NAME [--listen ADDR]`: runs one of the broken echo
//! servers and prints `listening on ws://ADDR` on stderr when ready.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut flaw = None;
    let mut listen = "127.0.0.1:0".to_owned();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--flaw", Some(name)) => flaw = wsbroken::Flaw::from_name(name),
            ("--listen", Some(addr)) => listen = addr.clone(),
            _ => flaw = None,
        }
    }
    let Some(flaw) = flaw else {
        eprintln!("usage: wsbroken --flaw unchecked|lazy|linger|takeover [--listen 127.0.0.1:0]");
        return ExitCode::from(2);
    };
    match wsbroken::spawn(&listen, flaw) {
        Ok(server) => {
            eprintln!("listening on ws://{}", server.local_addr());
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("wsbroken: error: --listen {listen}: {e}");
            ExitCode::from(2)
        }
    }
}
