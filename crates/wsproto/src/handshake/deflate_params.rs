//! The permessage-deflate negotiation (RFC 7692 §7.1): the parameters of a
//! client's offer, the parameters a server's response agreed to, and the
//! rules that tie the two together (§7.1.1, §7.1.2).
//!
//! This part needs no codec, so it lives with the handshake and
//! [`super::Response::validate_for`] applies it; the `deflate` feature adds
//! the inflater and the deflater on top.

use core::fmt;

use super::tokens::Extension;
use crate::Role;
use crate::error::Error;

/// The extension token (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Whether an extension element is permessage-deflate.
pub(crate) fn is_permessage_deflate(ext: &Extension<'_>) -> bool {
    ext.name.eq_ignore_ascii_case(EXTENSION_NAME)
}

/// The four parameters of §7.1, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    ServerNoContextTakeover,
    ClientNoContextTakeover,
    ServerMaxWindowBits,
    ClientMaxWindowBits,
}

impl Param {
    fn from_name(name: &str) -> Option<Param> {
        const NAMES: [(&str, Param); 4] = [
            ("server_no_context_takeover", Param::ServerNoContextTakeover),
            ("client_no_context_takeover", Param::ClientNoContextTakeover),
            ("server_max_window_bits", Param::ServerMaxWindowBits),
            ("client_max_window_bits", Param::ClientMaxWindowBits),
        ];
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, p)| *p)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The parameters of one element, each at most once (§7.1: "multiple
/// extension parameters with the same name" make an offer or a response
/// invalid), with its value as given.
fn params_of<'e>(ext: &'e Extension<'_>, invalid: Error) -> Result<[Option<Option<&'e str>>; 4], Error> {
    let mut seen: [Option<Option<&str>>; 4] = [None; 4];
    for p in &ext.params {
        let param = Param::from_name(p.name).ok_or(invalid)?;
        if seen[param.index()].replace(p.value.as_deref()).is_some() {
            return Err(invalid);
        }
    }
    Ok(seen)
}

/// §7.1.2: "a decimal integer value without leading zeroes between 8 to 15
/// inclusive".
fn window_bits(value: Option<&str>, invalid: Error) -> Result<u8, Error> {
    match value {
        Some(v) if (1..=2).contains(&v.len()) && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit()) => {
            match v.parse::<u8>() {
                Ok(n @ 8..=15) => Ok(n),
                _ => Err(invalid),
            }
        }
        _ => Err(invalid),
    }
}

/// A parameter without a value (the two `*_no_context_takeover`, §7.1.1).
fn flag(value: Option<Option<&str>>, invalid: Error) -> Result<bool, Error> {
    match value {
        None => Ok(false),
        Some(None) => Ok(true),
        Some(Some(_)) => Err(invalid),
    }
}

/// One permessage-deflate offer of a client (RFC 7692 §7.1).
///
/// A server parses each offer with [`DeflateOffer::parse`] and declines the
/// ones that fail (§7.1: "A server MUST decline an extension negotiation
/// offer for this extension if [...] the negotiation offer contains an
/// extension parameter not defined for use in an offer [...] with an
/// invalid value [...] multiple extension parameters with the same name").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DeflateOffer {
    /// The client asks the server not to keep its window between messages
    /// (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client announces it will not keep its window (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// The largest window the client lets the server use, 8–15
    /// (§7.1.2.1; in an offer it always has a value).
    pub server_max_window_bits: Option<u8>,
    /// §7.1.2.2: `None` when absent (the response then MUST NOT carry it),
    /// `Some(None)` when given without a value (the client supports the
    /// parameter), `Some(Some(n))` when it limits the server's answer to n.
    pub client_max_window_bits: Option<Option<u8>>,
}

impl DeflateOffer {
    /// The offer an extension element makes, or
    /// [`Error::InvalidDeflateOffer`] when §7.1 makes the server decline it.
    /// The element must be permessage-deflate (its name is not checked).
    pub fn parse(ext: &Extension<'_>) -> Result<DeflateOffer, Error> {
        let invalid = Error::InvalidDeflateOffer;
        let [snct, cnct, smwb, cmwb] = params_of(ext, invalid)?;
        Ok(DeflateOffer {
            server_no_context_takeover: flag(snct, invalid)?,
            client_no_context_takeover: flag(cnct, invalid)?,
            // §7.1.2.1: in an offer, server_max_window_bits has a value.
            server_max_window_bits: smwb.map(|v| window_bits(v, invalid)).transpose()?,
            // §7.1.2.2: "This parameter has no value or a decimal integer
            // value without leading zeroes between 8 to 15".
            client_max_window_bits: cmwb.map(|v| v.map(|v| window_bits(Some(v), invalid)).transpose()).transpose()?,
        })
    }

    /// Every permessage-deflate offer among `extensions`, in order of
    /// preference, each parsed (other extensions are left out).
    pub fn offers<'a>(extensions: &'a [Extension<'_>]) -> impl Iterator<Item = Result<DeflateOffer, Error>> + 'a {
        extensions.iter().filter(|e| is_permessage_deflate(e)).map(DeflateOffer::parse)
    }

    /// The first offer among `extensions` that a server may accept (the
    /// invalid ones are declined, §7.1), if any.
    pub fn first_valid(extensions: &[Extension<'_>]) -> Option<DeflateOffer> {
        Self::offers(extensions).find_map(Result::ok)
    }

    /// The answer that accepts this offer as it stands: the server
    /// parameters the offer asks for (§7.1.1.1, §7.1.2.1), the client's
    /// promise not to keep its window, and the client's window limit when
    /// the offer gave one (§7.1.2.2).
    pub fn accept(&self) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: self.server_max_window_bits,
            client_max_window_bits: self.client_max_window_bits.flatten(),
        }
    }

    /// Whether a response with `params` accepts this offer, as §7.1.1 and
    /// §7.1.2 describe (a client MUST fail the connection when it "does not
    /// support the configuration that the response represents", §7.1).
    pub fn check_response(&self, params: &DeflateParams) -> Result<(), Error> {
        // §7.1.1.1: "A server accepts an extension negotiation offer that
        // includes the \"server_no_context_takeover\" extension parameter by
        // including [it] in the corresponding extension negotiation response".
        // (A server MAY add it unasked; client_no_context_takeover is free
        // both ways, §7.1.1.2.)
        if self.server_no_context_takeover && !params.server_no_context_takeover {
            return Err(Error::OfferedParamMissing);
        }
        // §7.1.2.1: "A server accepts an extension negotiation offer with
        // this parameter by including the \"server_max_window_bits\"
        // extension parameter in the extension negotiation response [...]
        // with the same or smaller value as the offer."
        if let Some(offered) = self.server_max_window_bits {
            match params.server_max_window_bits {
                None => return Err(Error::OfferedParamMissing),
                Some(bits) if bits > offered => return Err(Error::WindowBitsAboveOffer),
                Some(_) => {}
            }
        }
        // §7.1.2.2: absent from the offer, the response "MUST NOT include"
        // it; with a value, the response's is "equal to or smaller than the
        // received value".
        match (self.client_max_window_bits, params.client_max_window_bits) {
            (None, Some(_)) => Err(Error::UnofferedClientMaxWindowBits),
            (Some(Some(offered)), Some(bits)) if bits > offered => Err(Error::WindowBitsAboveOffer),
            _ => Ok(()),
        }
    }
}

/// What a server asks for when it accepts a permessage-deflate offer
/// (RFC 7692 §7.1): the input of [`DeflateOffer::negotiate`].
///
/// The defaults accept every valid offer as it stands and ask for nothing
/// more: context takeover and 15-bit windows both ways unless the offer
/// asks otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateServerConfig {
    /// Start each message this server sends with an empty window, even
    /// unasked (§7.1.1.1: a server MAY add `server_no_context_takeover`).
    pub server_no_context_takeover: bool,
    /// Ask the client not to keep its window (§7.1.1.2: a server MAY add
    /// `client_no_context_takeover`); the server then needs no window
    /// between the client's messages.
    pub client_no_context_takeover: bool,
    /// The largest window this server compresses with, 8–15 (§7.1.2.1).
    /// Below 15 it is announced as `server_max_window_bits` even unasked;
    /// an offer's smaller value wins.
    pub server_max_window_bits: u8,
    /// The window the server asks the client to stay within, 8–15
    /// (§7.1.2.2). Sent only when the offer carries
    /// `client_max_window_bits` (a response MUST NOT include it otherwise),
    /// and never above the offer's value.
    pub client_max_window_bits: u8,
}

impl Default for DeflateServerConfig {
    fn default() -> Self {
        DeflateServerConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// The outcome of a server's negotiation ([`DeflateOffer::negotiate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// The client offered no permessage-deflate: answer without it.
    NotOffered,
    /// Every offer was invalid and is declined (RFC 7692 §7.1): answer
    /// without permessage-deflate. The error is the first offer's, for the
    /// log.
    Declined(Error),
    /// An offer is accepted: answer with `params` (its [`fmt::Display`] is
    /// the `Sec-WebSocket-Extensions` value). `declined` invalid offers came
    /// before it.
    Accepted {
        /// The agreed parameters.
        params: DeflateParams,
        /// The offers skipped as invalid before the accepted one.
        declined: usize,
    },
}

impl Negotiation {
    /// The agreed parameters, when an offer was accepted.
    pub fn params(&self) -> Option<DeflateParams> {
        match self {
            Negotiation::Accepted { params, .. } => Some(*params),
            Negotiation::NotOffered | Negotiation::Declined(_) => None,
        }
    }
}

impl DeflateOffer {
    /// A server's choice among a client's offers (RFC 7692 §7.1): the
    /// offers are taken in the client's order of preference; an invalid one
    /// is declined ("A server MUST decline an extension negotiation offer
    /// for this extension if [...]") and the next one considered; the first
    /// valid one is accepted with [`DeflateOffer::respond`]. Every valid
    /// offer can be accepted, so at most the invalid ones are declined.
    ///
    /// `extensions` is the client's `Sec-WebSocket-Extensions`, parsed with
    /// [`super::parse_extensions`] (other extensions are ignored here).
    pub fn negotiate(extensions: &[Extension<'_>], config: &DeflateServerConfig) -> Negotiation {
        let mut first_error = None;
        let mut declined = 0;
        for offer in Self::offers(extensions) {
            match offer {
                Ok(offer) => return Negotiation::Accepted { params: offer.respond(config), declined },
                Err(e) => {
                    declined += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Negotiation::NotOffered, Negotiation::Declined)
    }

    /// The response a server with `config` gives to this (valid) offer. It
    /// always passes [`DeflateOffer::check_response`]:
    ///
    /// * `server_no_context_takeover` when the offer asks for it (§7.1.1.1:
    ///   accepting the offer means including it) or the server wants it;
    /// * `client_no_context_takeover` when the offer announces it or the
    ///   server asks for it (§7.1.1.2);
    /// * `server_max_window_bits`: the smaller of the offer's value and the
    ///   server's (§7.1.2.1: "the same or smaller value as the offer"), left
    ///   out when neither limits it. **8 bits**: zlib cannot compress with a
    ///   256-byte window, and the usual practice is to compress with 9
    ///   instead. We answer 8 as the offer asked (answering 9 would break
    ///   §7.1.2.1 and a strict client fails the connection) and compress
    ///   with zlib's 9 bits, which is still within the agreed window: zlib
    ///   never refers further back than 2^w − 262 bytes, so 250 bytes ≤ 256
    ///   (see `wsproto::deflate::MIN_ZLIB_WINDOW_BITS`);
    /// * `client_max_window_bits` only when the offer carries it (§7.1.2.2:
    ///   otherwise the response "MUST NOT include" it): the smaller of the
    ///   offer's value and the server's, left out when that is 15.
    pub fn respond(&self, config: &DeflateServerConfig) -> DeflateParams {
        let server_bits = config.server_max_window_bits.clamp(8, 15);
        let client_bits = config.client_max_window_bits.clamp(8, 15);
        let server_max_window_bits = match self.server_max_window_bits {
            Some(offered) => Some(offered.min(server_bits)),
            None => (server_bits < 15).then_some(server_bits),
        };
        let client_max_window_bits = match self.client_max_window_bits {
            None => None,
            Some(offered) => {
                let bits = offered.unwrap_or(15).min(client_bits);
                (bits < 15 || offered.is_some()).then_some(bits)
            }
        };
        DeflateParams {
            server_no_context_takeover: self.server_no_context_takeover || config.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover || config.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        }
    }
}

impl fmt::Display for DeflateOffer {
    /// The offer as a `Sec-WebSocket-Extensions` element.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXTENSION_NAME)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        match self.client_max_window_bits {
            None => Ok(()),
            Some(None) => f.write_str("; client_max_window_bits"),
            Some(Some(bits)) => write!(f, "; client_max_window_bits={bits}"),
        }
    }
}

/// The parameters a server agreed to in its `Sec-WebSocket-Extensions`
/// answer (RFC 7692 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DeflateParams {
    /// The server starts each message with an empty window (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client starts each message with an empty window (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server compresses with, 8–15 (§7.1.2.1).
    pub server_max_window_bits: Option<u8>,
    /// The largest LZ77 window the client compresses with, 8–15 (§7.1.2.2).
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The agreed parameters from the extensions a server's answer lists:
    /// `Ok(None)` when permessage-deflate is not among them.
    ///
    /// RFC 7692 §7.1: the server accepts at most one element; each
    /// parameter appears at most once; the two `*_no_context_takeover`
    /// parameters have no value; `*_max_window_bits` in a response carry a
    /// value from 8 to 15; any other parameter makes the answer invalid.
    /// This checks the response alone; [`DeflateParams::from_response_to`]
    /// checks it against the offers too.
    pub fn from_response(extensions: &[Extension<'_>]) -> Result<Option<DeflateParams>, Error> {
        let mut found = None;
        for ext in extensions.iter().filter(|e| is_permessage_deflate(e)) {
            if found.is_some() {
                return Err(Error::InvalidDeflateParams);
            }
            found = Some(Self::from_element(ext)?);
        }
        Ok(found)
    }

    /// As [`DeflateParams::from_response`], then checked against the
    /// client's `offered` extensions (§7.1.1, §7.1.2): the response must
    /// accept one of the valid permessage-deflate offers. When it accepts
    /// none, the error is the one against the first valid offer (the
    /// client's preferred one); when every offer was invalid, that offer's
    /// error. A response that selects permessage-deflate without any offer
    /// of it is [`Error::UnofferedExtension`].
    pub fn from_response_to(
        offered: &[Extension<'_>],
        extensions: &[Extension<'_>],
    ) -> Result<Option<DeflateParams>, Error> {
        let Some(params) = Self::from_response(extensions)? else { return Ok(None) };
        let mut first_error = None;
        let mut first_invalid = None;
        for offer in DeflateOffer::offers(offered) {
            match offer {
                Ok(offer) => match offer.check_response(&params) {
                    Ok(()) => return Ok(Some(params)),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                },
                Err(e) => {
                    first_invalid.get_or_insert(e);
                }
            }
        }
        Err(first_error.or(first_invalid).unwrap_or(Error::UnofferedExtension))
    }

    fn from_element(ext: &Extension<'_>) -> Result<DeflateParams, Error> {
        let invalid = Error::InvalidDeflateParams;
        let [snct, cnct, smwb, cmwb] = params_of(ext, invalid)?;
        Ok(DeflateParams {
            server_no_context_takeover: flag(snct, invalid)?,
            client_no_context_takeover: flag(cnct, invalid)?,
            // §7.1.2.1, §7.1.2.2: in a response, both carry a value.
            server_max_window_bits: smwb.map(|v| window_bits(v, invalid)).transpose()?,
            client_max_window_bits: cmwb.map(|v| window_bits(v, invalid)).transpose()?,
        })
    }

    /// Whether the sender in `role` starts each message with an empty window.
    pub fn no_context_takeover(&self, sender: Role) -> bool {
        match sender {
            Role::Client => self.client_no_context_takeover,
            Role::Server => self.server_no_context_takeover,
        }
    }

    /// The window the sender in `role` compresses with (15 when not limited).
    pub fn max_window_bits(&self, sender: Role) -> u8 {
        match sender {
            Role::Client => self.client_max_window_bits,
            Role::Server => self.server_max_window_bits,
        }
        .unwrap_or(15)
    }
}

impl fmt::Display for DeflateParams {
    /// The parameters as a `Sec-WebSocket-Extensions` element of a response.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXTENSION_NAME)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        if let Some(bits) = self.client_max_window_bits {
            write!(f, "; client_max_window_bits={bits}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::handshake::parse_extensions;

    fn exts(header: &str) -> Vec<Extension<'_>> {
        let mut out = Vec::new();
        parse_extensions(header.as_bytes(), &mut out).expect("extension syntax");
        out
    }

    fn params(header: &str) -> Result<Option<DeflateParams>, Error> {
        DeflateParams::from_response(&exts(header))
    }

    #[test]
    fn response_parameters_follow_section_7_1() {
        assert_eq!(params("x-other"), Ok(None));
        assert_eq!(params("permessage-deflate"), Ok(Some(DeflateParams::default())));
        let p = params("permessage-deflate; server_no_context_takeover; client_max_window_bits=9")
            .ok()
            .flatten()
            .unwrap_or_default();
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!((p.client_max_window_bits, p.max_window_bits(Role::Server)), (Some(9), 15));
        assert!(p.no_context_takeover(Role::Server));
        let p = params("permessage-deflate; server_max_window_bits=\"10\"").ok().flatten().unwrap_or_default();
        assert_eq!(p.server_max_window_bits, Some(10));
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; x=1",
            "permessage-deflate, permessage-deflate",
        ] {
            assert_eq!(params(bad), Err(Error::InvalidDeflateParams), "{bad}");
        }
    }

    #[test]
    fn offers_follow_section_7_1() {
        let offer = |h: &str| DeflateOffer::parse(&exts(h)[0]);
        assert_eq!(offer("permessage-deflate"), Ok(DeflateOffer::default()));
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits; server_max_window_bits=10; server_no_context_takeover"),
            Ok(DeflateOffer {
                server_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(None),
                ..DeflateOffer::default()
            })
        );
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits=\"12\"; client_no_context_takeover"),
            Ok(DeflateOffer {
                client_no_context_takeover: true,
                client_max_window_bits: Some(Some(12)),
                ..DeflateOffer::default()
            })
        );
        for bad in [
            // §7.1.2.1: server_max_window_bits in an offer has a value.
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=010",
            "permessage-deflate; client_no_context_takeover=yes",
            "permessage-deflate; client_max_window_bits; client_max_window_bits",
            "permessage-deflate; mux",
        ] {
            assert_eq!(offer(bad), Err(Error::InvalidDeflateOffer), "{bad}");
        }
        // A server declines the invalid offer and takes the next one.
        let list = exts("permessage-deflate; x, permessage-deflate; client_max_window_bits");
        assert_eq!(
            DeflateOffer::first_valid(&list),
            Some(DeflateOffer { client_max_window_bits: Some(None), ..DeflateOffer::default() })
        );
        assert_eq!(DeflateOffer::first_valid(&exts("permessage-deflate; x")), None);
    }

    /// The two examples, then every parameter of §7.1.1 and §7.1.2
    /// in both directions: absent, present, smaller, equal, larger.
    #[test]
    fn responses_against_offers() {
        let check = |offer: &str, response: &str| DeflateParams::from_response_to(&exts(offer), &exts(response));
        let ok = |offer: &str, response: &str| assert!(check(offer, response).is_ok(), "{offer} / {response}");
        let err =
            |offer: &str, response: &str, e: Error| assert_eq!(check(offer, response), Err(e), "{offer} / {response}");
        let pmd = "permessage-deflate";
        err(pmd, "permessage-deflate; client_max_window_bits=15", Error::UnofferedClientMaxWindowBits);
        err(
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=12",
            Error::WindowBitsAboveOffer,
        );
        // §7.1.1.1 server_no_context_takeover.
        ok(pmd, "permessage-deflate; server_no_context_takeover");
        ok("permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover");
        err("permessage-deflate; server_no_context_takeover", pmd, Error::OfferedParamMissing);
        // §7.1.1.2 client_no_context_takeover: free both ways.
        ok(pmd, "permessage-deflate; client_no_context_takeover");
        ok("permessage-deflate; client_no_context_takeover", pmd);
        // §7.1.2.1 server_max_window_bits.
        ok(pmd, "permessage-deflate; server_max_window_bits=9");
        err("permessage-deflate; server_max_window_bits=10", pmd, Error::OfferedParamMissing);
        ok("permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10");
        ok("permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=8");
        // §7.1.2.2 client_max_window_bits.
        ok("permessage-deflate; client_max_window_bits", pmd);
        ok("permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits=15");
        ok("permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10");
        ok("permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=9");
        err(
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=11",
            Error::WindowBitsAboveOffer,
        );
        // Several offers: the response accepts the second.
        ok(
            "permessage-deflate; server_max_window_bits=10, permessage-deflate",
            "permessage-deflate; server_max_window_bits=12",
        );
        // Only invalid offers: the offer's own error.
        err("permessage-deflate; x", pmd, Error::InvalidDeflateOffer);
        err("x-webkit-deflate-frame", pmd, Error::UnofferedExtension);
        assert_eq!(check(pmd, "x-webkit-deflate-frame"), Ok(None));
    }

    /// The server's side of §7.1: offers in order, invalid ones declined,
    /// each parameter honoured.
    #[test]
    fn servers_choose_from_the_offers() {
        let default = DeflateServerConfig::default();
        let negotiate = |h: &str, config: &DeflateServerConfig| DeflateOffer::negotiate(&exts(h), config);
        let answer = |h: &str, config: &DeflateServerConfig| negotiate(h, config).params().map(|p| p.to_string());
        assert_eq!(negotiate("x-webkit-deflate-frame", &default), Negotiation::NotOffered);
        assert_eq!(negotiate("", &default), Negotiation::NotOffered);
        assert_eq!(
            negotiate("permessage-deflate; x, permessage-deflate; server_max_window_bits", &default),
            Negotiation::Declined(Error::InvalidDeflateOffer)
        );
        assert_eq!(
            negotiate("permessage-deflate; x=1, permessage-deflate; server_no_context_takeover", &default),
            Negotiation::Accepted {
                params: DeflateParams { server_no_context_takeover: true, ..DeflateParams::default() },
                declined: 1
            }
        );
        let table: &[(&str, DeflateServerConfig, &str)] = &[
            ("permessage-deflate", default, "permessage-deflate"),
            // Chromium's offer.
            ("permessage-deflate; client_max_window_bits", default, "permessage-deflate"),
            (
                "permessage-deflate; client_max_window_bits",
                DeflateServerConfig { client_max_window_bits: 10, ..default },
                "permessage-deflate; client_max_window_bits=10",
            ),
            // Not offered: the server must not limit the client's window.
            ("permessage-deflate", DeflateServerConfig { client_max_window_bits: 10, ..default }, "permessage-deflate"),
            (
                "permessage-deflate; client_max_window_bits=12",
                DeflateServerConfig { client_max_window_bits: 10, ..default },
                "permessage-deflate; client_max_window_bits=10",
            ),
            (
                "permessage-deflate; client_max_window_bits=9",
                DeflateServerConfig { client_max_window_bits: 10, ..default },
                "permessage-deflate; client_max_window_bits=9",
            ),
            ("permessage-deflate; server_max_window_bits=9", default, "permessage-deflate; server_max_window_bits=9"),
            // 8 is answered as asked; the deflater compresses with zlib's 9.
            ("permessage-deflate; server_max_window_bits=8", default, "permessage-deflate; server_max_window_bits=8"),
            (
                "permessage-deflate; server_max_window_bits=12",
                DeflateServerConfig { server_max_window_bits: 10, ..default },
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                "permessage-deflate",
                DeflateServerConfig { server_max_window_bits: 10, ..default },
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                default,
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            ),
            (
                "permessage-deflate",
                DeflateServerConfig { server_no_context_takeover: true, client_no_context_takeover: true, ..default },
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            ),
            // Autobahn 13.7: the first of three offers.
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits, \
                 permessage-deflate; server_no_context_takeover, permessage-deflate",
                default,
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
            ),
        ];
        for (offer, config, expected) in table {
            assert_eq!(answer(offer, config).as_deref(), Some(*expected), "{offer} / {config:?}");
        }
    }

    fn offer_strategy() -> impl Strategy<Value = DeflateOffer> {
        let bits = prop::option::of(8u8..=15);
        (any::<bool>(), any::<bool>(), bits.clone(), prop::option::of(prop::option::of(8u8..=15))).prop_map(
            |(snct, cnct, smwb, cmwb)| DeflateOffer {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: smwb,
                client_max_window_bits: cmwb,
            },
        )
    }

    fn params_strategy() -> impl Strategy<Value = DeflateParams> {
        let bits = prop::option::of(8u8..=15);
        (any::<bool>(), any::<bool>(), bits.clone(), bits).prop_map(|(snct, cnct, smwb, cmwb)| DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        })
    }

    proptest! {
        /// Written, parsed and accepted: every offer round-trips through its
        /// header form, and its own acceptance passes its check.
        #[test]
        fn offers_round_trip_and_accept(offer in offer_strategy()) {
            let text = offer.to_string();
            let parsed = exts(&text);
            prop_assert_eq!(DeflateOffer::parse(&parsed[0]), Ok(offer));
            let answer = offer.accept();
            let answer_text = answer.to_string();
            prop_assert_eq!(DeflateParams::from_response_to(&parsed, &exts(&answer_text)), Ok(Some(answer)));
        }

        /// Whatever the server asks for, its answer to a valid offer is one
        /// the offering client accepts (§7.1.1, §7.1.2), and it holds the
        /// server to its own limits.
        #[test]
        fn responses_pass_the_clients_check(
            offer in offer_strategy(),
            snct in any::<bool>(),
            cnct in any::<bool>(),
            sbits in 8u8..=15,
            cbits in 8u8..=15,
        ) {
            let config = DeflateServerConfig {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                server_max_window_bits: sbits,
                client_max_window_bits: cbits,
            };
            let params = offer.respond(&config);
            prop_assert_eq!(offer.check_response(&params), Ok(()));
            prop_assert!(params.max_window_bits(Role::Server) <= sbits);
            prop_assert!(params.no_context_takeover(Role::Server) >= snct);
            prop_assert!(params.no_context_takeover(Role::Client) >= cnct);
            if offer.client_max_window_bits.is_some() {
                prop_assert!(params.max_window_bits(Role::Client) <= cbits);
            }
            let header = offer.to_string();
            prop_assert_eq!(
                DeflateOffer::negotiate(&exts(&header), &config),
                Negotiation::Accepted { params, declined: 0 }
            );
        }

        /// The check against an offer equals the rules of §7.1.1 and §7.1.2
        /// written out one by one.
        #[test]
        fn response_check_matches_the_rules(offer in offer_strategy(), params in params_strategy()) {
            let ok = (!offer.server_no_context_takeover || params.server_no_context_takeover)
                && match (offer.server_max_window_bits, params.server_max_window_bits) {
                    (Some(o), Some(p)) => p <= o,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
                && match (offer.client_max_window_bits, params.client_max_window_bits) {
                    (None, Some(_)) => false,
                    (Some(Some(o)), Some(p)) => p <= o,
                    _ => true,
                };
            prop_assert_eq!(offer.check_response(&params).is_ok(), ok);
        }
    }
}
