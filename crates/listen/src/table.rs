//! Who holds the listener's connections: a count in total and per client address, and the
//! guard that gives a connection's place back when it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The client address connections are counted under: an IPv4 address (IPv4-mapped IPv6
/// included), or the /64 of an IPv6 address (one host usually owns a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    V6Prefix(u64),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(u32::from(v4)),
                None => ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds `max_connections`.
    Total,
    /// The client address holds `max_connections_per_ip`.
    PerIp,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// The open connections of one listener.
#[derive(Debug)]
pub struct ConnTable {
    max_total: usize,
    /// 0: no per-client limit.
    max_per_client: usize,
    counts: Mutex<Counts>,
}

impl ConnTable {
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            max_total,
            max_per_client,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Take a place for a connection from `ip`, or say why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        let key = ClientKey::of(ip);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let mine = c.per_client.entry(key).or_insert(0);
        if self.max_per_client > 0 && *mine >= self.max_per_client {
            return Err(Refusal::PerIp);
        }
        *mine += 1;
        c.total += 1;
        Ok(ConnGuard {
            table: self.clone(),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Connections open now from `ip`'s client address.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.per_client.get(&ClientKey::of(ip)).copied().unwrap_or(0)
    }

    fn release(&self, key: ClientKey) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_client.remove(&key);
            }
        }
    }
}

/// A connection's place in its [`ConnTable`], given back on drop.
#[derive(Debug)]
pub struct ConnGuard {
    table: Arc<ConnTable>,
    key: ClientKey,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.table.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_client_and_total_limits_hold_and_places_come_back() {
        let t = ConnTable::new(3, 2);
        let a1 = t.admit(ip("10.0.0.1")).unwrap();
        let _a2 = t.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(t.admit(ip("10.0.0.1")).unwrap_err(), Refusal::PerIp);
        // The same client through an IPv4-mapped IPv6 address is the same client.
        assert_eq!(t.admit(ip("::ffff:10.0.0.1")).unwrap_err(), Refusal::PerIp);
        let _b = t.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(t.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        drop(a1);
        assert_eq!(t.open(), 2);
        assert!(t.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let t = ConnTable::new(100, 1);
        let _a = t.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            t.admit(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            Refusal::PerIp
        );
        assert!(t.admit(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn zero_per_client_means_no_per_client_limit() {
        let t = ConnTable::new(5, 0);
        let held: Vec<_> = (0..5).map(|_| t.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(t.admit(ip("10.0.0.1")).unwrap_err(), Refusal::Total);
        drop(held);
        assert_eq!(t.open(), 0);
        assert_eq!(t.open_from(ip("10.0.0.1")), 0);
    }
}
