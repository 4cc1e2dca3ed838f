//! What the toolkit's binaries (`wsproxy`, `wsecho`, `wsharness`) share on
//! the command line, so that the same kind of value is written the same way
//! everywhere:
//!
//! * sizes with units ([`parse_size`]: `65536`, `64KiB`, `16MiB`, `1G`);
//! * durations with a unit or a bare number of seconds ([`parse_duration`]);
//! * listen addresses in the forms people type ([`parse_listen`]: `9003`,
//!   `:9003`, `localhost:9003`, `[::1]:9003`, `0.0.0.0:9003`), and a bind
//!   error that says what to do ([`bind_error`]);
//! * one error prefix (`NAME: error: …`) for clap's errors and ours
//!   ([`parse_args`], [`report`]), plurals ([`count`]) and whether to colour
//!   stderr ([`color_stderr`]);
//! * bytes shown as lowercase hex ([`hex`], [`push_hex`]) wherever a
//!   payload is not text.
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(wscli::parse_size("64MiB"), Ok(64 << 20));
//! assert_eq!(wscli::parse_duration("1"), Ok(Duration::from_secs(1)));
//! assert_eq!(wscli::parse_listen(":9003", 9002), Ok("127.0.0.1:9003".parse().unwrap()));
//! assert_eq!(wscli::count(1, "connection"), "1 connection");
//! assert_eq!(wscli::hex(&[0x00, 0xab, 0xff]), "00abff");
//! ```

use std::io::{self, IsTerminal};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A byte count: a number with an optional unit, `B`, `K`/`KB`/`KiB`,
/// `M`/`MB`/`MiB`, `G`/`GB`/`GiB` (any case; all powers of 1024). Zero is
/// refused: every size flag is a limit or an amount, and 0 of either is a
/// mistake.
pub fn parse_size(s: &str) -> Result<u64, String> {
    const EXAMPLES: &str = "expected a size such as 65536, 64KiB, 16MiB or 1GiB";
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("{s:?}: {EXAMPLES}"));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(format!("{s:?}: unknown unit {:?}; {EXAMPLES}", unit.trim())),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?}: too large"))?;
    n.checked_mul(1 << shift).filter(|&n| n > 0).ok_or_else(|| format!("{s:?}: must be more than 0 and fit in 64 bits"))
}

/// [`parse_size`] for sizes held in a `usize`.
pub fn parse_size_usize(s: &str) -> Result<usize, String> {
    parse_size(s).and_then(|n| usize::try_from(n).map_err(|_| format!("{s:?}: too large for this machine")))
}

/// A duration: humantime's forms (`10s`, `500ms`, `2m`, `1h 30m`) or a bare
/// number of seconds (`1`, `0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && t.chars().all(|c| c.is_ascii_digit() || c == '.')
        && let Ok(secs) = t.parse::<f64>()
    {
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?}: too long"));
    }
    humantime::parse_duration(t)
        .map_err(|_| format!("{s:?} is not a duration: write it as 10s, 500ms, 2m, 1h 30m, or a number of seconds"))
}

/// A listen address. Accepts `IP:PORT` (`127.0.0.1:9002`, `[::1]:9002`,
/// `0.0.0.0:9002`), a bare port or `:PORT` (on 127.0.0.1), a bare IP (on
/// `default_port`), `localhost[:PORT]` (127.0.0.1), and `HOST:PORT` for a
/// name that resolves (its first address).
pub fn parse_listen(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let t = s.trim();
    const FORMS: &str = "expected PORT, :PORT, IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 picks a free port)";
    let port = |p: &str| p.parse::<u16>().map_err(|_| format!("{s:?}: {p:?} is not a port (0 to 65535); {FORMS}"));
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return Ok(SocketAddr::new(loopback, port(t)?));
    }
    if let Ok(ip) = t.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if t.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(loopback, default_port));
    }
    let Some((host, p)) = t.rsplit_once(':') else {
        return Err(format!("{s:?}: {FORMS}"));
    };
    let p = port(p)?;
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(loopback, p));
    }
    if host.contains(':') && !host.starts_with('[') {
        return Err(format!("{s:?}: an IPv6 address needs brackets, as in [::1]:{p}"));
    }
    match (host, p).to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("{s:?}: {host} has no address")),
        Err(e) => Err(format!("{s:?}: {host}: {e}; {FORMS}")),
    }
}

/// The error for a failed bind of `addr` given with `flag`, saying what to
/// do about the usual causes.
pub fn bind_error(flag: &str, addr: SocketAddr, e: io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "another program already listens on port {}: stop it, or pick another port \
             ({flag} {}:0 picks a free one and prints it)",
            addr.port(),
            bracketed(addr.ip())
        ),
        io::ErrorKind::PermissionDenied if addr.port() != 0 && addr.port() < 1024 => format!(
            "ports below 1024 need root (or CAP_NET_BIND_SERVICE): pick a port from 1024 up, or 0 for a free one, \
             as in {flag} {}:9002",
            bracketed(addr.ip())
        ),
        io::ErrorKind::PermissionDenied => "not allowed to listen there".to_owned(),
        io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine: use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
            addr.ip()
        ),
        _ => return anyhow::Error::new(e).context(format!("{flag} {addr}: cannot listen")),
    };
    anyhow::anyhow!("{flag} {addr}: cannot listen: {e}: {hint}")
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `n` and the noun, plural unless `n` is 1 (`1 connection`, `2 connections`).
pub fn count(n: u64, noun: &str) -> String {
    count_with(n, noun, &format!("{noun}s"))
}

/// [`count`] for a noun whose plural is not `-s` (`1 echo`, `2 echoes`).
pub fn count_with(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// Whether to colour what goes to stderr: only on a terminal, and not when
/// `NO_COLOR` is set (<https://no-color.org>).
pub fn color_stderr() -> bool {
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Parses the command line; a usage error is printed with the same
/// `NAME: error: …` prefix as the binary's other errors (exit status 2),
/// `--help` and `--version` as clap prints them.
pub fn parse_args<T: clap::Parser>(name: &str) -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            // Rendered without styles: "error: …" and the usage lines.
            eprint!("{name}: {}", e.render());
            std::process::exit(e.exit_code());
        }
        Err(e) => e.exit(),
    }
}

/// Prints an error of the binary `name` with its chain of causes.
pub fn report(name: &str, e: &anyhow::Error) {
    eprintln!("{name}: error: {e:#}");
}

/// `bytes` as lowercase hex, two digits a byte, no separators.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    push_hex(&mut s, bytes);
    s
}

/// Appends `bytes` to `out` as [`hex`] does.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: [(&str, Option<u64>); 10] = [
            ("65536", Some(65536)),
            ("64KiB", Some(64 << 10)),
            ("16MiB", Some(16 << 20)),
            ("16mb", Some(16 << 20)),
            ("1G", Some(1 << 30)),
            ("2 GiB", Some(2 << 30)),
            ("0", None),
            ("12 parsecs", None),
            ("MiB", None),
            ("99999999999G", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s).ok(), want, "{s}");
        }
        assert!(parse_size("12 parsecs").expect_err("unit").contains("64KiB"));
    }

    #[test]
    fn durations() {
        let cases: [(&str, Option<Duration>); 7] = [
            ("1", Some(Duration::from_secs(1))),
            ("0.5", Some(Duration::from_millis(500))),
            ("10s", Some(Duration::from_secs(10))),
            ("500ms", Some(Duration::from_millis(500))),
            ("2m", Some(Duration::from_secs(120))),
            ("soon", None),
            ("-1", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s).ok(), want, "{s}");
        }
        assert!(parse_duration("soon").expect_err("no duration").contains("number of seconds"));
    }

    #[test]
    fn listen_addresses() {
        let cases: [(&str, Option<&str>); 11] = [
            ("9003", Some("127.0.0.1:9003")),
            (":9003", Some("127.0.0.1:9003")),
            ("localhost:0", Some("127.0.0.1:0")),
            ("LOCALHOST:9003", Some("127.0.0.1:9003")),
            ("localhost", Some("127.0.0.1:9002")),
            ("[::1]:9003", Some("[::1]:9003")),
            ("0.0.0.0:9003", Some("0.0.0.0:9003")),
            ("127.0.0.1", Some("127.0.0.1:9002")),
            ("::1", Some("[::1]:9002")),
            ("localhost:99999", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_listen(s, 9002).ok(), want.map(|w| w.parse().expect("addr")), "{s}");
        }
        assert!(parse_listen("localhost:http", 9002).expect_err("no port").contains("is not a port"));
    }

    #[test]
    fn bind_errors_say_what_to_do() {
        let addr: SocketAddr = "127.0.0.1:80".parse().expect("addr");
        let denied = bind_error("--listen", addr, io::ErrorKind::PermissionDenied.into()).to_string();
        assert!(denied.contains("below 1024") && denied.contains("--listen 127.0.0.1:9002"), "{denied}");
        let in_use = bind_error("--listen", addr, io::ErrorKind::AddrInUse.into()).to_string();
        assert!(in_use.contains("another port") && in_use.contains("--listen 127.0.0.1:0"), "{in_use}");
    }

    #[test]
    fn plurals() {
        assert_eq!(count(0, "case"), "0 cases");
        assert_eq!(count(1, "case"), "1 case");
        assert_eq!(count(2, "case"), "2 cases");
        assert_eq!(count_with(1, "echo", "echoes"), "1 echo");
        assert_eq!(count_with(3, "echo", "echoes"), "3 echoes");
    }
}
