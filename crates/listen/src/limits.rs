//! The settings of one listener, with defaults an Internet-facing edge can use.

use std::time::Duration;

/// How a listener treats its connections. Every rampart listener (the gateway's proxy, TLS and
/// admin listeners, the control plane's API) is served with one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A connection must deliver a complete request head within this time: from its accept
    /// (a TLS handshake included), and on HTTP/1.1 from the end of the previous response
    /// (hyper's `header_read_timeout`, which also bounds the keep-alive gap between requests).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved either way for this long is shut down gracefully
    /// (HTTP/2 `GOAWAY`; in-flight requests may finish), and closed after another such period.
    pub idle_timeout: Duration,
    /// Open connections on the listener; one more is closed at once.
    pub max_connections: usize,
    /// Open connections per client address (IPv4 address, or IPv6 /64); 0 means no limit
    /// (for a listener behind a load balancer, whose connections all come from it).
    pub max_connections_per_ip: usize,
    /// HTTP/1: the largest request head (request line and headers), in bytes. At least 8 KiB.
    pub max_header_bytes: usize,
    /// HTTP/1: the most request headers.
    pub max_headers: usize,
    /// HTTP/2: the largest decoded header list (`SETTINGS_MAX_HEADER_LIST_SIZE`), in bytes.
    pub h2_max_header_list_bytes: u32,
    /// HTTP/2: streams open at once per connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: a PING is sent after this long without a frame from the client...
    pub h2_keepalive_interval: Duration,
    /// ...and the connection is closed if its answer takes longer than this.
    pub h2_keepalive_timeout: Duration,
    /// HTTP/2: streams the client opened and reset before the server accepted them, per
    /// connection, before it is closed with `ENHANCE_YOUR_CALM` (rapid reset, CVE-2023-44487).
    pub h2_max_pending_accept_reset_streams: usize,
    /// HTTP/2: streams the server reset because of the client's protocol errors, per
    /// connection, before it is closed (CVE-2024-27316 and kin).
    pub h2_max_local_error_reset_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            h2_max_header_list_bytes: 64 * 1024,
            h2_max_concurrent_streams: 100,
            h2_keepalive_interval: Duration::from_secs(30),
            h2_keepalive_timeout: Duration::from_secs(10),
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 256,
        }
    }
}

/// A setting out of its range; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("listener setting `{setting}`: {problem}")]
pub struct LimitsError {
    pub setting: &'static str,
    pub problem: String,
}

/// hyper refuses a smaller HTTP/1 read buffer (it panics).
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

impl Limits {
    /// Check every setting is usable; the first that is not is named.
    pub fn check(&self) -> Result<(), LimitsError> {
        let err = |setting: &'static str, problem: &str| {
            Err(LimitsError {
                setting,
                problem: problem.to_owned(),
            })
        };
        if self.header_read_timeout.is_zero() {
            return err("header_read_timeout", "must be more than 0");
        }
        if self.idle_timeout.is_zero() {
            return err("idle_timeout", "must be more than 0");
        }
        if self.max_connections == 0 {
            return err("max_connections", "must be at least 1");
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return err(
                "max_header_bytes",
                &format!("must be at least {MIN_HEADER_BYTES}"),
            );
        }
        if self.max_headers == 0 {
            return err("max_headers", "must be at least 1");
        }
        if self.h2_max_header_list_bytes == 0 {
            return err("h2_max_header_list_bytes", "must be at least 1");
        }
        if self.h2_max_concurrent_streams == 0 {
            return err("h2_max_concurrent_streams", "must be at least 1");
        }
        if self.h2_keepalive_interval.is_zero() || self.h2_keepalive_timeout.is_zero() {
            return err(
                "h2_keepalive_interval/h2_keepalive_timeout",
                "must be more than 0",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_own_check() {
        assert_eq!(Limits::default().check(), Ok(()));
    }

    #[test]
    fn out_of_range_settings_are_named() {
        type Spoil = fn(&mut Limits);
        let cases: [(&str, Spoil); 5] = [
            ("header_read_timeout", |l| {
                l.header_read_timeout = Duration::ZERO
            }),
            ("idle_timeout", |l| l.idle_timeout = Duration::ZERO),
            ("max_connections", |l| l.max_connections = 0),
            ("max_header_bytes", |l| l.max_header_bytes = 100),
            ("h2_max_concurrent_streams", |l| {
                l.h2_max_concurrent_streams = 0
            }),
        ];
        for (name, spoil) in cases {
            let mut l = Limits::default();
            spoil(&mut l);
            assert_eq!(l.check().unwrap_err().setting, name);
        }
    }
}
