//! How a run's requests ended, and the report made of them.

use std::time::Duration;

/// How one scheduled request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// An answer, its status and its latency from the scheduled time, in microseconds.
    Answered { status: u16, micros: u64 },
    /// The connection could not be opened.
    Connect,
    /// The connection failed before the full answer (reset, closed, malformed).
    Io,
    /// No full answer by the deadline (including requests that waited it out in the queue).
    Timeout,
}

/// Counts and latencies; each worker keeps one, merged at the end.
#[derive(Debug, Default, Clone)]
pub(super) struct Stats {
    /// Requests written to a connection.
    pub(super) sent: u64,
    pub(super) ok: u64,
    pub(super) http_4xx: u64,
    pub(super) http_5xx: u64,
    /// 1xx or nonsense statuses.
    pub(super) http_other: u64,
    pub(super) connect_errors: u64,
    pub(super) io_errors: u64,
    pub(super) timeouts: u64,
    /// Latency of every answered request, from its scheduled time, in microseconds.
    pub(super) latencies: Vec<u64>,
    /// How late each request was written, from its scheduled time, in microseconds.
    pub(super) send_lags: Vec<u64>,
}

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

/// p50, p99, p99.9 and max of `values`, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Percentiles {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) p999: f64,
    pub(super) max: f64,
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

    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::json!({ "p50": self.p50, "p99": self.p99, "p999": self.p999, "max": self.max })
    }
}

/// The result of a run.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) url: String,
    pub(super) rate: f64,
    pub(super) connections: usize,
    pub(super) scheduled: u64,
    pub(super) elapsed: Duration,
    pub(super) stats: Stats,
    pub(super) latency: Percentiles,
    pub(super) send_lag: Percentiles,
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
