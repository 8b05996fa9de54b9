//! The fixed-interval schedule of an open-loop run.

use std::time::{Duration, Instant};

/// The fixed-interval schedule: request `i` is due at `start + i / rate`.
#[derive(Debug)]
pub(super) struct Schedule {
    start: Instant,
    rate: f64,
    total: u64,
    next: u64,
}

impl Schedule {
    pub(super) fn new(start: Instant, rate: f64, total: u64) -> Self {
        Self {
            start,
            rate,
            total,
            next: 0,
        }
    }

    /// When request `i` is due.
    pub(super) fn at(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// When the next request not yet handed out is due, if any is left.
    pub(super) fn next_at(&self) -> Option<Instant> {
        (self.next < self.total).then(|| self.at(self.next))
    }

    /// Hand out every request due by `now`: its scheduled times, in order.
    pub(super) fn due(&mut self, now: Instant) -> Vec<Instant> {
        let mut out = Vec::new();
        while self.next < self.total {
            let at = self.at(self.next);
            if at > now {
                break;
            }
            out.push(at);
            self.next += 1;
        }
        out
    }
}
