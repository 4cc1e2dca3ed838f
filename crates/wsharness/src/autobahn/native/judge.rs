//! The verdict on one case: the observed events matched against the
//! expected outcomes (`behavior`), the closing flags against the expected
//! close (`behaviorClose`), as `Case.onConnectionLost` and the case classes'
//! overrides decide them.

use std::collections::BTreeMap;

use super::cases::{Case, Judge, Observed};

/// The closing flags of a connection (Autobahn's protocol attributes) and
/// the verdict drawn from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    /// The fuzzer is the server (`factory.isServer`): the peer under test
    /// is a client.
    pub is_server: bool,
    /// The opening handshake completed.
    pub connection_was_open: bool,
    /// The fuzzer sent the first close frame.
    pub closed_by_me: bool,
    /// The fuzzer failed the connection (a violation, or a timer).
    pub failed_by_me: bool,
    /// The fuzzer closed the TCP connection.
    pub dropped_by_me: bool,
    /// A full closing handshake, then the server closed TCP.
    pub was_clean: bool,
    /// Why not clean.
    pub was_not_clean_reason: Option<String>,
    /// The server did not close TCP in time after the closing handshake.
    pub was_server_connection_drop_timeout: bool,
    /// The opening handshake timed out.
    pub was_open_handshake_timeout: bool,
    /// The server did not answer the fuzzer's close in time.
    pub was_close_handshake_timeout: bool,
    /// The code the fuzzer sent.
    pub local_close_code: Option<u16>,
    /// The reason the fuzzer sent.
    pub local_close_reason: Option<Vec<u8>>,
    /// The code the server sent.
    pub remote_close_code: Option<u16>,
    /// The reason the server sent.
    pub remote_close_reason: Option<String>,
    /// The verdict on the events.
    pub behavior: &'static str,
    /// The verdict on the close.
    pub behavior_close: &'static str,
    /// Why the behavior verdict.
    pub result: String,
    /// Why the close verdict.
    pub result_close: String,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            is_server: false,
            connection_was_open: false,
            closed_by_me: false,
            failed_by_me: false,
            dropped_by_me: false,
            was_clean: false,
            was_not_clean_reason: None,
            was_server_connection_drop_timeout: false,
            was_open_handshake_timeout: false,
            was_close_handshake_timeout: false,
            local_close_code: None,
            local_close_reason: None,
            remote_close_code: None,
            remote_close_reason: None,
            behavior: FAILED,
            behavior_close: FAILED,
            result: "Actual events differ from any expected.".into(),
            result_close: "TCP connection was dropped without close handshake".into(),
        }
    }
}

/// Verdicts.
pub const OK: &str = "OK";
/// A SHOULD not followed.
pub const NON_STRICT: &str = "NON-STRICT";
/// A MUST broken.
pub const FAILED: &str = "FAILED";
/// The server closed with a code it should not.
pub const WRONG_CODE: &str = "WRONG CODE";
/// The closing handshake was required but did not happen.
pub const UNCLEAN: &str = "UNCLEAN";
/// The fuzzer had to close TCP.
pub const FAILED_BY_CLIENT: &str = "FAILED BY CLIENT";
/// Outcome left open by the spec.
pub const INFORMATIONAL: &str = "INFORMATIONAL";
/// The server does not have the optional feature the case tests
/// (permessage-deflate, for 12.* and 13.*).
pub const UNIMPLEMENTED: &str = "UNIMPLEMENTED";

/// The frames 10.1.1 must have sent: 65536 / 1300 continuations and one text frame.
const AUTO_FRAGMENT_FRAMES: (u64, u64) = (65536 / 1300, 1);

/// Judges a case from what was observed and the closing flags.
pub fn judge(case: &Case, received: &[Observed], tx_frames: &BTreeMap<u8, u64>, f: &mut Flags) {
    // `for e in self.expected`: Python 2 iterates a two-key dict with
    // "NON-STRICT" before "OK"; the two outcomes never equal each other.
    for (verdict, outcome) in &case.expected {
        if outcome.as_slice() == received {
            f.behavior = verdict;
            f.result = "Actual events match at least one expected.".into();
            break;
        }
    }
    let ec = &case.expected_close;
    if f.connection_was_open {
        if ec.closed_by_me != f.closed_by_me {
            f.behavior_close = FAILED;
            f.result_close = "The connection was failed by the wrong endpoint".into();
        } else if ec.require_clean && !f.was_clean {
            f.behavior_close = UNCLEAN;
            f.result_close = "The spec requires the connection to be failed cleanly here".into();
        } else if f.remote_close_code.is_some_and(|c| !ec.close_code.contains(&c)) {
            f.behavior_close = WRONG_CODE;
            let codes: Vec<String> = ec.close_code.iter().map(u16::to_string).collect();
            f.result_close = format!("The close code should have been {} or empty", codes.join(","));
        } else if !f.is_server && f.dropped_by_me {
            // `not self.p.factory.isServer and self.p.droppedByMe`: a
            // server drops TCP after the closing handshake by design
            // (RFC 6455 §7.1.1), so only the client side judges it.
            f.behavior_close = FAILED_BY_CLIENT;
            f.result_close = "It is preferred that the server close the TCP connection".into();
        } else {
            f.behavior_close = OK;
            f.result_close = "Connection was properly closed".into();
        }
        if ec.closed_by_wrong_endpoint_is_fatal && ec.closed_by_me != f.closed_by_me {
            f.behavior = FAILED;
        }
    } else {
        f.behavior_close = FAILED;
        f.result_close = "The WebSocket opening handshake was never completed!".into();
    }
    match case.judge {
        Judge::Default => {}
        Judge::WrongCodeFails => {
            if f.behavior_close == WRONG_CODE {
                f.behavior = FAILED;
                f.result = f.result_close.clone();
            }
        }
        Judge::Informational => {
            f.behavior = INFORMATIONAL;
            f.behavior_close = INFORMATIONAL;
            f.result = "Actual events are undefined by the spec.".into();
        }
        Judge::InformationalOutcome => {
            if f.behavior == OK {
                f.result = "Text message was processed before close.".into();
            } else if f.behavior == NON_STRICT {
                f.result = "Close was processed before text message could be returned.".into();
            }
            f.behavior = INFORMATIONAL;
            f.behavior_close = INFORMATIONAL;
        }
        Judge::AutoFragment => {
            if f.connection_was_open {
                let got = (tx_frames.get(&0).copied().unwrap_or(0), tx_frames.get(&1).copied().unwrap_or(0));
                if got != AUTO_FRAGMENT_FRAMES {
                    f.behavior = FAILED;
                    f.result = format!(
                        "Frames transmitted {{0: {}, 1: {}}} does not match what we expected {{0: {}, 1: {}}}.",
                        got.0, got.1, AUTO_FRAGMENT_FRAMES.0, AUTO_FRAGMENT_FRAMES.1
                    );
                }
            } else {
                f.behavior = FAILED;
                f.result = "WebSocket connection was never open".into();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cases::all_cases;
    use super::*;

    fn case(id: &str) -> Case {
        all_cases().into_iter().find(|c| c.id == id).expect("case exists")
    }

    fn open() -> Flags {
        Flags { connection_was_open: true, ..Flags::default() }
    }

    #[test]
    fn a_clean_echo_is_ok() {
        let c = case("1.1.2");
        let mut f = Flags { closed_by_me: true, was_clean: true, remote_close_code: Some(1000), ..open() };
        judge(&c, &[Observed::Message(vec![b'*'; 125], false)], &BTreeMap::new(), &mut f);
        assert_eq!((f.behavior, f.behavior_close), (OK, OK));
    }

    #[test]
    fn close_verdicts_in_autobahns_order() {
        let c = case("3.1");
        let table: [(Flags, &str); 5] = [
            (Flags { closed_by_me: true, ..open() }, FAILED),
            (Flags { remote_close_code: Some(1000), ..open() }, WRONG_CODE),
            (Flags { remote_close_code: Some(1002), dropped_by_me: true, ..open() }, FAILED_BY_CLIENT),
            (Flags { remote_close_code: Some(1002), ..open() }, OK),
            (Flags::default(), FAILED),
        ];
        for (mut f, want) in table {
            judge(&c, &[], &BTreeMap::new(), &mut f);
            assert_eq!(f.behavior_close, want, "{f:?}");
        }
        let c = case("1.1.1");
        let mut f = Flags { closed_by_me: true, ..open() };
        judge(&c, &[Observed::Message(vec![], false)], &BTreeMap::new(), &mut f);
        assert_eq!((f.behavior, f.behavior_close), (OK, UNCLEAN));
    }

    #[test]
    fn a_server_dropping_tcp_is_not_failed_by_client() {
        // The same flags: the client side blames itself, the server side not.
        let c = case("3.1");
        for (is_server, want) in [(false, FAILED_BY_CLIENT), (true, OK)] {
            let mut f = Flags { is_server, remote_close_code: Some(1002), dropped_by_me: true, ..open() };
            judge(&c, &[], &BTreeMap::new(), &mut f);
            assert_eq!(f.behavior_close, want, "is_server {is_server}");
        }
    }

    #[test]
    fn non_strict_and_wrong_endpoint() {
        let c = case("3.2");
        let mut f = Flags { remote_close_code: Some(1002), ..open() };
        judge(&c, &[], &BTreeMap::new(), &mut f);
        assert_eq!(f.behavior, NON_STRICT);
        // An invalid UTF-8 message echoed: the server never failed it.
        let c = case("6.3.1");
        let mut f = Flags { closed_by_me: true, was_clean: true, ..open() };
        judge(&c, &[], &BTreeMap::new(), &mut f);
        assert_eq!((f.behavior, f.behavior_close), (FAILED, FAILED));
    }

    #[test]
    fn overrides() {
        let mut f = Flags { closed_by_me: true, was_clean: true, remote_close_code: Some(1002), ..open() };
        judge(&case("7.7.1"), &[], &BTreeMap::new(), &mut f);
        assert_eq!((f.behavior, f.behavior_close), (FAILED, WRONG_CODE));
        let mut f = open();
        judge(&case("7.13.1"), &[], &BTreeMap::new(), &mut f);
        assert_eq!((f.behavior, f.behavior_close), (INFORMATIONAL, INFORMATIONAL));
        let mut f = Flags { closed_by_me: true, was_clean: true, ..open() };
        let payload = vec![b'*'; 65536];
        judge(&case("10.1.1"), &[Observed::Message(payload, false)], &BTreeMap::from([(0, 50), (1, 1)]), &mut f);
        assert_eq!(f.behavior, OK);
    }
}
