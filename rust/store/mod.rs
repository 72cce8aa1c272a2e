//! The in-memory store, generic over the value type.
//!
//! Entries live in a slab (`Vec<Slot<V>>`) addressed by `u32` slot indices; a
//! `hashbrown::HashTable<u32>` maps key bytes to slots (4 bytes per bucket, so the table's
//! load-factor slack costs little), and the [`Policy`] orders slots for eviction. Lookups
//! compare the full canonical key bytes, so no hash or digest collision can return a wrong
//! value.
//!
//! The store does no locking and never touches Python: the binding layer wraps it in a
//! mutex. Values that leave the store (replaced, removed, evicted, expired, cleared) are
//! moved into a *graveyard* that the caller drains after releasing its lock, because dropping
//! a Python object can run arbitrary Python code (`__del__`, weakref callbacks).
//!
//! Time is passed in by the caller as nanoseconds on a monotonic clock, which keeps the store
//! deterministic under test (a fake clock is just different numbers).

pub mod keybytes;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hashbrown::HashTable;

pub use keybytes::KeyBytes;

use crate::hash::fast_hash;
use crate::policy::{Policy, PolicyKind};

/// One slab slot: an entry, or a vacancy when `value` is `None`.
struct Slot<V> {
    key: KeyBytes,
    value: Option<V>,
    /// Absolute expiry time in ns, or 0 for "never".
    expires: u64,
    weight: u32,
    group: u32,
}

/// Counters kept by the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing (or an expired entry).
    pub misses: u64,
    /// New entries written.
    pub inserts: u64,
    /// Existing entries overwritten.
    pub updates: u64,
    /// Entries removed to respect `max_entries` / `max_bytes`.
    pub evictions: u64,
    /// Entries removed because their TTL passed.
    pub expirations: u64,
    /// Entries removed explicitly.
    pub removals: u64,
    /// Writes refused (value larger than `max_bytes`, or `max_entries == 0`).
    pub rejections: u64,
}

/// Limits and defaults of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Maximum number of entries (`None`: unbounded; `Some(0)`: store nothing).
    pub max_entries: Option<usize>,
    /// Maximum total weight in bytes (`None`: unbounded).
    pub max_bytes: Option<u64>,
    /// Default time-to-live in ns for entries written without their own (`None`: forever).
    pub ttl: Option<u64>,
    /// The eviction policy.
    pub policy: PolicyKind,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_entries: None,
            max_bytes: None,
            ttl: None,
            policy: PolicyKind::TinyLfu,
        }
    }
}

/// Why a write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The store is configured with `max_entries == 0`.
    ZeroCapacity,
    /// The value alone weighs more than `max_bytes`.
    TooLarge {
        /// The value's weight.
        weight: u64,
        /// The store's byte budget.
        max_bytes: u64,
    },
}

/// The time-to-live of one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// Use the store's default.
    Default,
    /// Never expire.
    Never,
    /// Expire this many ns after the write.
    After(u64),
}

/// The store itself. See the module docs.
pub struct Store<V> {
    slots: Vec<Slot<V>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    policy: Policy,
    config: Config,
    len: usize,
    weight: u64,
    /// (deadline, slot) for entries with a TTL; stale items are skipped lazily.
    expiry: BinaryHeap<Reverse<(u64, u32)>>,
    ttl_entries: usize,
    group_counts: Vec<u32>,
    stats: Stats,
    graveyard: Vec<V>,
}

impl<V> Store<V> {
    /// An empty store.
    pub fn new(config: Config) -> Self {
        let cap = match (config.max_entries, config.max_bytes) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => Some(1024),
            (None, None) => None,
        };
        Store {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            policy: Policy::new(config.policy, cap),
            config,
            len: 0,
            weight: 0,
            expiry: BinaryHeap::new(),
            ttl_entries: 0,
            group_counts: Vec::new(),
            stats: Stats::default(),
            graveyard: Vec::new(),
        }
    }

    /// The store's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of entries held (including expired ones not yet purged; see
    /// [`Store::purge_expired`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total weight of the entries held.
    pub fn weight(&self) -> u64 {
        self.weight
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether any entry may expire (so callers know whether they need the clock).
    #[inline]
    pub fn uses_time(&self) -> bool {
        self.ttl_entries > 0 || self.config.ttl.is_some()
    }

    /// Entries currently counted in `group`.
    pub fn group_len(&self, group: u32) -> usize {
        self.group_counts.get(group as usize).copied().unwrap_or(0) as usize
    }

    /// Whether values are waiting in the graveyard.
    #[inline]
    pub fn has_graveyard(&self) -> bool {
        !self.graveyard.is_empty()
    }

    /// Values that left the store since the last call; drop them outside any lock.
    pub fn take_graveyard(&mut self) -> Vec<V> {
        std::mem::take(&mut self.graveyard)
    }

    /// Approximate bytes of memory the store itself holds (slab, index, policy, heap keys),
    /// not counting what the values point to.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<V>>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.policy.memory_bytes()
            + self.free.capacity() * 4
            + self.expiry.capacity() * 16
            + self.slots.iter().map(|s| s.key.heap_bytes()).sum::<usize>()
    }

    #[inline]
    fn find(&self, key: &[u8], hash: u64) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].key.matches(key))
            .copied()
    }

    #[inline]
    fn is_expired(slot: &Slot<V>, now: u64) -> bool {
        slot.expires != 0 && slot.expires <= now
    }

    /// Look `key` up, counting a hit or a miss and updating recency/frequency on a hit.
    /// An expired entry is removed and counts as a miss.
    #[inline]
    pub fn get(&mut self, key: &[u8], hash: u64, now: u64) -> Option<&V> {
        match self.find(key, hash) {
            Some(i) if !Self::is_expired(&self.slots[i as usize], now) => {
                self.stats.hits += 1;
                self.policy.on_access(i, hash);
                self.slots[i as usize].value.as_ref()
            }
            Some(i) => {
                self.remove_slot(i, hash);
                self.stats.expirations += 1;
                self.stats.misses += 1;
                None
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Look `key` up without counting or touching the policy (`in`, inspection).
    pub fn peek(&self, key: &[u8], hash: u64, now: u64) -> Option<&V> {
        let i = self.find(key, hash)?;
        let slot = &self.slots[i as usize];
        if Self::is_expired(slot, now) {
            None
        } else {
            slot.value.as_ref()
        }
    }

    /// Write `value` under `key`, evicting as needed to respect the limits.
    ///
    /// On `Err`, nothing was written and the value is in the graveyard.
    #[allow(clippy::too_many_arguments)] // each is one independent fact about the write
    pub fn insert(
        &mut self,
        key: &[u8],
        hash: u64,
        value: V,
        weight: u64,
        ttl: Ttl,
        group: u32,
        now: u64,
    ) -> Result<(), Rejected> {
        if self.config.max_entries == Some(0) {
            self.graveyard.push(value);
            self.stats.rejections += 1;
            return Err(Rejected::ZeroCapacity);
        }
        if let Some(max_bytes) = self.config.max_bytes {
            if weight > max_bytes {
                self.graveyard.push(value);
                self.stats.rejections += 1;
                return Err(Rejected::TooLarge { weight, max_bytes });
            }
        }
        let weight32 = weight.min(u64::from(u32::MAX)) as u32;
        let ttl_ns = match ttl {
            Ttl::Default => self.config.ttl,
            Ttl::Never => None,
            Ttl::After(ns) => Some(ns),
        };
        let expires = ttl_ns.map(|t| now.saturating_add(t).max(1)).unwrap_or(0);
        self.purge_expired(now);
        if let Some(i) = self.find(key, hash) {
            let slot = &mut self.slots[i as usize];
            if let Some(old) = slot.value.replace(value) {
                self.graveyard.push(old);
            }
            self.weight = self.weight - u64::from(slot.weight) + u64::from(weight32);
            slot.weight = weight32;
            let old_group = std::mem::replace(&mut slot.group, group);
            let had_ttl = slot.expires != 0;
            slot.expires = expires;
            if old_group != group {
                self.group_dec(old_group);
                self.group_inc(group);
            }
            match (had_ttl, expires != 0) {
                (false, true) => self.ttl_entries += 1,
                (true, false) => self.ttl_entries -= 1,
                _ => {}
            }
            if expires != 0 {
                self.expiry.push(Reverse((expires, i)));
            }
            self.stats.updates += 1;
            self.policy.on_access(i, hash);
        } else {
            let slot = Slot {
                key: KeyBytes::new(key),
                value: Some(value),
                expires,
                weight: weight32,
                group,
            };
            let i = match self.free.pop() {
                Some(i) => {
                    self.slots[i as usize] = slot;
                    i
                }
                None => {
                    self.slots.push(slot);
                    (self.slots.len() - 1) as u32
                }
            };
            let slots = &self.slots;
            self.index
                .insert_unique(hash, i, |&j| fast_hash(slots[j as usize].key.as_slice()));
            self.len += 1;
            self.weight += u64::from(weight32);
            self.group_inc(group);
            if expires != 0 {
                self.ttl_entries += 1;
                self.expiry.push(Reverse((expires, i)));
            }
            self.stats.inserts += 1;
            if self.config.max_entries.is_none()
                && self.config.max_bytes.is_some()
                && self.len > 1024
            {
                // a byte-bounded store sizes its policy regions by how many entries it holds
                if self.len.is_power_of_two() {
                    self.policy.resize(Some(self.len * 2));
                }
            }
            self.policy
                .on_insert_weighted(i, hash, u64::from(weight32), self.config.max_bytes);
        }
        self.enforce_limits();
        self.compact_expiry();
        Ok(())
    }

    fn over_limits(&self) -> bool {
        self.config
            .max_entries
            .map(|m| self.len > m)
            .unwrap_or(false)
            || self
                .config
                .max_bytes
                .map(|m| self.weight > m)
                .unwrap_or(false)
    }

    fn enforce_limits(&mut self) {
        while self.over_limits() {
            let slots = &self.slots;
            let Some(v) = self
                .policy
                .victim(|j| fast_hash(slots[j as usize].key.as_slice()))
            else {
                break;
            };
            let hash = fast_hash(self.slots[v as usize].key.as_slice());
            self.remove_slot(v, hash);
            self.stats.evictions += 1;
        }
        self.policy.settle();
    }

    fn group_inc(&mut self, group: u32) {
        let g = group as usize;
        if self.group_counts.len() <= g {
            self.group_counts.resize(g + 1, 0);
        }
        self.group_counts[g] += 1;
    }

    fn group_dec(&mut self, group: u32) {
        if let Some(c) = self.group_counts.get_mut(group as usize) {
            *c = c.saturating_sub(1);
        }
    }

    /// Remove the entry in slot `i` (whose key hashes to `hash`) into the graveyard.
    fn remove_slot(&mut self, i: u32, hash: u64) {
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.policy.on_remove(i);
        let slot = &mut self.slots[i as usize];
        if let Some(v) = slot.value.take() {
            self.graveyard.push(v);
        }
        if slot.expires != 0 {
            self.ttl_entries -= 1;
        }
        slot.expires = 0;
        self.weight -= u64::from(slot.weight);
        slot.weight = 0;
        let group = slot.group;
        slot.key = KeyBytes::new(&[]);
        self.group_dec(group);
        self.len -= 1;
        self.free.push(i);
    }

    /// Remove `key`. Returns whether a live entry was there (an expired one is removed
    /// too, counted as an expiration, and reported as absent).
    pub fn remove(&mut self, key: &[u8], hash: u64, now: u64) -> bool {
        match self.find(key, hash) {
            Some(i) => {
                let live = !Self::is_expired(&self.slots[i as usize], now);
                self.remove_slot(i, hash);
                if live {
                    self.stats.removals += 1;
                } else {
                    self.stats.expirations += 1;
                }
                live
            }
            None => false,
        }
    }

    /// Remove `key` and return its value (if live).
    pub fn take(&mut self, key: &[u8], hash: u64, now: u64) -> Option<V> {
        let i = self.find(key, hash)?;
        let live = !Self::is_expired(&self.slots[i as usize], now);
        self.remove_slot(i, hash);
        if live {
            self.stats.removals += 1;
            self.graveyard.pop()
        } else {
            self.stats.expirations += 1;
            None
        }
    }

    /// Remove every entry whose TTL has passed. Amortised O(log n) per expired entry.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(&Reverse((deadline, i))) = self.expiry.peek() {
            if deadline > now {
                break;
            }
            self.expiry.pop();
            let slot = &self.slots[i as usize];
            if slot.value.is_some() && slot.expires == deadline {
                let hash = fast_hash(slot.key.as_slice());
                self.remove_slot(i, hash);
                self.stats.expirations += 1;
                n += 1;
            }
        }
        n
    }

    /// Drop stale heap items when they outnumber live TTL entries (overwrites leave them).
    fn compact_expiry(&mut self) {
        if self.expiry.len() > 2 * self.ttl_entries + 1024 {
            let slots = &self.slots;
            let live: Vec<Reverse<(u64, u32)>> = self
                .expiry
                .drain()
                .filter(|Reverse((d, i))| {
                    let s = &slots[*i as usize];
                    s.value.is_some() && s.expires == *d
                })
                .collect();
            self.expiry = BinaryHeap::from(live);
        }
    }

    /// Remove every entry of `group`. O(n) in the store's size.
    pub fn remove_group(&mut self, group: u32) -> usize {
        let victims: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some() && s.group == group)
            .map(|(i, _)| i as u32)
            .collect();
        for &i in &victims {
            let hash = fast_hash(self.slots[i as usize].key.as_slice());
            self.remove_slot(i, hash);
            self.stats.removals += 1;
        }
        victims.len()
    }

    /// Remove everything (counters are kept).
    pub fn clear(&mut self) {
        for slot in self.slots.drain(..) {
            if let Some(v) = slot.value {
                self.graveyard.push(v);
            }
        }
        self.free.clear();
        self.index.clear();
        self.policy.clear();
        self.expiry.clear();
        self.ttl_entries = 0;
        self.group_counts.clear();
        self.len = 0;
        self.weight = 0;
    }

    /// Reset the counters.
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    /// Visit every live entry as (key bytes, value, group), in slab order.
    pub fn for_each(&self, now: u64, mut f: impl FnMut(&[u8], &V, u32)) {
        for slot in &self.slots {
            if let Some(v) = slot.value.as_ref() {
                if !Self::is_expired(slot, now) {
                    f(slot.key.as_slice(), v, slot.group);
                }
            }
        }
    }

    /// Visit up to `n` live entries, most valuable to the policy first.
    pub fn for_each_hot(&self, n: usize, now: u64, mut f: impl FnMut(&[u8], &V)) {
        for i in self.policy.hottest(n) {
            let slot = &self.slots[i as usize];
            if let Some(v) = slot.value.as_ref() {
                if !Self::is_expired(slot, now) {
                    f(slot.key.as_slice(), v);
                }
            }
        }
    }

    /// Check internal invariants (tests only; O(n)).
    pub fn check_invariants(&self) -> Result<(), String> {
        let live = self.slots.iter().filter(|s| s.value.is_some()).count();
        if live != self.len {
            return Err(format!("len {} but {} live slots", self.len, live));
        }
        if self.index.len() != self.len {
            return Err(format!(
                "index has {} but len {}",
                self.index.len(),
                self.len
            ));
        }
        if self.policy.tracked() != self.len {
            return Err(format!(
                "policy tracks {} but len {}",
                self.policy.tracked(),
                self.len
            ));
        }
        let w: u64 = self.slots.iter().map(|s| u64::from(s.weight)).sum();
        if w != self.weight {
            return Err(format!("weight {} but slots sum to {}", self.weight, w));
        }
        if let Some(m) = self.config.max_entries {
            if self.len > m {
                return Err(format!("len {} over max_entries {}", self.len, m));
            }
        }
        if let Some(m) = self.config.max_bytes {
            if self.weight > m {
                return Err(format!("weight {} over max_bytes {}", self.weight, m));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    fn put(s: &mut Store<u64>, n: u64, now: u64) {
        let k = key(n);
        s.insert(&k, fast_hash(&k), n, 8, Ttl::Default, 0, now)
            .expect("insert");
    }

    fn get(s: &mut Store<u64>, n: u64, now: u64) -> Option<u64> {
        let k = key(n);
        s.get(&k, fast_hash(&k), now).copied()
    }

    #[test]
    fn get_set_remove_round_trip() {
        let mut s: Store<u64> = Store::new(Config::default());
        for n in 0..1000 {
            put(&mut s, n, 0);
        }
        assert_eq!(s.len(), 1000);
        for n in 0..1000 {
            assert_eq!(get(&mut s, n, 0), Some(n));
        }
        let k = key(5);
        assert!(s.remove(&k, fast_hash(&k), 0));
        assert!(!s.remove(&k, fast_hash(&k), 0));
        assert_eq!(get(&mut s, 5, 0), None);
        assert_eq!(s.stats().hits, 1000);
        assert_eq!(s.stats().misses, 1);
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn max_entries_bounds_the_store_for_both_policies() {
        for policy in [PolicyKind::Lru, PolicyKind::TinyLfu] {
            let mut s: Store<u64> = Store::new(Config {
                max_entries: Some(100),
                policy,
                ..Config::default()
            });
            for n in 0..10_000 {
                put(&mut s, n % 777, 0);
                assert!(s.len() <= 100);
            }
            s.check_invariants().expect("invariants");
            assert!(s.stats().evictions > 0);
            assert_eq!(
                s.graveyard.len() as u64,
                s.stats().evictions + s.stats().updates
            );
        }
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut s: Store<u64> = Store::new(Config {
            max_entries: Some(0),
            ..Config::default()
        });
        let k = key(1);
        assert_eq!(
            s.insert(&k, fast_hash(&k), 1, 8, Ttl::Default, 0, 0),
            Err(Rejected::ZeroCapacity)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn max_bytes_bounds_weight_and_rejects_giants() {
        let mut s: Store<u64> = Store::new(Config {
            max_bytes: Some(1000),
            ..Config::default()
        });
        for n in 0..500 {
            let k = key(n);
            s.insert(&k, fast_hash(&k), n, 30, Ttl::Default, 0, 0)
                .expect("fits");
            assert!(s.weight() <= 1000);
        }
        let k = key(9999);
        assert_eq!(
            s.insert(&k, fast_hash(&k), 1, 1001, Ttl::Default, 0, 0),
            Err(Rejected::TooLarge {
                weight: 1001,
                max_bytes: 1000
            })
        );
        assert!(s.len() >= 30, "a rejected giant must not empty the cache");
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn ttl_expires_entries_on_read_and_purge() {
        let sec = 1_000_000_000u64;
        let mut s: Store<u64> = Store::new(Config {
            ttl: Some(10 * sec),
            ..Config::default()
        });
        put(&mut s, 1, 0);
        let k = key(2);
        s.insert(&k, fast_hash(&k), 2, 8, Ttl::After(sec), 0, 0)
            .expect("insert");
        let k3 = key(3);
        s.insert(&k3, fast_hash(&k3), 3, 8, Ttl::Never, 0, 0)
            .expect("insert");
        assert_eq!(get(&mut s, 2, sec - 1), Some(2));
        assert_eq!(get(&mut s, 2, sec), None);
        assert_eq!(get(&mut s, 1, 9 * sec), Some(1));
        assert_eq!(s.purge_expired(10 * sec), 1);
        assert_eq!(get(&mut s, 3, 1000 * sec), Some(3));
        let k4 = key(4);
        s.insert(&k4, fast_hash(&k4), 4, 8, Ttl::After(sec), 0, 1000 * sec)
            .expect("insert");
        assert!(
            !s.remove(&k4, fast_hash(&k4), 1001 * sec),
            "an expired entry is not removable"
        );
        assert_eq!(s.stats().expirations, 3);
        assert_eq!(s.len(), 1);
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn overwrites_keep_one_entry_and_refresh_ttl() {
        let mut s: Store<u64> = Store::new(Config::default());
        let k = key(1);
        let h = fast_hash(&k);
        s.insert(&k, h, 1, 8, Ttl::After(10), 0, 0).expect("insert");
        s.insert(&k, h, 2, 8, Ttl::After(10), 0, 5).expect("insert");
        assert_eq!(s.get(&k, h, 12).copied(), Some(2));
        assert_eq!(s.get(&k, h, 15).copied(), None);
        for t in 0..5000u64 {
            s.insert(&k, h, t, 8, Ttl::After(1_000_000), 0, t)
                .expect("insert");
        }
        assert!(s.expiry.len() < 3000, "stale expiry items are compacted");
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn groups_count_and_clear_independently() {
        let mut s: Store<u64> = Store::new(Config::default());
        for n in 0..10u64 {
            let k = key(n);
            s.insert(&k, fast_hash(&k), n, 8, Ttl::Default, (n % 2) as u32, 0)
                .expect("insert");
        }
        assert_eq!(s.group_len(0), 5);
        assert_eq!(s.remove_group(1), 5);
        assert_eq!(s.group_len(1), 0);
        assert_eq!(s.len(), 5);
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn clear_moves_values_to_the_graveyard() {
        let mut s: Store<u64> = Store::new(Config {
            max_entries: Some(10),
            ..Config::default()
        });
        for n in 0..10 {
            put(&mut s, n, 0);
        }
        s.clear();
        assert_eq!(s.take_graveyard().len(), 10);
        assert!(s.is_empty());
        put(&mut s, 1, 0);
        assert_eq!(get(&mut s, 1, 0), Some(1));
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn slot_is_compact() {
        assert!(std::mem::size_of::<Slot<Box<u8>>>() <= 48);
    }
}
