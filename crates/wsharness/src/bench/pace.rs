//! Waiting until a message is due, more precisely than tokio's timer.
//!
//! tokio's timer wheel ticks once a millisecond and rounds every sleep up
//! to the next tick, so an open-loop sender woken by it writes each message
//! 0.5 to 2 ms late, and that lateness lands in every measured round trip
//! (they count from the due time). On Linux a timerfd, armed for exactly
//! the wait and polled by the same runtime, wakes within the kernel's timer
//! slack (about 50 µs) without spinning. Elsewhere, or if the timerfd
//! cannot be made, tokio's timer is used.

use std::time::Instant;

/// A per-connection timer.
pub struct Pacer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Pacer {
    /// A timer; falls back to tokio's when no timerfd can be made. Call on
    /// a runtime with I/O enabled.
    pub fn new() -> Pacer {
        #[cfg(target_os = "linux")]
        {
            use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
            // `AsyncFd::new` is deprecated because an arbitrary `AsRawFd`
            // may hand back a different or closed descriptor; an `OwnedFd`
            // owns its descriptor for as long as the `AsyncFd` holds it,
            // which is the condition `AsyncFd::register` (unsafe, and this
            // workspace forbids unsafe code) asks the caller to uphold.
            #[allow(deprecated)]
            let fd = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)
                .ok()
                .and_then(|fd| tokio::io::unix::AsyncFd::new(fd).ok());
            Pacer { fd }
        }
        #[cfg(not(target_os = "linux"))]
        Pacer {}
    }

    /// Returns at `at` (at once if it has passed).
    pub async fn sleep_until(&mut self, at: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
            loop {
                let Some(wait) = at.checked_duration_since(Instant::now()).filter(|w| !w.is_zero()) else {
                    return;
                };
                let spec = Itimerspec {
                    it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
                    it_value: Timespec { tv_sec: wait.as_secs() as _, tv_nsec: wait.subsec_nanos() as _ },
                };
                if timerfd_settime(fd, TimerfdTimerFlags::empty(), &spec).is_err() {
                    break;
                }
                let Ok(mut guard) = fd.readable().await else { break };
                // Reading the expiry count disarms the readiness.
                let mut count = [0u8; 8];
                let _ = guard.try_io(|inner| rustix::io::read(inner.get_ref(), &mut count).map_err(Into::into));
            }
        }
        tokio::time::sleep_until(at.into()).await;
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_at_the_time_not_before() {
        let mut pacer = Pacer::new();
        for wait_us in [0u64, 300, 1500] {
            let at = Instant::now() + Duration::from_micros(wait_us);
            pacer.sleep_until(at).await;
            assert!(Instant::now() >= at, "woke early for {wait_us} µs");
        }
    }
}
