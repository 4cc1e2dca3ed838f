//! `wsbroken --flaw NAME [--listen ADDR]`: runs one of the broken echo
//! servers and prints `listening on ws://ADDR` on stderr when ready.
//!
//! `wsbroken --client-flaw NAME [--agent A] [URL]`: runs one of the broken
//! clients against the fuzzingserver at `URL` (`ws://HOST:PORT`; default
//! `$AUTOBAHN_URL`, as `wsharness autobahn client` sets it): every case,
//! then the reports' update.

use std::process::ExitCode;

const USAGE: &str = "usage: wsbroken --flaw unchecked|lazy|linger|takeover [--listen 127.0.0.1:0]\n       \
                     wsbroken --client-flaw unmasked|unchecked [--agent NAME] [ws://HOST:PORT, default $AUTOBAHN_URL]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut flaw = None;
    let mut client_flaw = None;
    let mut agent = None;
    let mut url = None;
    let mut listen = "127.0.0.1:0".to_owned();
    let mut bad = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--flaw" => flaw = it.next().and_then(|n| wsbroken::Flaw::from_name(n)),
            "--client-flaw" => client_flaw = it.next().and_then(|n| wsbroken::ClientFlaw::from_name(n)),
            "--listen" => listen = it.next().cloned().unwrap_or_default(),
            "--agent" => agent = it.next().cloned(),
            u if u.starts_with("ws://") && url.is_none() => url = Some(u.to_owned()),
            _ => bad = true,
        }
    }
    if client_flaw.is_some() && url.is_none() {
        url = std::env::var("AUTOBAHN_URL").ok();
    }
    match (flaw, client_flaw, url) {
        (Some(flaw), None, None) if !bad => match wsbroken::spawn(&listen, flaw) {
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
        },
        (None, Some(flaw), Some(url)) if !bad => {
            let agent = agent.unwrap_or_else(|| format!("broken-{}", flaw.name()));
            match wsbroken::run_client(&url, flaw, &agent) {
                Ok(cases) => {
                    eprintln!("wsbroken: {cases} cases run as {agent}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("wsbroken: error: {url}: {e}");
                    ExitCode::from(2)
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
