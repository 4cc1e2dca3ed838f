//! What the relay and the session record of a connection for a capture
//! ([`crate::capture`]): its addresses, the bytes each side sent and when,
//! and how each side ended, as binary records in the buffers of the
//! outputs whose format is [`crate::Format::Capture`].

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::event::Side;

/// Which legs of a connection were TLS (so what a capture holds of them
/// is the decrypted plaintext).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TlsLegs {
    /// The client connected to a `--tls-cert` listener.
    pub client: bool,
    /// The upstream is `wss://`.
    pub upstream: bool,
}

/// One fact about a connection, as the relay and the session record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// A client connected from `client` to the proxy at `proxy`.
    Open { client: SocketAddr, proxy: SocketAddr, tls: TlsLegs },
    /// The proxy's connection to the upstream at `upstream` is up.
    Connected { upstream: SocketAddr },
    /// `from` sent these bytes (as the proxy read them, before any
    /// rewriting).
    Data { from: Side, bytes: &'a [u8] },
    /// `from` ended its stream (EOF, a TCP FIN).
    Eof { from: Side },
    /// The connection is over; `reset` when it ended by a reset or an
    /// error rather than by both sides closing.
    End { reset: bool },
}

const OPEN: u8 = 1;
const CONNECTED: u8 = 2;
const DATA: u8 = 3;
const EOF: u8 = 4;
const END: u8 = 5;

/// Bytes of the record header: tag, connection id, time.
const HEADER: usize = 1 + 8 + 8;
/// Bytes of an encoded address: the IPv6 (or IPv4-mapped) address, a
/// flag for IPv4, the port.
const ADDR: usize = 16 + 1 + 2;

fn put_addr(out: &mut Vec<u8>, a: SocketAddr) {
    let (ip, v4) = match a.ip() {
        IpAddr::V4(v4) => (v4.to_ipv6_mapped(), 1),
        IpAddr::V6(v6) => (v6, 0),
    };
    out.extend_from_slice(&ip.octets());
    out.push(v4);
    out.extend_from_slice(&a.port().to_le_bytes());
}

fn get_addr(b: &[u8]) -> Option<SocketAddr> {
    let b: &[u8; ADDR] = b.get(..ADDR)?.try_into().ok()?;
    let octets: [u8; 16] = b[..16].try_into().ok()?;
    let v6 = Ipv6Addr::from(octets);
    let ip = match (b[16], v6.to_ipv4_mapped()) {
        (1, Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    };
    Some(SocketAddr::new(ip, u16::from_le_bytes([b[17], b[18]])))
}

fn side_byte(s: Side) -> u8 {
    s.index() as u8
}

fn side_of(b: u8) -> Side {
    if b == 0 { Side::Client } else { Side::Upstream }
}

impl Record<'_> {
    /// Appends the record of connection `conn` at `unix_us` (microseconds
    /// since the Unix epoch) to `out`.
    pub(crate) fn encode(&self, conn: u64, unix_us: u64, out: &mut Vec<u8>) {
        let tag = match self {
            Record::Open { .. } => OPEN,
            Record::Connected { .. } => CONNECTED,
            Record::Data { .. } => DATA,
            Record::Eof { .. } => EOF,
            Record::End { .. } => END,
        };
        out.push(tag);
        out.extend_from_slice(&conn.to_le_bytes());
        out.extend_from_slice(&unix_us.to_le_bytes());
        match self {
            Record::Open { client, proxy, tls } => {
                put_addr(out, *client);
                put_addr(out, *proxy);
                out.push(u8::from(tls.client) | u8::from(tls.upstream) << 1);
            }
            Record::Connected { upstream } => put_addr(out, *upstream),
            Record::Data { from, bytes } => {
                out.push(side_byte(*from));
                // A read is at most the relay's buffer, far below 4 GiB.
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Record::Eof { from } => out.push(side_byte(*from)),
            Record::End { reset } => out.push(u8::from(*reset)),
        }
    }
}

/// A decoded record: its connection, its time (µs since the Unix epoch),
/// what it says.
pub(crate) type Decoded<'a> = (u64, u64, Record<'a>);

/// Decodes the record at the start of `b`: `Ok(Some((record, consumed)))`,
/// `Ok(None)` when `b` holds only part of one, `Err(())` for bytes that
/// are not a record (a bug: only [`Record::encode`] writes them).
#[allow(clippy::result_unit_err)]
pub(crate) fn decode(b: &[u8]) -> Result<Option<(Decoded<'_>, usize)>, ()> {
    let Some(head) = b.get(..HEADER) else { return Ok(None) };
    let tag = head[0];
    let conn = u64::from_le_bytes(head[1..9].try_into().map_err(|_| ())?);
    let unix_us = u64::from_le_bytes(head[9..17].try_into().map_err(|_| ())?);
    let body = &b[HEADER..];
    let (record, len) = match tag {
        OPEN => {
            if body.len() < 2 * ADDR + 1 {
                return Ok(None);
            }
            let client = get_addr(body).ok_or(())?;
            let proxy = get_addr(&body[ADDR..]).ok_or(())?;
            let t = body[2 * ADDR];
            (Record::Open { client, proxy, tls: TlsLegs { client: t & 1 != 0, upstream: t & 2 != 0 } }, 2 * ADDR + 1)
        }
        CONNECTED => {
            if body.len() < ADDR {
                return Ok(None);
            }
            (Record::Connected { upstream: get_addr(body).ok_or(())? }, ADDR)
        }
        DATA => {
            let Some(h) = body.get(..5) else { return Ok(None) };
            let len = u32::from_le_bytes(h[1..5].try_into().map_err(|_| ())?) as usize;
            let Some(bytes) = body.get(5..5 + len) else { return Ok(None) };
            (Record::Data { from: side_of(h[0]), bytes }, 5 + len)
        }
        EOF => {
            let Some(&s) = body.first() else { return Ok(None) };
            (Record::Eof { from: side_of(s) }, 1)
        }
        END => {
            let Some(&r) = body.first() else { return Ok(None) };
            (Record::End { reset: r != 0 }, 1)
        }
        _ => return Err(()),
    };
    Ok(Some(((conn, unix_us, record), HEADER + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_every_prefix_is_partial() {
        let records = [
            Record::Open {
                client: "127.0.0.1:5000".parse().expect("addr"),
                proxy: "[::1]:9002".parse().expect("addr"),
                tls: TlsLegs { client: true, upstream: false },
            },
            Record::Connected { upstream: "10.1.2.3:443".parse().expect("addr") },
            Record::Data { from: Side::Upstream, bytes: b"HTTP/1.1 101 Switching Protocols\r\n\r\n" },
            Record::Data { from: Side::Client, bytes: b"" },
            Record::Eof { from: Side::Client },
            Record::End { reset: true },
        ];
        for (i, r) in records.iter().enumerate() {
            let mut out = Vec::new();
            r.encode(i as u64 + 7, 1_700_000_000_000_001, &mut out);
            let ((conn, us, back), used) = decode(&out).expect("valid").expect("whole");
            assert_eq!((conn, us, &back, used), (i as u64 + 7, 1_700_000_000_000_001, r, out.len()));
            for cut in 0..out.len() {
                assert_eq!(decode(&out[..cut]), Ok(None), "prefix {cut} of {r:?}");
            }
        }
        assert_eq!(decode(&[9; 40]), Err(()));
    }
}
