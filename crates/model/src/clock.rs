//! The one door to the wall clock.
//!
//! Everything in rampart that needs the time asks a [`Clock`]: production code holds a
//! [`SystemClock`], tests may inject their own. `SystemTime::now` is banned everywhere else by
//! `disallowed-methods` in `.clippy.toml`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Milliseconds since the Unix epoch: 0 for a clock set before 1970, `u64::MAX` past
    /// the year 584 million.
    fn now_ms(&self) -> u64;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place that reads the system clock.
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// [`SystemClock`]'s time, for code with no clock of its own to hold.
pub fn unix_ms() -> u64 {
    SystemClock.now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2024() {
        assert!(unix_ms() > 1_704_067_200_000);
    }
}
