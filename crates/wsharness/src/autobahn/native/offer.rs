//! permessage-deflate from the server's side, as the fuzzingserver does
//! it: the client's offers parsed as `PerMessageDeflateOffer.parse` parses
//! them (`autobahn/websocket/compress_deflate.py`), and accepted as the
//! compression case's `SERVER_ACCEPT` accepts them
//! (`autobahntestsuite/case/case12_x_x.py`: `accept_deflate` for 12.*,
//! `accept1` to `accept7` for 13.1.* to 13.7.*).
//!
//! Autobahn's rules are followed where they are looser or stricter than
//! RFC 7692 §7.1, so that a client sees the response wstest would send:
//! a bare `server_max_window_bits` is an error (Python's `int(True)` is 1);
//! `client_no_context_takeover` counts as offered whether or not it is
//! (the parser starts from `acceptNoContextTakeover = True`), which RFC
//! 7692 §7.1.2.2 allows the server to answer with anyway.

use super::cases::Case;

/// The extension the compression cases negotiate.
const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// `WINDOW_SIZE_PERMISSIBLE_VALUES`.
const WINDOW_BITS: std::ops::RangeInclusive<u8> = 8..=15;

/// One `permessage-deflate` offer (`PerMessageDeflateOffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// `acceptNoContextTakeover`: always true (see the module's notes).
    pub accept_no_context_takeover: bool,
    /// `acceptMaxWindowBits`: the offer has `client_max_window_bits`.
    pub accept_max_window_bits: bool,
    /// `requestNoContextTakeover`: the offer has `server_no_context_takeover`.
    pub request_no_context_takeover: bool,
    /// `requestMaxWindowBits`: `server_max_window_bits=N` (0: absent).
    pub request_max_window_bits: u8,
}

/// What the server agreed to: the response's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The server compresses without context takeover.
    pub server_no_context_takeover: bool,
    /// The server's window (None: 15, not in the response).
    pub server_max_window_bits: Option<u8>,
    /// The client must compress without context takeover.
    pub client_no_context_takeover: bool,
    /// The client's window (None: 15, not in the response).
    pub client_max_window_bits: Option<u8>,
}

impl Agreed {
    /// `PerMessageDeflateOfferAccept.getExtensionString`, in its order.
    pub fn response(&self) -> String {
        let mut s = PERMESSAGE_DEFLATE.to_owned();
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={bits}"));
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.client_max_window_bits {
            s.push_str(&format!("; client_max_window_bits={bits}"));
        }
        s
    }
}

/// Which `SERVER_ACCEPT` a case uses (1 to 7, `accept1` to `accept7`), or
/// None for a case that declines every offer (the factory's default
/// `perMessageCompressionAccept`, which returns None).
pub fn server_accept(case: &Case) -> Option<u8> {
    case.deflate.as_ref()?;
    let mut parts = case.id.split('.');
    match (parts.next(), parts.next()) {
        // `accept_deflate` is `accept1`.
        (Some("12"), _) => Some(1),
        (Some("13"), Some(n)) => n.parse().ok().filter(|n| (1..=7).contains(n)),
        _ => None,
    }
}

/// A Python-style `int(value)` of a window size, kept when permissible.
fn window_bits(value: &str) -> Option<u8> {
    value.trim().parse::<i64>().ok().and_then(|v| u8::try_from(v).ok()).filter(|v| WINDOW_BITS.contains(v))
}

/// `_parseExtensionsHeader` then `PerMessageDeflateOffer.parse` on each
/// `permessage-deflate` element of the `Sec-WebSocket-Extensions` values;
/// other extensions are skipped. An invalid offer is an error (the
/// fuzzingserver then fails the handshake), with Autobahn's message.
pub fn parse_offers(headers: &[String]) -> Result<Vec<Offer>, String> {
    let mut offers = Vec::new();
    for element in headers.iter().flat_map(|h| h.split(',')).map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = element.split(';').map(str::trim);
        if !parts.next().is_some_and(|name| name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE)) {
            continue;
        }
        let mut params: Vec<(String, Option<String>)> = Vec::new();
        for p in parts {
            let (key, value) = match p.split_once('=') {
                Some((k, v)) => {
                    let v = v.trim();
                    let v = v.strip_prefix('"').unwrap_or(v);
                    let v = v.strip_suffix('"').unwrap_or(v);
                    (k.trim().to_lowercase(), Some(v.to_owned()))
                }
                None => (p.to_lowercase(), None),
            };
            if params.iter().any(|(k, _)| *k == key) {
                return Err(format!(
                    "multiple occurrence of extension parameter '{key}' for extension '{PERMESSAGE_DEFLATE}'"
                ));
            }
            params.push((key, value));
        }
        let mut offer = Offer {
            accept_no_context_takeover: true,
            accept_max_window_bits: false,
            request_no_context_takeover: false,
            request_max_window_bits: 0,
        };
        for (key, value) in params {
            let illegal_value = |v: &str| {
                format!(
                    "illegal extension parameter value '{v}' for parameter '{key}' of extension '{PERMESSAGE_DEFLATE}'"
                )
            };
            match (key.as_str(), value.as_deref()) {
                ("client_max_window_bits", None) => offer.accept_max_window_bits = true,
                ("client_max_window_bits", Some(v)) => {
                    window_bits(v).ok_or_else(|| illegal_value(v))?;
                    offer.accept_max_window_bits = true;
                }
                ("client_no_context_takeover", None) => offer.accept_no_context_takeover = true,
                ("server_no_context_takeover", None) => offer.request_no_context_takeover = true,
                ("server_max_window_bits", Some(v)) => {
                    offer.request_max_window_bits = window_bits(v).ok_or_else(|| illegal_value(v))?;
                }
                // `int(True)` is 1, which is not a permissible value.
                ("server_max_window_bits", None) => return Err(illegal_value("True")),
                ("client_no_context_takeover" | "server_no_context_takeover", Some(v)) => {
                    return Err(illegal_value(v));
                }
                _ => {
                    return Err(format!("illegal extension parameter '{key}' for extension '{PERMESSAGE_DEFLATE}'"));
                }
            }
        }
        offers.push(offer);
    }
    Ok(offers)
}

/// `PerMessageDeflateOfferAccept(offer, requestNoContextTakeover,
/// requestMaxWindowBits)`.
fn agree(offer: &Offer, request_no_context_takeover: bool, request_max_window_bits: u8) -> Agreed {
    Agreed {
        server_no_context_takeover: offer.request_no_context_takeover,
        server_max_window_bits: (offer.request_max_window_bits != 0).then_some(offer.request_max_window_bits),
        client_no_context_takeover: request_no_context_takeover,
        client_max_window_bits: (request_max_window_bits != 0).then_some(request_max_window_bits),
    }
}

/// The first offer the case's accept function takes, as it takes it
/// (`accept1` … `accept7` of `case12_x_x.py`); None declines them all.
pub fn accept_offers(mode: u8, offers: &[Offer]) -> Option<Agreed> {
    let first = |want_nct: bool, bits: u8| {
        offers
            .iter()
            .find(|o| (!want_nct || o.accept_no_context_takeover) && (bits == 0 || o.accept_max_window_bits))
            .map(|o| agree(o, want_nct, bits))
    };
    match mode {
        1 => first(false, 0),
        2 => first(true, 0),
        3 => first(false, 9),
        4 => first(false, 15),
        5 => first(true, 9),
        6 => first(true, 15),
        7 => accept_offers(5, offers).or_else(|| accept_offers(2, offers)).or_else(|| accept_offers(1, offers)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(h: &str) -> Vec<Offer> {
        parse_offers(&[h.to_owned()]).expect("valid offers")
    }

    #[test]
    fn offers_as_autobahn_parses_them() {
        let o = offers("permessage-deflate; client_max_window_bits, x-webkit-deflate-frame, permessage-deflate");
        assert_eq!(o.len(), 2);
        assert!(o[0].accept_max_window_bits && !o[1].accept_max_window_bits);
        // Always "accepted", offered or not.
        assert!(o[1].accept_no_context_takeover);
        let o = offers("Permessage-Deflate; server_max_window_bits=\"10\"; server_no_context_takeover");
        assert_eq!((o[0].request_max_window_bits, o[0].request_no_context_takeover), (10, true));
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; mem_level=4",
            "permessage-deflate; client_max_window_bits; client_max_window_bits",
        ] {
            assert!(parse_offers(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn accept_functions_of_case13() {
        let plain = offers("permessage-deflate");
        let full = offers("permessage-deflate; client_max_window_bits; server_no_context_takeover");
        let table: [(u8, &[Offer], Option<&str>); 9] = [
            (1, &plain, Some("permessage-deflate")),
            (1, &full, Some("permessage-deflate; server_no_context_takeover")),
            (2, &plain, Some("permessage-deflate; client_no_context_takeover")),
            (3, &plain, None),
            (3, &full, Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=9")),
            (4, &full, Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=15")),
            (
                6,
                &full,
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     client_max_window_bits=15",
                ),
            ),
            (7, &plain, Some("permessage-deflate; client_no_context_takeover")),
            (1, &[], None),
        ];
        for (mode, offers, want) in table {
            assert_eq!(accept_offers(mode, offers).map(|a| a.response()).as_deref(), want, "accept{mode}");
        }
    }

    #[test]
    fn accept_mode_by_case() {
        let cases = super::super::cases::all_cases();
        let mode = |id: &str| server_accept(cases.iter().find(|c| c.id == id).expect("case"));
        assert_eq!((mode("1.1.1"), mode("12.1.1"), mode("13.3.2"), mode("13.7.18")), (None, Some(1), Some(3), Some(7)));
    }
}
