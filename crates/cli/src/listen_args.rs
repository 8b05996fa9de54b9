//! The command-line flags of connection hygiene, shared by every command that listens
//! (`rampart gateway` for its proxy, TLS and admin listeners; `rampart control`; `rampart up`).
//! Each becomes a field of [`rampart_listen::Limits`]; the defaults are the library's.

use std::time::Duration;

use clap::Args;
use rampart_listen::Limits;

/// Connection limits of every listener of the process (docs/CONFIG.md, "Listeners").
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Listener limits (every listener of this process)")]
pub(crate) struct ListenArgs {
    /// A connection must send a complete request head within this many seconds of its accept
    /// (TLS handshake included) and, on HTTP/1.1, of its previous response.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    header_timeout_secs: u64,
    /// A connection with no byte moving either way for this many seconds is shut down
    /// gracefully, and closed after as long again.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Open connections per listener; one more is closed at once.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_conns: usize,
    /// Open connections per client address (IPv4, or IPv6 /64) per listener; 0 for no limit
    /// (behind a load balancer, whose connections all come from its addresses).
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_conns_per_ip: usize,
    /// HTTP/1: the largest request head in bytes (at least 8192); beyond it, 431.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    max_header_bytes: usize,
    /// HTTP/1: the most request headers; beyond it, 431.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_headers: usize,
    /// HTTP/2: the largest decoded header list in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    h2_max_header_list_bytes: u32,
    /// HTTP/2: streams open at once per connection.
    #[arg(long, value_name = "N", default_value_t = 100)]
    h2_max_streams: u32,
    /// HTTP/2: send a PING after this many seconds without a frame from the client.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    h2_keepalive_secs: u64,
    /// HTTP/2: close the connection if a PING is not answered within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    h2_keepalive_timeout_secs: u64,
    /// HTTP/2: streams a client may open and reset before they are accepted, per
    /// connection, before it is closed (rapid reset, CVE-2023-44487).
    #[arg(long, value_name = "N", default_value_t = 20)]
    h2_max_pending_resets: usize,
    /// HTTP/2: streams reset for a client's protocol errors, per connection, before it is
    /// closed.
    #[arg(long, value_name = "N", default_value_t = 256)]
    h2_max_error_resets: usize,
}

impl ListenArgs {
    /// The limits, checked: an out-of-range flag is named.
    pub(crate) fn limits(&self) -> anyhow::Result<Limits> {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_conns,
            max_connections_per_ip: self.max_conns_per_ip,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            h2_max_header_list_bytes: self.h2_max_header_list_bytes,
            h2_max_concurrent_streams: self.h2_max_streams,
            h2_keepalive_interval: Duration::from_secs(self.h2_keepalive_secs),
            h2_keepalive_timeout: Duration::from_secs(self.h2_keepalive_timeout_secs),
            h2_max_pending_accept_reset_streams: self.h2_max_pending_resets,
            h2_max_local_error_reset_streams: self.h2_max_error_resets,
        };
        limits.check()?;
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        listen: ListenArgs,
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.listen.limits().unwrap(), Limits::default());
    }

    #[test]
    fn an_out_of_range_flag_is_named() {
        let cli = Cli::parse_from(["x", "--max-header-bytes", "100"]);
        let err = cli.listen.limits().unwrap_err().to_string();
        assert!(err.contains("max_header_bytes"), "{err}");
        let cli = Cli::parse_from(["x", "--header-timeout-secs", "0"]);
        assert!(cli.listen.limits().is_err());
    }
}
