//! The client's opening request and the rules of RFC 6455 §4.1 / §4.2.1.

use super::tokens::{Extension, lists_contain, parse_extensions, parse_token_list};
use super::{
    AcceptKey, Header, WEBSOCKET_VERSION, accept_key, headers_named, is_valid_key, is_valid_request_target,
    single_header,
};
use crate::error::Error;

/// A parsed request head, every string borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'b> {
    /// The method, e.g. `GET`.
    pub method: &'b str,
    /// The request target, e.g. `/chat?room=1`.
    pub target: &'b str,
    /// The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version_minor: u8,
    /// The header lines in order.
    pub headers: Vec<Header<'b>>,
}

/// A valid opening handshake: what a server needs to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake<'b> {
    /// The `Host` header.
    pub host: &'b str,
    /// The request target.
    pub target: &'b str,
    /// The `Sec-WebSocket-Key` header, as sent.
    pub key: &'b str,
    /// The subprotocols offered, in order of preference.
    pub protocols: Vec<&'b str>,
    /// The extensions offered, in order of preference.
    pub extensions: Vec<Extension<'b>>,
}

impl ClientHandshake<'_> {
    /// The `Sec-WebSocket-Accept` value that answers this request.
    pub fn accept_key(&self) -> AcceptKey {
        accept_key(self.key.as_bytes())
    }
}

impl<'b> Request<'b> {
    /// The values of every header line named `name` (case-insensitive).
    pub fn headers_named<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'b [u8]> + 'h {
        headers_named(&self.headers, name)
    }

    /// The value of the first header line named `name`.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers_named(name).next()
    }

    /// Whether the request asks for a WebSocket upgrade at all (its
    /// `Upgrade` header lists `websocket`). A request that does not is plain
    /// HTTP; one that does but breaks a rule fails [`Request::validate`].
    pub fn is_websocket_upgrade(&self) -> bool {
        lists_contain(self.headers_named("upgrade"), "websocket")
    }

    /// Checks the request against §4.1 and §4.2.1, in this order: method,
    /// HTTP version, request target, `Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Version`
    /// (so a wrong version gets its 426 whatever else is wrong),
    /// `Sec-WebSocket-Key`, then the subprotocol and extension offers.
    pub fn validate(&self) -> Result<ClientHandshake<'b>, Error> {
        // §4.1: "The method of the request MUST be GET, and the HTTP version
        // MUST be at least 1.1."
        if self.method != "GET" {
            return Err(Error::MethodNotGet);
        }
        if self.version_minor < 1 {
            return Err(Error::HttpVersionTooOld);
        }
        // §4.1 item 3: "The \"Request-URI\" part of the request MUST match
        // the /resource name/ defined in Section 3 (a relative URI) or be
        // an absolute http/https URI that, when parsed, has a /resource
        // name/, /host/, and /port/ that match the corresponding ws/wss URI."
        if !is_valid_request_target(self.target) {
            return Err(Error::InvalidRequestTarget);
        }
        let host = single_header(&self.headers, "host", Error::DuplicateHost)?.ok_or(Error::MissingHost)?;
        let host = core::str::from_utf8(host).map_err(|_| Error::InvalidHeaderValue)?;
        // §4.2.1 items 3 and 4.
        if !lists_contain(self.headers_named("upgrade"), "websocket") {
            return Err(Error::MissingUpgradeWebsocket);
        }
        if !lists_contain(self.headers_named("connection"), "upgrade") {
            return Err(Error::MissingConnectionUpgrade);
        }
        // §4.2.1 item 6, §4.4.
        let version = single_header(&self.headers, "sec-websocket-version", Error::DuplicateVersion)?
            .ok_or(Error::MissingVersion)?;
        if version != WEBSOCKET_VERSION.as_bytes() {
            return Err(Error::UnsupportedVersion);
        }
        // §4.2.1 item 5.
        let key = single_header(&self.headers, "sec-websocket-key", Error::DuplicateKey)?.ok_or(Error::MissingKey)?;
        if !is_valid_key(key) {
            return Err(Error::InvalidKey);
        }
        let key = core::str::from_utf8(key).map_err(|_| Error::InvalidKey)?;
        let mut protocols = Vec::new();
        for value in self.headers_named("sec-websocket-protocol") {
            protocols.extend(parse_token_list(value).ok_or(Error::InvalidProtocolHeader)?);
        }
        // §4.1 item 10: the subprotocols "MUST all be unique strings".
        let mut seen = std::collections::BTreeSet::new();
        if !protocols.iter().all(|p| seen.insert(*p)) {
            return Err(Error::DuplicateProtocol);
        }
        let mut extensions = Vec::new();
        for value in self.headers_named("sec-websocket-extensions") {
            parse_extensions(value, &mut extensions)?;
        }
        Ok(ClientHandshake { host, target: self.target, key, protocols, extensions })
    }
}
