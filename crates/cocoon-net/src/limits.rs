//! What one peer may make a daemon hold: connection caps checked at TCP accept (before the
//! proof of work, before TLS), per-connection output bounds and deadlines, and the counters
//! that show them working.
//!
//! The caps are [`ConnectionCaps`]: a listener asks [`ConnectionCaps::admit`] for every socket
//! it accepts and keeps the returned [`ConnectionPermit`] for as long as the connection lives;
//! a refused socket is closed at once, so a flood of raw sockets costs one file descriptor per
//! admitted connection and no more. The per-connection bounds are [`ConnectionLimits`], which an
//! [`crate::Acceptor`] hands to every connection it establishes; what they refuse or cut is
//! counted in the acceptor's [`LimitCounters`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default cap on output queued for one peer. Far above what a healthy peer lets pile up (a few
/// packets, at most 16 MiB each), and large enough that any single legal packet fits.
pub const DEFAULT_MAX_QUEUED_OUTPUT: usize = 64 << 20;
/// Default time queued output may wait without the peer taking a byte of it before the
/// connection is cut. A reading peer drains its socket within milliseconds; 30 s of a closed
/// TCP window is a dead or hostile one.
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Output cap for a connection the daemon has not yet authenticated, whatever the configured
/// cap. Before authentication a peer is only answered a few small queries (a handshake, a list
/// of models) and its pings, so 1 MiB is plenty, and a never-reading flood of pings on many
/// unauthenticated connections costs at most this much each.
pub const UNAUTHENTICATED_MAX_QUEUED_OUTPUT: usize = 1 << 20;
/// IPv6 sources are grouped by this prefix length when counting connections per source: one
/// host is routinely given a whole /64, so counting single addresses would cap nothing.
pub const IPV6_SOURCE_PREFIX_BITS: u32 = 64;

/// Bounds on one established connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Output queued for the peer may not exceed this: a send that would take the queue past
    /// it is refused with [`crate::NetError::Backpressure`] (its caller alone fails; the
    /// connection stays up), and the connection stops reading while pongs keep it above the
    /// cap, so a peer that sends and never reads is pushed back through TCP.
    pub max_queued_output: usize,
    /// A connection with output queued that the peer takes none of for this long is closed.
    pub write_stall_timeout: Duration,
    /// Time from TCP accept within which the daemon must call
    /// [`crate::ConnectionHandle::mark_authenticated`]; the connection is closed otherwise,
    /// whatever the peer sends meanwhile (pings included). `None`: no deadline, and the
    /// connection counts as authenticated from the start (dialled connections, whose peer we
    /// chose).
    pub auth_timeout: Option<Duration>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_queued_output: DEFAULT_MAX_QUEUED_OUTPUT,
            write_stall_timeout: DEFAULT_WRITE_STALL_TIMEOUT,
            auth_timeout: None,
        }
    }
}

/// What the [`ConnectionLimits`] of one acceptor (or connector) refused or cut, shared by all its
/// connections. Counting is off the hot path: a send that fits touches none of these.
#[derive(Debug, Default)]
pub struct LimitCounters {
    /// Sends refused because the peer's queue was full (each failed its caller alone).
    pub refused_sends: AtomicU64,
    /// Connections closed because the peer took none of its queued output in time.
    pub stalled_peers_cut: AtomicU64,
    /// Connections closed because the daemon did not authenticate them in time.
    pub auth_timeouts: AtomicU64,
    /// Handshakes failed because our peer policy refused the peer's certificate (an image not
    /// allowed, a quote that does not verify); counted by the acceptor.
    pub refused_by_policy: AtomicU64,
    /// The most output ever queued for one connection, in bytes (a high-water mark).
    pub max_queued_output: AtomicU64,
}

impl LimitCounters {
    /// The counters as JSON-friendly numbers, for `/stats`.
    pub fn snapshot(&self) -> LimitSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LimitSnapshot {
            refused_sends: load(&self.refused_sends),
            stalled_peers_cut: load(&self.stalled_peers_cut),
            auth_timeouts: load(&self.auth_timeouts),
            refused_by_policy: load(&self.refused_by_policy),
            max_queued_output_bytes: load(&self.max_queued_output),
        }
    }
}

/// A copy of [`LimitCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LimitSnapshot {
    /// See [`LimitCounters::refused_sends`].
    pub refused_sends: u64,
    /// See [`LimitCounters::stalled_peers_cut`].
    pub stalled_peers_cut: u64,
    /// See [`LimitCounters::auth_timeouts`].
    pub auth_timeouts: u64,
    /// See [`LimitCounters::refused_by_policy`].
    pub refused_by_policy: u64,
    /// See [`LimitCounters::max_queued_output`].
    pub max_queued_output_bytes: u64,
}

/// Why [`ConnectionCaps::admit`] refused a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapRefusal {
    /// The listener holds its maximum number of connections.
    #[error("{0} connections open, the maximum")]
    Total(usize),
    /// This source holds its maximum number of connections.
    #[error("{0} connections open from this source, the maximum")]
    PerSource(usize),
}

/// The source a connection is counted against: the IPv4 address, or the IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SourceKey(IpAddr);

impl SourceKey {
    fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(_) => SourceKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey(IpAddr::V4(v4)),
                None => {
                    let mask = u128::MAX << (128 - IPV6_SOURCE_PREFIX_BITS);
                    SourceKey(IpAddr::V6((u128::from(v6) & mask).into()))
                }
            },
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Only sources with a connection open: at most `total` entries.
    per_source: HashMap<SourceKey, usize>,
}

/// Caps on the connections one listener holds, in all and per source address; see the module
/// documentation.
#[derive(Debug)]
pub struct ConnectionCaps {
    max_total: usize,
    max_per_source: usize,
    open: Mutex<Open>,
    refused_total: AtomicU64,
    refused_per_source: AtomicU64,
}

/// One admitted connection's place under its [`ConnectionCaps`]; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionPermit {
    caps: Arc<ConnectionCaps>,
    source: SourceKey,
}

/// Open and refused counts of a [`ConnectionCaps`], for `/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CapsSnapshot {
    /// Connections open now (handshaking or established).
    pub open: usize,
    /// Sockets refused because the listener was full.
    pub refused_total_cap: u64,
    /// Sockets refused because their source was at its cap.
    pub refused_per_source_cap: u64,
}

impl ConnectionCaps {
    /// At most `max_total` connections, and `max_per_source` from one source.
    pub fn new(max_total: usize, max_per_source: usize) -> Arc<ConnectionCaps> {
        Arc::new(ConnectionCaps {
            max_total,
            max_per_source,
            open: Mutex::new(Open::default()),
            refused_total: AtomicU64::new(0),
            refused_per_source: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // Every update below is complete before anything can panic.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for a connection from `source`, or says why there is none (and counts the
    /// refusal).
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Result<ConnectionPermit, CapRefusal> {
        let source = SourceKey::of(source);
        let mut open = self.lock();
        if open.total >= self.max_total {
            self.refused_total.fetch_add(1, Ordering::Relaxed);
            return Err(CapRefusal::Total(open.total));
        }
        let from_source = open.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.max_per_source {
            self.refused_per_source.fetch_add(1, Ordering::Relaxed);
            return Err(CapRefusal::PerSource(from_source));
        }
        open.total += 1;
        *open.per_source.entry(source).or_insert(0) += 1;
        Ok(ConnectionPermit {
            caps: self.clone(),
            source,
        })
    }

    /// Sockets refused so far, for either reason.
    pub fn refused(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed) + self.refused_per_source.load(Ordering::Relaxed)
    }

    /// Open and refused counts.
    pub fn snapshot(&self) -> CapsSnapshot {
        CapsSnapshot {
            open: self.lock().total,
            refused_total_cap: self.refused_total.load(Ordering::Relaxed),
            refused_per_source_cap: self.refused_per_source.load(Ordering::Relaxed),
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.per_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn caps_count_per_source_and_in_all_and_free_places_on_drop() {
        let caps = ConnectionCaps::new(3, 2);
        let a1 = caps.admit(ip("10.0.0.1")).unwrap();
        let _a2 = caps.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            caps.admit(ip("10.0.0.1")).unwrap_err(),
            CapRefusal::PerSource(2)
        );
        let _b1 = caps.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(
            caps.admit(ip("10.0.0.3")).unwrap_err(),
            CapRefusal::Total(3)
        );
        drop(a1);
        let _a3 = caps.admit(ip("10.0.0.1")).unwrap();
        let snapshot = caps.snapshot();
        assert_eq!(snapshot.open, 3);
        assert_eq!(snapshot.refused_per_source_cap, 1);
        assert_eq!(snapshot.refused_total_cap, 1);
        assert_eq!(caps.refused(), 2);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source_and_mapped_ipv4_is_its_address() {
        let caps = ConnectionCaps::new(100, 1);
        let _first = caps.admit(ip("2001:db8::1")).unwrap();
        assert!(caps.admit(ip("2001:db8::ffff:1234")).is_err());
        let _other_net = caps.admit(ip("2001:db8:0:1::1")).unwrap();
        let _v4 = caps.admit(ip("192.0.2.1")).unwrap();
        assert!(caps.admit(ip("::ffff:192.0.2.1")).is_err());
    }

    #[test]
    fn the_source_map_is_emptied_as_connections_close() {
        let caps = ConnectionCaps::new(1000, 1000);
        let permits: Vec<_> = (0..200u32)
            .map(|i| caps.admit(IpAddr::V4(i.into())).unwrap())
            .collect();
        assert_eq!(caps.lock().per_source.len(), 200);
        drop(permits);
        assert_eq!(caps.lock().per_source.len(), 0);
        assert_eq!(caps.snapshot().open, 0);
    }
}
