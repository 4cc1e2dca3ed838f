//! Which pings a side sent are still waiting for the other side's pong,
//! and the round trips of those that were answered. Sans-IO: the time of
//! each ping and pong is an argument.
//!
//! RFC 6455 §5.5.2: "If an endpoint receives a Ping frame and has not yet
//! sent Pong frame(s) in response to previous Ping frame(s), the endpoint
//! MAY elect to send a Pong frame for only the most recently processed Ping
//! frame." So a pong answers the ping whose payload it carries (§5.5.3:
//! "Application data identical to the Ping frame being replied to") and
//! every ping sent before that one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most pings remembered per side with their payload and time. Older ones
/// are still counted, only their round trip can no longer be measured.
pub(crate) const MAX_REMEMBERED: usize = 64;

/// The pings one side sent that the other side has not answered yet.
#[derive(Debug, Default)]
pub(crate) struct PingTracker {
    /// Unanswered pings, oldest first: payload and when it was seen.
    /// At most [`MAX_REMEMBERED`].
    remembered: VecDeque<(Vec<u8>, Instant)>,
    /// Unanswered pings older than every remembered one, whose payload
    /// was dropped to bound memory.
    forgotten: u64,
}

impl PingTracker {
    /// A ping with `payload` was seen at `now`.
    pub(crate) fn ping(&mut self, payload: &[u8], now: Instant) {
        if self.remembered.len() == MAX_REMEMBERED {
            self.remembered.pop_front();
            self.forgotten += 1;
        }
        self.remembered.push_back((payload.to_vec(), now));
    }

    /// A pong with `payload` was seen at `now`: returns the round trip of
    /// the ping it answers, if that ping is remembered. That ping and every
    /// earlier one count as answered (§5.5.2). A pong that matches no
    /// remembered ping may answer a forgotten one, so those are taken as
    /// answered too: the count may miss an unanswered ping, but never counts
    /// one that was answered. With no forgotten ping, such a pong is an
    /// unsolicited heartbeat (§5.5.3) and answers nothing.
    pub(crate) fn pong(&mut self, payload: &[u8], now: Instant) -> Option<Duration> {
        // The most recent ping with this payload: a pong for it answers all
        // that came before. With several unanswered pings of the same
        // payload (empty keep-alive pings, say) a peer that answers each in
        // turn gets its first round trip measured from the latest of them
        // (too short) and its later pongs match nothing; matching the
        // oldest instead would count a ping as unanswered when the peer
        // answered only the latest, as §5.5.2 allows. Counting right wins.
        match self.remembered.iter().rposition(|(p, _)| p == payload) {
            Some(i) => {
                let sent = self.remembered[i].1;
                self.remembered.drain(..=i);
                self.forgotten = 0;
                Some(now.saturating_duration_since(sent))
            }
            None => {
                self.forgotten = 0;
                None
            }
        }
    }

    /// Pings still waiting for an answer.
    pub(crate) fn unanswered(&self) -> u64 {
        self.remembered.len() as u64 + self.forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, us: u64) -> Instant {
        t0 + Duration::from_micros(us)
    }

    #[test]
    fn each_pong_gives_the_round_trip_of_its_ping() {
        let t0 = Instant::now();
        let mut t = PingTracker::default();
        t.ping(b"a", at(t0, 0));
        t.ping(b"b", at(t0, 10));
        assert_eq!(t.pong(b"a", at(t0, 250)), Some(Duration::from_micros(250)));
        assert_eq!(t.unanswered(), 1);
        assert_eq!(t.pong(b"b", at(t0, 260)), Some(Duration::from_micros(250)));
        assert_eq!(t.unanswered(), 0);
    }

    #[test]
    fn a_pong_answers_its_ping_and_every_earlier_one() {
        let t0 = Instant::now();
        let mut t = PingTracker::default();
        for (i, p) in [b"1", b"2", b"3"].iter().enumerate() {
            t.ping(*p, at(t0, i as u64 * 100));
        }
        // Only the most recent ping is answered (§5.5.2).
        assert_eq!(t.pong(b"3", at(t0, 1000)), Some(Duration::from_micros(800)));
        assert_eq!(t.unanswered(), 0);
        // The late pongs for the earlier ones match nothing.
        assert_eq!(t.pong(b"1", at(t0, 1001)), None);
        assert_eq!(t.unanswered(), 0);
    }

    #[test]
    fn an_unsolicited_pong_answers_nothing() {
        let t0 = Instant::now();
        let mut t = PingTracker::default();
        t.ping(b"x", t0);
        assert_eq!(t.pong(b"heartbeat", at(t0, 5)), None);
        assert_eq!(t.unanswered(), 1);
    }

    #[test]
    fn equal_payloads_the_pong_answers_the_most_recent() {
        let t0 = Instant::now();
        let mut t = PingTracker::default();
        t.ping(b"", at(t0, 0));
        t.ping(b"", at(t0, 40));
        assert_eq!(t.pong(b"", at(t0, 100)), Some(Duration::from_micros(60)));
        assert_eq!(t.unanswered(), 0);
    }

    /// A burst larger than what is remembered, answered ping by ping: every
    /// ping counts as answered; the remembered ones keep their round trips.
    #[test]
    fn a_burst_past_the_table_is_all_answered() {
        for burst in [1, MAX_REMEMBERED - 1, MAX_REMEMBERED, MAX_REMEMBERED + 1, 300] {
            let t0 = Instant::now();
            let mut t = PingTracker::default();
            for i in 0..burst {
                t.ping(format!("p{i}").as_bytes(), at(t0, i as u64));
            }
            assert_eq!(t.unanswered(), burst as u64, "burst {burst}");
            let mut rtts = 0;
            for i in 0..burst {
                if let Some(rtt) = t.pong(format!("p{i}").as_bytes(), at(t0, 1000 + i as u64)) {
                    assert_eq!(rtt, Duration::from_micros(1000));
                    rtts += 1;
                }
            }
            assert_eq!(t.unanswered(), 0, "burst {burst}");
            assert_eq!(rtts, burst.min(MAX_REMEMBERED), "burst {burst}");
        }
    }

    #[test]
    fn unanswered_pings_past_the_table_are_still_counted() {
        let t0 = Instant::now();
        let mut t = PingTracker::default();
        for i in 0..300u32 {
            t.ping(&i.to_be_bytes(), t0);
        }
        assert_eq!(t.unanswered(), 300);
        assert!(t.remembered.len() <= MAX_REMEMBERED);
        // Answering the last one answers all.
        assert_eq!(t.pong(&299u32.to_be_bytes(), at(t0, 7)), Some(Duration::from_micros(7)));
        assert_eq!(t.unanswered(), 0);
    }
}
