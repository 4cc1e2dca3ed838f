//! What a direction holds back for `--fault ...:delay=`: the session marks
//! where a delayed frame starts and when it may go
//! ([`Chunk::HoldUntil`]: the time of the read plus the delay), and the
//! relay keeps reading while it waits. Everything after a held frame waits
//! behind it, so order is kept; frames do not wait for each other's delays
//! (a burst of delayed messages arrives delayed once, not once per message
//! before it). No clock: the caller passes the time.

use std::collections::VecDeque;
use std::time::Instant;

use crate::session::Chunk;

/// Bytes a direction may hold; past this it stops reading until the first
/// held frame is due (the sender then waits, as behind a slow link).
pub(crate) const MAX_HOLD: usize = 16 << 20;

/// Chunks held until their time, in order.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    /// Each with the time it may go; times never decrease.
    segments: VecDeque<(Instant, Vec<Chunk>)>,
    bytes: usize,
}

fn len(c: &Chunk) -> usize {
    match c {
        Chunk::Input(r) => r.len(),
        Chunk::Owned(v) | Chunk::Throttled(v, _) => v.len(),
        Chunk::HoldUntil(_) => 0,
    }
}

impl Hold {
    /// Takes what the session queued (`input`: the data its ranges refer
    /// to) and returns what may be written now; the rest is kept (ranges
    /// as copies).
    pub(crate) fn schedule(&mut self, chunks: Vec<Chunk>, input: &[u8]) -> Vec<Chunk> {
        // Nothing held and no delay: everything goes now, as it is (the
        // relay's hot path, without a fault).
        if self.segments.is_empty() && !chunks.iter().any(|c| matches!(c, Chunk::HoldUntil(_))) {
            return chunks;
        }
        let mut now = Vec::new();
        for c in chunks {
            match c {
                Chunk::HoldUntil(t) => {
                    let t = self.segments.back().map_or(t, |(last, _)| t.max(*last));
                    self.segments.push_back((t, Vec::new()));
                }
                other => match self.segments.back_mut() {
                    Some((_, held)) => {
                        let owned = match other {
                            Chunk::Input(r) => Chunk::Owned(input[r].to_vec()),
                            owned => owned,
                        };
                        self.bytes += len(&owned);
                        held.push(owned);
                    }
                    None => now.push(other),
                },
            }
        }
        now
    }

    /// When the first held chunk may go.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.segments.front().map(|(t, _)| *t)
    }

    /// What may go at `now`, in order.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Chunk> {
        let mut out = Vec::new();
        while let Some((t, _)) = self.segments.front()
            && *t <= now
        {
            if let Some((_, chunks)) = self.segments.pop_front() {
                self.bytes -= chunks.iter().map(len).sum::<usize>();
                out.extend(chunks);
            }
        }
        out
    }

    /// Whether the direction should stop reading until the next is due.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes > MAX_HOLD
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn bytes(chunks: &[Chunk], input: &[u8]) -> Vec<u8> {
        chunks
            .iter()
            .flat_map(|c| match c {
                Chunk::Input(r) => input[r.clone()].to_vec(),
                Chunk::Owned(v) | Chunk::Throttled(v, _) => v.clone(),
                Chunk::HoldUntil(_) => Vec::new(),
            })
            .collect()
    }

    /// Two delayed frames read 10 ms apart go 200 ms after each read, not
    /// 200 ms after each other; an undelayed frame behind them waits for
    /// them; nothing is held without a delay.
    #[test]
    fn delays_do_not_stack_and_order_is_kept() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut h = Hold::default();
        let input = b"abcdef";
        let now = h.schedule(vec![Chunk::Input(0..1), Chunk::HoldUntil(ms(200)), Chunk::Input(1..2)], input);
        assert_eq!(bytes(&now, input), b"a");
        let now = h.schedule(vec![Chunk::HoldUntil(ms(210)), Chunk::Owned(b"c".to_vec()), Chunk::Input(3..4)], input);
        assert!(now.is_empty());
        assert_eq!(h.next_due(), Some(ms(200)));
        assert!(h.take_due(ms(199)).is_empty());
        assert_eq!(bytes(&h.take_due(ms(200)), input), b"b");
        assert_eq!(bytes(&h.take_due(ms(215)), input), b"cd");
        assert_eq!((h.next_due(), h.bytes), (None, 0));
        // An earlier time behind a later one waits for it.
        let _ = h.schedule(vec![Chunk::HoldUntil(ms(300)), Chunk::Input(0..1), Chunk::HoldUntil(ms(250))], input);
        assert_eq!(h.next_due(), Some(ms(300)));
        assert_eq!(h.segments.back().map(|s| s.0), Some(ms(300)));
        let mut fresh = Hold::default();
        assert_eq!(fresh.schedule(vec![Chunk::Input(0..6)], input), vec![Chunk::Input(0..6)]);
    }
}
