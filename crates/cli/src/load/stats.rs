//! Counting how a run's requests ended, their percentiles, and the report's text.

use super::{Outcome, Percentiles, Report, Stats};

impl Stats {
    pub(super) fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Answered { status, micros } => {
                self.latencies.push(micros);
                match status {
                    200..=399 => self.ok += 1,
                    400..=499 => self.http_4xx += 1,
                    500..=599 => self.http_5xx += 1,
                    _ => self.http_other += 1,
                }
            }
            Outcome::Connect => self.connect_errors += 1,
            Outcome::Io => self.io_errors += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
    }

    pub(super) fn merge(&mut self, other: Stats) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.http_4xx += other.http_4xx;
        self.http_5xx += other.http_5xx;
        self.http_other += other.http_other;
        self.connect_errors += other.connect_errors;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
        self.latencies.extend(other.latencies);
        self.send_lags.extend(other.send_lags);
    }

    pub(super) fn failed(&self) -> u64 {
        self.connect_errors + self.io_errors + self.timeouts
    }

    pub(super) fn ended(&self) -> u64 {
        self.ok + self.http_4xx + self.http_5xx + self.http_other + self.failed()
    }
}

/// The `p`th percentile (0–100) of sorted values, by nearest rank; 0 for no values.
pub(super) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // The epsilon keeps 99.9% of 1000 at rank 999 despite binary floating point.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Percentiles {
    pub(super) fn of(values: &mut [u64]) -> Self {
        values.sort_unstable();
        let ms = |us: u64| us as f64 / 1_000.0;
        Self {
            p50: ms(percentile(values, 50.0)),
            p99: ms(percentile(values, 99.0)),
            p999: ms(percentile(values, 99.9)),
            max: ms(values.last().copied().unwrap_or(0)),
        }
    }

    /// `p50 … p99 … p99.9 … max …`, in milliseconds.
    fn human(&self) -> String {
        format!(
            "p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            self.p50, self.p99, self.p999, self.max
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "p50": self.p50, "p99": self.p99, "p999": self.p999, "max": self.max })
    }
}

impl Report {
    pub(super) fn json(&self) -> serde_json::Value {
        let s = &self.stats;
        serde_json::json!({
            "url": self.url,
            "rate": self.rate,
            "connections": self.connections,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "scheduled": self.scheduled,
            "sent": s.sent,
            "ok": s.ok,
            "http_errors": { "4xx": s.http_4xx, "5xx": s.http_5xx, "other": s.http_other },
            "failed": s.failed(),
            "connect_errors": s.connect_errors,
            "io_errors": s.io_errors,
            "timeouts": s.timeouts,
            "latency_ms": self.latency.json(),
            "send_lag_ms": self.send_lag.json(),
        })
    }

    pub(super) fn human(&self) -> String {
        let s = &self.stats;
        format!(
            "rampart load: {url} at {rate} req/s, {conns} connections, {secs:.1} s\n\
             scheduled {sched}  sent {sent}  ok (2xx/3xx) {ok}\n\
             http errors: 4xx {e4}  5xx {e5}  other {eo}\n\
             failed {failed}: connect {ce}  io {io}  timeout {to}\n\
             latency from scheduled time (ms): {latency}\n\
             send lag behind schedule (ms):    {send_lag}",
            url = self.url,
            rate = self.rate,
            conns = self.connections,
            secs = self.elapsed.as_secs_f64(),
            sched = self.scheduled,
            sent = s.sent,
            ok = s.ok,
            e4 = s.http_4xx,
            e5 = s.http_5xx,
            eo = s.http_other,
            failed = s.failed(),
            ce = s.connect_errors,
            io = s.io_errors,
            to = s.timeouts,
            latency = self.latency.human(),
            send_lag = self.send_lag.human(),
        )
    }
}
