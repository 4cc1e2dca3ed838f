//! Comma-separated token lists (RFC 9110 §5.6.1) and the extension grammar
//! of RFC 6455 §9.1.

use std::borrow::Cow;

use crate::error::Error;

/// RFC 9110 §5.6.2: `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Splits a list header value into its elements: comma-separated, optional
/// whitespace around each, empty elements skipped (RFC 9110 §5.6.1 "a
/// recipient MUST accept empty list elements"). Each element must be a token.
pub fn parse_token_list(value: &[u8]) -> Option<Vec<&str>> {
    let value = core::str::from_utf8(value).ok()?;
    let mut out = Vec::new();
    for item in value.split(',') {
        let item = trim_ows(item);
        if item.is_empty() {
            continue;
        }
        if !is_token(item) {
            return None;
        }
        out.push(item);
    }
    Some(out)
}

/// Whether any of the list values contains `token`, case-insensitively.
/// Elements that are not tokens are ignored (a `Connection` header may
/// carry other forms that do not concern us).
pub(crate) fn lists_contain<'b>(values: impl Iterator<Item = &'b [u8]>, token: &str) -> bool {
    values
        .filter_map(|v| core::str::from_utf8(v).ok())
        .any(|v| v.split(',').any(|item| trim_ows(item).eq_ignore_ascii_case(token)))
}

/// One extension offer or selection: `permessage-deflate; client_max_window_bits=10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension<'b> {
    /// The extension token.
    pub name: &'b str,
    /// Its parameters in order.
    pub params: Vec<ExtensionParam<'b>>,
}

/// An extension parameter: `name` or `name=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionParam<'b> {
    /// The parameter token.
    pub name: &'b str,
    /// The value, unquoted if it was a quoted-string.
    pub value: Option<Cow<'b, str>>,
}

impl Extension<'_> {
    /// The parameter named `name`, if present (`Some(None)` for a parameter
    /// without a value).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.as_deref())
    }
}

/// A cursor over an extension header value.
struct Cursor<'b> {
    s: &'b str,
    pos: usize,
}

impl<'b> Cursor<'b> {
    fn skip_ows(&mut self) {
        while let Some(b' ' | b'\t') = self.s.as_bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn token(&mut self) -> Result<&'b str, Error> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(Error::InvalidExtensionHeader);
        }
        Ok(&self.s[start..self.pos])
    }

    /// RFC 9110 §5.6.4: `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE`.
    fn quoted_string(&mut self) -> Result<Cow<'b, str>, Error> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let mut unescaped: Option<String> = None;
        loop {
            let Some(b) = self.peek() else { return Err(Error::InvalidExtensionHeader) };
            match b {
                b'"' => {
                    let raw = &self.s[start..self.pos];
                    self.pos += 1;
                    return Ok(match unescaped {
                        Some(s) => Cow::Owned(s),
                        None => Cow::Borrowed(raw),
                    });
                }
                b'\\' => {
                    let buf = unescaped.get_or_insert_with(|| self.s[start..self.pos].to_owned());
                    self.pos += 1;
                    let Some(c) = self.s[self.pos..].chars().next() else {
                        return Err(Error::InvalidExtensionHeader);
                    };
                    buf.push(c);
                    self.pos += c.len_utf8();
                }
                _ => {
                    let Some(c) = self.s[self.pos..].chars().next() else {
                        return Err(Error::InvalidExtensionHeader);
                    };
                    if let Some(buf) = unescaped.as_mut() {
                        buf.push(c);
                    }
                    self.pos += c.len_utf8();
                }
            }
        }
    }
}

/// Parses one `Sec-WebSocket-Extensions` value into `out`.
///
/// §9.1: `extension-list = 1#extension`, `extension = extension-token *( ";"
/// extension-param )`, `extension-param = token [ "=" (token |
/// quoted-string) ]`, and "when using the quoted-string syntax variant, the
/// value after quoted-string unescaping MUST conform to the 'token' ABNF".
pub fn parse_extensions<'b>(value: &'b [u8], out: &mut Vec<Extension<'b>>) -> Result<(), Error> {
    let s = core::str::from_utf8(value).map_err(|_| Error::InvalidExtensionHeader)?;
    let mut c = Cursor { s, pos: 0 };
    loop {
        c.skip_ows();
        match c.peek() {
            None => return Ok(()),
            Some(b',') => {
                c.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = c.token()?;
        let mut params = Vec::new();
        loop {
            c.skip_ows();
            match c.peek() {
                Some(b';') => {
                    c.pos += 1;
                    c.skip_ows();
                    let pname = c.token()?;
                    c.skip_ows();
                    let mut pvalue = None;
                    if c.peek() == Some(b'=') {
                        c.pos += 1;
                        c.skip_ows();
                        let v = if c.peek() == Some(b'"') { c.quoted_string()? } else { Cow::Borrowed(c.token()?) };
                        if !is_token(&v) {
                            return Err(Error::InvalidExtensionHeader);
                        }
                        pvalue = Some(v);
                    }
                    params.push(ExtensionParam { name: pname, value: pvalue });
                }
                Some(b',') | None => break,
                Some(_) => return Err(Error::InvalidExtensionHeader),
            }
        }
        out.push(Extension { name, params });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(value: &str) -> Result<Vec<Extension<'_>>, Error> {
        let mut out = Vec::new();
        parse_extensions(value.as_bytes(), &mut out).map(|_| out)
    }

    #[test]
    fn extension_offers() {
        let offers = ext("permessage-deflate; client_max_window_bits; server_no_context_takeover, permessage-deflate; server_max_window_bits=\"10\" , x-webkit-deflate-frame").expect("valid");
        assert_eq!(offers.len(), 3);
        assert_eq!(offers[0].name, "permessage-deflate");
        assert_eq!(offers[0].param("client_max_window_bits"), Some(None));
        assert_eq!(offers[0].param("server_no_context_takeover"), Some(None));
        assert_eq!(offers[1].param("server_max_window_bits"), Some(Some("10")));
        assert_eq!(offers[2].name, "x-webkit-deflate-frame");
        assert!(offers[2].params.is_empty());
        assert_eq!(ext("a; b=\"\\1\\5\"").expect("escapes")[0].param("b"), Some(Some("15")));
        assert_eq!(ext("").expect("empty"), vec![]);
    }

    #[test]
    fn extension_errors() {
        for bad in ["a;", "a; =1", "a; b=", "a; b=\"unterminated", "a; b=\"not a token\"", "a b", "@", "a; b=\"\""] {
            assert_eq!(ext(bad), Err(Error::InvalidExtensionHeader), "{bad:?}");
        }
    }

    #[test]
    fn token_lists() {
        assert_eq!(parse_token_list(b"chat, superchat,,  v2.json"), Some(vec!["chat", "superchat", "v2.json"]));
        assert_eq!(parse_token_list(b"a b"), None);
        assert!(lists_contain([&b"keep-alive, Upgrade"[..]].into_iter(), "upgrade"));
        assert!(lists_contain([&b"keep-alive"[..], b"UPGRADE"].into_iter(), "upgrade"));
        assert!(!lists_contain([&b"upgrades"[..]].into_iter(), "upgrade"));
    }
}
