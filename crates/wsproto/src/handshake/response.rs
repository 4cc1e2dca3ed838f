//! The server's answer and the rules a client checks (RFC 6455 §4.1).

use super::deflate_params::DeflateParams;
use super::tokens::{Extension, lists_contain, parse_extensions, parse_token_list};
use super::{ClientHandshake, Header, accept_key, headers_named, single_header};
use crate::error::Error;

/// A parsed response head, every string borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'b> {
    /// The minor HTTP version.
    pub version_minor: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: &'b str,
    /// The header lines in order.
    pub headers: Vec<Header<'b>>,
}

/// What a valid 101 response selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHandshake<'b> {
    /// The selected subprotocol.
    pub protocol: Option<&'b str>,
    /// The selected extensions, in the order they apply.
    pub extensions: Vec<Extension<'b>>,
}

impl<'b> Response<'b> {
    /// The values of every header line named `name` (case-insensitive).
    pub fn headers_named<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'b [u8]> + 'h {
        headers_named(&self.headers, name)
    }

    /// The value of the first header line named `name`.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers_named(name).next()
    }

    /// Checks a response against the request it answers: RFC 6455 §4.1, and
    /// for permessage-deflate the parameters against the offers (RFC 7692
    /// §7.1.1, §7.1.2; see [`DeflateParams::from_response_to`]).
    pub fn validate_for(&self, request: &ClientHandshake<'_>) -> Result<ServerHandshake<'b>, Error> {
        self.validate_offers(request.key.as_bytes(), &request.protocols, &request.extensions)
    }

    /// As [`Response::validate_for`], given the key the client sent, the
    /// subprotocols it offered and the extensions it offered (with their
    /// parameters).
    pub fn validate_offers(
        &self,
        key: &[u8],
        offered_protocols: &[&str],
        offered_extensions: &[Extension<'_>],
    ) -> Result<ServerHandshake<'b>, Error> {
        let names: Vec<&str> = offered_extensions.iter().map(|e| e.name).collect();
        let selected = self.validate(key, offered_protocols, &names)?;
        DeflateParams::from_response_to(offered_extensions, &selected.extensions)?;
        Ok(selected)
    }

    /// Checks a response against §4.1 ("the client MUST validate the
    /// server's response as follows"), given the key the client sent and
    /// the subprotocols and extension names it offered. Without the offers'
    /// parameters, permessage-deflate parameters are checked on their own
    /// (RFC 7692 §7.1, [`DeflateParams::from_response`]); use
    /// [`Response::validate_offers`] to check them against the offers.
    pub fn validate(
        &self,
        key: &[u8],
        offered_protocols: &[&str],
        offered_extensions: &[&str],
    ) -> Result<ServerHandshake<'b>, Error> {
        // Item 1: "If the status code received from the server is not 101,
        // the client handles the response per HTTP procedures."
        if self.status != 101 {
            return Err(Error::NotSwitchingProtocols);
        }
        if self.version_minor < 1 {
            return Err(Error::HttpVersionTooOld);
        }
        // Item 2: "If the response lacks an |Upgrade| header field or the
        // |Upgrade| header field contains a value that is not an ASCII
        // case-insensitive match for the value \"websocket\", the client
        // MUST _Fail the WebSocket Connection_."
        if !lists_contain(self.headers_named("upgrade"), "websocket") {
            return Err(Error::MissingUpgradeWebsocket);
        }
        let upgrade_values = self
            .headers_named("upgrade")
            .flat_map(|v| v.split(|b| *b == b','))
            .filter(|v| !v.trim_ascii().is_empty())
            .count();
        if upgrade_values != 1 {
            return Err(Error::UpgradeNotWebsocket);
        }
        // Item 3.
        if !lists_contain(self.headers_named("connection"), "upgrade") {
            return Err(Error::MissingConnectionUpgrade);
        }
        // Item 4.
        let accept = single_header(&self.headers, "sec-websocket-accept", Error::DuplicateAccept)?
            .ok_or(Error::MissingAccept)?;
        if accept != accept_key(key).as_str().as_bytes() {
            return Err(Error::WrongAccept);
        }
        // Item 5: "If the response includes a |Sec-WebSocket-Extensions|
        // header field and this header field indicates the use of an
        // extension that was not present in the client's handshake [...]
        // the client MUST _Fail the WebSocket Connection_."
        let mut extensions = Vec::new();
        if let Some(value) = single_header(&self.headers, "sec-websocket-extensions", Error::DuplicateResponseHeader)? {
            parse_extensions(value, &mut extensions)?;
        }
        if extensions.iter().any(|e| !offered_extensions.iter().any(|o| o.eq_ignore_ascii_case(e.name))) {
            return Err(Error::UnofferedExtension);
        }
        // RFC 7692 §7.1: the parameters of an accepted permessage-deflate.
        DeflateParams::from_response(&extensions)?;
        // Item 6: the same for the subprotocol.
        let mut protocol = None;
        if let Some(value) = single_header(&self.headers, "sec-websocket-protocol", Error::DuplicateResponseHeader)? {
            let list = parse_token_list(value).ok_or(Error::InvalidProtocolHeader)?;
            let [selected] = list[..] else {
                return Err(Error::InvalidProtocolHeader);
            };
            if !offered_protocols.contains(&selected) {
                return Err(Error::UnofferedProtocol);
            }
            protocol = Some(selected);
        }
        Ok(ServerHandshake { protocol, extensions })
    }
}
