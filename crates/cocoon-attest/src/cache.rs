//! A small time-aware LRU for verification results, keyed by SHA-256 of the quote, so that a
//! peer reconnecting with the same certificate costs a hash and a map lookup instead of a
//! full DCAP verification.
//!
//! Only successes are stored (the caller decides that); an entry answers only inside its own
//! validity window, judged at the `now` the caller passes in, never the system clock.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

/// One cached value and the window in which it may be handed out.
struct Entry<V> {
    value: V,
    /// Earliest time the value is valid: verifying at an earlier `now` would have failed
    /// (collateral not yet issued), so a clock that goes back must not be answered from here.
    valid_from: SystemTime,
    /// The value is stale at and after this time.
    valid_until: SystemTime,
    /// Stamp of the entry's latest use; matches exactly one record in `order`.
    stamp: u64,
}

/// Least-recently-used map from a 32-byte digest to a value with a validity window.
///
/// Recency is kept as a queue of `(key, stamp)` records: a use pushes a fresh record and
/// bumps the entry's stamp, leaving the old record behind as stale. Eviction pops from the
/// front and skips stale records. This keeps every operation amortised O(1) without an
/// intrusive list; the queue is compacted when stale records outnumber live ones.
pub(crate) struct LruCache<V> {
    capacity: usize,
    entries: HashMap<[u8; 32], Entry<V>>,
    order: VecDeque<([u8; 32], u64)>,
    next_stamp: u64,
}

impl<V: Clone> LruCache<V> {
    /// A cache holding at most `capacity` entries; `0` disables caching.
    pub(crate) fn new(capacity: usize) -> Self {
        LruCache {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_stamp: 0,
        }
    }

    /// The value under `key` if it is valid at `now` (`valid_from <= now < valid_until`),
    /// marking it most recently used. An entry found stale is dropped.
    pub(crate) fn get(&mut self, key: &[u8; 32], now: SystemTime) -> Option<V> {
        let entry = self.entries.get(key)?;
        if now < entry.valid_from || now >= entry.valid_until {
            // Past its window it can never be valid again under a forward clock; before its
            // window it is only a clock anomaly, and re-verifying is the safe answer to both.
            self.entries.remove(key);
            return None;
        }
        let value = entry.value.clone();
        self.touch(*key);
        Some(value)
    }

    /// Stores `value` for `[valid_from, valid_until)`, evicting the least recently used
    /// entry when full.
    pub(crate) fn insert(
        &mut self,
        key: [u8; 32],
        value: V,
        valid_from: SystemTime,
        valid_until: SystemTime,
    ) {
        if self.capacity == 0 {
            return;
        }
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.capacity {
                if !self.evict_one() {
                    break;
                }
            }
        }
        self.entries.insert(
            key,
            Entry {
                value,
                valid_from,
                valid_until,
                stamp: 0,
            },
        );
        self.touch(key);
    }

    /// Drops every entry, e.g. when the collateral behind them was replaced.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Number of live entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn touch(&mut self, key: [u8; 32]) {
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.stamp = stamp;
            self.order.push_back((key, stamp));
        }
        if self.order.len() > 2 * self.entries.len() + 16 {
            self.compact();
        }
    }

    /// Removes the least recently used live entry; false if there was none.
    fn evict_one(&mut self) -> bool {
        while let Some((key, stamp)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|e| e.stamp == stamp) {
                self.entries.remove(&key);
                return true;
            }
        }
        false
    }

    /// Rebuilds the recency queue from live entries only.
    fn compact(&mut self) {
        let mut live: Vec<([u8; 32], u64)> =
            self.entries.iter().map(|(k, e)| (*k, e.stamp)).collect();
        live.sort_by_key(|(_, stamp)| *stamp);
        self.order = live.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut cache = LruCache::new(2);
        cache.insert([1; 32], 1, at(0), at(100));
        cache.insert([2; 32], 2, at(0), at(100));
        assert_eq!(cache.get(&[1; 32], at(1)), Some(1));
        cache.insert([3; 32], 3, at(0), at(100));
        assert_eq!(cache.get(&[2; 32], at(1)), None);
        assert_eq!(cache.get(&[1; 32], at(1)), Some(1));
        assert_eq!(cache.get(&[3; 32], at(1)), Some(3));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn honours_validity_window() {
        let mut cache = LruCache::new(4);
        cache.insert([1; 32], 1, at(10), at(20));
        assert_eq!(cache.get(&[1; 32], at(9)), None);
        cache.insert([1; 32], 1, at(10), at(20));
        assert_eq!(cache.get(&[1; 32], at(19)), Some(1));
        assert_eq!(cache.get(&[1; 32], at(20)), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut cache = LruCache::new(0);
        cache.insert([1; 32], 1, at(0), at(100));
        assert_eq!(cache.get(&[1; 32], at(1)), None);
    }

    #[test]
    fn many_hits_keep_the_queue_bounded() {
        let mut cache = LruCache::new(3);
        for i in 0..3u8 {
            cache.insert([i; 32], i, at(0), at(100));
        }
        for _ in 0..10_000 {
            assert_eq!(cache.get(&[0; 32], at(1)), Some(0));
        }
        assert!(cache.order.len() <= 2 * 3 + 16 + 1);
        cache.insert([9; 32], 9, at(0), at(100));
        // [1] was used least recently (inserted before [2], never read).
        assert_eq!(cache.get(&[1; 32], at(1)), None);
        assert_eq!(cache.get(&[0; 32], at(1)), Some(0));
    }
}
