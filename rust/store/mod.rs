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
//!
//! Optional features live beside the slab, never in it, so a store that does not use them
//! pays one predictable branch at most:
//! * per-entry extras (content hash, warm-up flag) in a side table indexed by slot,
//!   allocated on first use; dependency edges in [`deps::Deps`];
//! * a `watch` flag, set only while an event ring, a subscription, pattern learning or an
//!   unconsumed warm-up exists, guards all event / learning work on the lookup path;
//! * subscriber notices are queued (see [`events::Notice`]) and delivered by the caller
//!   after it releases the store, like the graveyard.

pub mod deps;
pub mod events;
pub mod keybytes;
pub mod patterns;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hashbrown::HashTable;
use smallvec::SmallVec;

pub use deps::Deps;
pub use events::{EventKind, Notice, RawEvent, Ring};
pub use keybytes::KeyBytes;
pub use patterns::Patterns;

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
    /// Entries removed by `invalidate` (with their dependents) or a content-hash mismatch.
    pub invalidations: u64,
    /// Prefetched entries written (`warmup`).
    pub warmups: u64,
    /// Prefetched entries hit at least once (counted at their first hit).
    pub prediction_hits: u64,
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

/// Values that left the store during one operation. Most operations drop at most a few
/// (an overwrite one, an insert one eviction), so they stay inline: handing them to the
/// caller allocates nothing.
pub type Graveyard<V> = SmallVec<[V; 4]>;

/// Why an entry leaves the store (which event it makes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    Evict,
    Expire,
    /// Removed with its dependents by `invalidate`.
    Invalidate,
    /// Removed alone for a content-hash mismatch (an INVALIDATE event too).
    Stale,
    /// Explicit removal (`remove`, `take`, `remove_group`): no event.
    Remove,
}

impl Why {
    fn event(self) -> Option<EventKind> {
        match self {
            Why::Evict => Some(EventKind::Evict),
            Why::Expire => Some(EventKind::Expire),
            Why::Invalidate | Why::Stale => Some(EventKind::Invalidate),
            Why::Remove => None,
        }
    }
}

/// Optional facts about one write.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteExt<'a> {
    /// Canonical bytes of the keys this entry depends on (need not be stored).
    pub depends_on: &'a [Vec<u8>],
    /// Opaque content hash stored with the entry (compared by [`Store::get_checked`]).
    pub content_hash: Option<&'a [u8]>,
    /// A prefetched entry: counts a warm-up, and its first later hit a prediction hit.
    pub warmup: bool,
}

impl WriteExt<'_> {
    /// No extras at all.
    pub const PLAIN: WriteExt<'static> = WriteExt {
        depends_on: &[],
        content_hash: None,
        warmup: false,
    };

    #[inline]
    fn is_plain(&self) -> bool {
        self.depends_on.is_empty() && self.content_hash.is_none() && !self.warmup
    }
}

/// Per-entry extras, in a side table indexed by slot.
#[derive(Clone, Debug, Default)]
struct Extra {
    content_hash: Option<Box<[u8]>>,
    warmup: bool,
}

/// An entry's content hash and parent key bytes.
pub type EntryMeta<'a> = (Option<&'a [u8]>, Vec<&'a [u8]>);

/// One live entry as [`Store::dump`] reports it.
pub struct Dumped<'a, V> {
    /// Canonical key bytes.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a V,
    /// The entry's group.
    pub group: u32,
    /// Time left before expiry in ns (`None`: never expires).
    pub ttl_left: Option<u64>,
    /// The stored content hash.
    pub content_hash: Option<&'a [u8]>,
    /// Canonical bytes of the keys it depends on.
    pub parents: Vec<&'a [u8]>,
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
    graveyard: Graveyard<V>,
    /// Whether any event / learning / warm-up bookkeeping is needed on lookups.
    watch: bool,
    /// Whether any entry ever had extras or dependencies (guards the removal path).
    has_meta: bool,
    extra: Vec<Extra>,
    deps: Deps,
    /// Entries still flagged as unconsumed warm-ups.
    warm_pending: usize,
    ring: Option<Ring>,
    /// Subscribed event kinds (bit per [`EventKind`]).
    notify: u8,
    notices: Vec<Notice<V>>,
    patterns: Option<Patterns>,
    learning: bool,
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
            graveyard: Graveyard::new(),
            watch: false,
            has_meta: false,
            extra: Vec::new(),
            deps: Deps::new(),
            warm_pending: 0,
            ring: None,
            notify: 0,
            notices: Vec::new(),
            patterns: None,
            learning: false,
        }
    }

    fn rewatch(&mut self) {
        self.watch =
            self.ring.is_some() || self.notify != 0 || self.learning || self.warm_pending > 0;
    }

    /// Keep the newest `capacity` events in a ring (0: keep none).
    pub fn set_event_log(&mut self, capacity: usize) {
        self.ring = (capacity > 0).then(|| Ring::new(capacity));
        self.rewatch();
    }

    /// The event ring's capacity (0 when off).
    pub fn event_log_capacity(&self) -> usize {
        self.ring.as_ref().map(Ring::capacity).unwrap_or(0)
    }

    /// The newest `n` logged events (all with `None`), oldest first.
    pub fn events(&self, n: Option<usize>) -> Vec<&RawEvent> {
        match &self.ring {
            Some(r) => r.recent(n),
            None => Vec::new(),
        }
    }

    /// Which event kinds to queue as notices (bit per [`EventKind::bit`]).
    pub fn set_notify(&mut self, mask: u8) {
        self.notify = mask;
        self.rewatch();
    }

    /// Turn successor learning on or off (what was learned is kept).
    pub fn set_learning(&mut self, on: bool) {
        if on && self.patterns.is_none() {
            self.patterns = Some(Patterns::for_store(self.config.max_entries));
        }
        self.learning = on;
        self.rewatch();
    }

    /// Whether successor learning is on.
    pub fn learning(&self) -> bool {
        self.learning
    }

    /// Replace the successor table (tests use small bounds).
    pub fn set_patterns(&mut self, patterns: Patterns) {
        self.patterns = Some(patterns);
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
    pub fn take_graveyard(&mut self) -> Graveyard<V> {
        std::mem::take(&mut self.graveyard)
    }

    /// Whether values or notices wait to be taken after the lock is released.
    #[inline]
    pub fn has_outbox(&self) -> bool {
        !self.graveyard.is_empty() || !self.notices.is_empty()
    }

    /// Notices for subscribers queued since the last call; deliver them outside any lock.
    pub fn take_notices(&mut self) -> Vec<Notice<V>> {
        std::mem::take(&mut self.notices)
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
            + self.extra.capacity() * std::mem::size_of::<Extra>()
            + self
                .extra
                .iter()
                .map(|x| x.content_hash.as_ref().map(|h| h.len()).unwrap_or(0))
                .sum::<usize>()
            + self.deps.memory_bytes()
            + self.ring.as_ref().map(Ring::memory_bytes).unwrap_or(0)
            + self
                .patterns
                .as_ref()
                .map(Patterns::memory_bytes)
                .unwrap_or(0)
    }

    #[inline(always)]
    // a plain loop: `Iterator::find` leaves its `try_fold` out of line
    #[allow(clippy::manual_find)]
    fn find(&self, key: &[u8], hash: u64) -> Option<u32> {
        // `iter_hash` probes exactly like `HashTable::find`, but inlines the comparison,
        // which `find` calls through a `dyn FnMut` (a call and register spills per lookup)
        for &i in self.index.iter_hash(hash) {
            if self.slots[i as usize].key.matches(key) {
                return Some(i);
            }
        }
        None
    }

    #[inline]
    fn is_expired(slot: &Slot<V>, now: u64) -> bool {
        slot.expires != 0 && slot.expires <= now
    }

    /// Look `key` up, counting a hit or a miss and updating recency/frequency on a hit.
    /// An expired entry is removed and counts as a miss.
    #[inline(always)]
    pub fn get(&mut self, key: &[u8], hash: u64, now: u64) -> Option<&V> {
        // the hit path stays small enough to inline into callers; the rest is out of line
        let Some(i) = self.find(key, hash) else {
            self.miss(key, hash);
            return None;
        };
        if Self::is_expired(&self.slots[i as usize], now) {
            self.expired_lookup(i, key, hash);
            return None;
        }
        self.hit(i, key, hash)
    }

    /// The hit half of [`Store::get`]: a live entry's value, the hit counted and the policy
    /// told; None, having changed nothing, when `key` is absent or expired (a caller that
    /// then calls [`Store::get`] counts the miss once).
    #[inline(always)]
    pub fn get_hit(&mut self, key: &[u8], hash: u64, now: u64) -> Option<&V> {
        let i = self.find(key, hash)?;
        if Self::is_expired(&self.slots[i as usize], now) {
            return None;
        }
        self.hit(i, key, hash)
    }

    /// Count a hit on the live entry at slot `i` and return its value.
    #[inline(always)]
    fn hit(&mut self, i: u32, key: &[u8], hash: u64) -> Option<&V> {
        self.stats.hits += 1;
        self.policy.on_access(i, hash);
        if self.watch {
            self.watch_hit(i, key, hash);
        }
        self.slots[i as usize].value.as_ref()
    }

    #[inline(never)]
    fn expired_lookup(&mut self, i: u32, key: &[u8], hash: u64) {
        self.remove_slot(i, hash, Why::Expire);
        self.stats.expirations += 1;
        self.miss(key, hash);
    }

    #[inline]
    fn miss(&mut self, key: &[u8], hash: u64) {
        self.stats.misses += 1;
        if self.watch {
            self.watch_access(EventKind::Miss, key, hash);
        }
    }

    /// Like [`Store::get`], but an entry whose content hash is not `want` (or that has
    /// none) is removed as invalid (an INVALIDATE event) and the lookup is a miss.
    pub fn get_checked(&mut self, key: &[u8], hash: u64, now: u64, want: &[u8]) -> Option<&V> {
        if let Some(i) = self.find(key, hash) {
            let stale = !Self::is_expired(&self.slots[i as usize], now)
                && self.content_hash_of(i) != Some(want);
            if stale {
                self.remove_slot(i, hash, Why::Stale);
                self.stats.invalidations += 1;
                self.miss(key, hash);
                return None;
            }
        }
        self.get(key, hash, now)
    }

    fn content_hash_of(&self, i: u32) -> Option<&[u8]> {
        self.extra
            .get(i as usize)
            .and_then(|x| x.content_hash.as_deref())
    }

    #[inline(never)]
    fn watch_hit(&mut self, i: u32, key: &[u8], hash: u64) {
        if self.warm_pending > 0 {
            if let Some(x) = self.extra.get_mut(i as usize) {
                if x.warmup {
                    x.warmup = false;
                    self.warm_pending -= 1;
                    self.stats.prediction_hits += 1;
                    self.rewatch();
                }
            }
        }
        self.watch_access(EventKind::Hit, key, hash);
    }

    /// Learn from and log one access (a lookup or a write).
    #[inline(never)]
    fn watch_access(&mut self, kind: EventKind, key: &[u8], hash: u64) {
        if self.learning {
            if let Some(p) = self.patterns.as_mut() {
                p.record(key, hash);
            }
        }
        self.emit(kind, key, None);
    }

    /// Log an event and queue it for subscribers; `value` (a removed value) goes with the
    /// notice when the kind is subscribed, else to the graveyard.
    fn emit(&mut self, kind: EventKind, key: &[u8], value: Option<V>) {
        let subscribed = self.notify & kind.bit() != 0;
        if self.ring.is_none() && !subscribed {
            if let Some(v) = value {
                self.graveyard.push(v);
            }
            return;
        }
        let time = events::wall_clock();
        if let Some(r) = self.ring.as_mut() {
            r.push(kind, key, time);
        }
        if subscribed {
            self.notices.push(Notice {
                kind,
                time,
                key: KeyBytes::new(key),
                value,
            });
        } else if let Some(v) = value {
            self.graveyard.push(v);
        }
    }

    /// Up to `n` keys that most often followed `key` (see [`Patterns::predict`]); logs a
    /// PREDICT event for each. Empty unless learning was ever on.
    pub fn predict(&mut self, key: &[u8], hash: u64, n: usize) -> Vec<KeyBytes> {
        let out = match self.patterns.as_mut() {
            Some(p) => p.predict(key, hash, n),
            None => Vec::new(),
        };
        if self.watch {
            for k in &out {
                self.emit(EventKind::Predict, k.as_slice(), None);
            }
        }
        out
    }

    /// Remove the entry for `key` (stored or not) and, transitively, every entry depending
    /// on it; returns how many live entries were removed (expired ones found on the way are
    /// removed as expirations). Cycles are fine: an entry is removed at most once, and only
    /// keys of removed entries are expanded, so the cost is proportional to what is removed.
    pub fn invalidate(&mut self, key: &[u8], hash: u64, now: u64) -> usize {
        let mut removed = 0;
        if let Some(i) = self.find(key, hash) {
            removed += self.invalidate_slot(i, hash, now);
        }
        if self.deps.is_empty() {
            self.stats.invalidations += removed as u64;
            return removed;
        }
        // work list of keys whose dependents must go; removed entries are the visited set
        let mut todo: Vec<KeyBytes> = vec![KeyBytes::new(key)];
        while let Some(k) = todo.pop() {
            let kb = k.as_slice();
            for child in self.deps.dependents(kb, fast_hash(kb)) {
                let slot = &self.slots[child as usize];
                if slot.value.is_none() {
                    continue; // already removed via another path in this sweep
                }
                let child_key = slot.key.clone();
                let child_hash = fast_hash(child_key.as_slice());
                removed += self.invalidate_slot(child, child_hash, now);
                todo.push(child_key);
            }
        }
        self.stats.invalidations += removed as u64;
        removed
    }

    /// Remove slot `i` for `invalidate`: 1 if it was live, 0 if it had expired.
    fn invalidate_slot(&mut self, i: u32, hash: u64, now: u64) -> usize {
        if Self::is_expired(&self.slots[i as usize], now) {
            self.remove_slot(i, hash, Why::Expire);
            self.stats.expirations += 1;
            0
        } else {
            self.remove_slot(i, hash, Why::Invalidate);
            1
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
    #[inline]
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
        self.insert_ext(key, hash, value, weight, ttl, group, now, &WriteExt::PLAIN)
    }

    /// [`Store::insert`] with dependencies, a content hash or the warm-up flag. A rewrite
    /// replaces the entry's previous extras and dependencies.
    #[allow(clippy::too_many_arguments)] // each is one independent fact about the write
    pub fn insert_ext(
        &mut self,
        key: &[u8],
        hash: u64,
        value: V,
        weight: u64,
        ttl: Ttl,
        group: u32,
        now: u64,
        ext: &WriteExt<'_>,
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
        let i = if let Some(i) = self.find(key, hash) {
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
            if self.has_meta {
                self.drop_meta(i, true);
            }
            i
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
            i
        };
        if !ext.is_plain() {
            self.set_meta(i, ext);
        }
        if self.watch {
            if ext.warmup {
                self.emit(EventKind::Warmup, key, None);
            } else {
                self.watch_access(EventKind::Write, key, hash);
            }
        }
        self.enforce_limits();
        self.compact_expiry();
        Ok(())
    }

    #[inline(never)]
    fn set_meta(&mut self, i: u32, ext: &WriteExt<'_>) {
        self.has_meta = true;
        if !ext.depends_on.is_empty() {
            self.deps.link(i, ext.depends_on);
        }
        if ext.content_hash.is_some() || ext.warmup {
            let n = self.slots.len();
            if self.extra.len() < n {
                self.extra.resize_with(n, Extra::default);
            }
            self.extra[i as usize] = Extra {
                content_hash: ext.content_hash.map(Box::from),
                warmup: ext.warmup,
            };
        }
        if ext.warmup {
            self.stats.warmups += 1;
            self.warm_pending += 1;
            self.rewatch();
        }
    }

    /// Forget slot `i`'s extras and dependency edges; with `keep_chains`, entries depending
    /// on it first inherit its parents (see [`Deps::inherit`]).
    #[inline(never)]
    fn drop_meta(&mut self, i: u32, keep_chains: bool) {
        if !self.deps.is_empty() {
            if keep_chains {
                self.deps.inherit(self.slots[i as usize].key.as_slice(), i);
            }
            self.deps.unlink(i);
        }
        if let Some(x) = self.extra.get_mut(i as usize) {
            x.content_hash = None;
            if std::mem::take(&mut x.warmup) {
                self.warm_pending -= 1;
                self.rewatch();
            }
        }
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
            let Some(v) = self.policy.victim() else {
                break;
            };
            let hash = fast_hash(self.slots[v as usize].key.as_slice());
            self.remove_slot(v, hash, Why::Evict);
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

    /// Remove the entry in slot `i` (whose key hashes to `hash`): its value goes to the
    /// graveyard, or with the event's notice when `why` makes a subscribed event.
    fn remove_slot(&mut self, i: u32, hash: u64, why: Why) {
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.policy.on_remove(i);
        if self.has_meta {
            // an invalidation sweep removes the dependents too: nothing to keep
            self.drop_meta(i, why != Why::Invalidate);
        }
        let slot = &mut self.slots[i as usize];
        let value = slot.value.take();
        if slot.expires != 0 {
            self.ttl_entries -= 1;
        }
        slot.expires = 0;
        self.weight -= u64::from(slot.weight);
        slot.weight = 0;
        let group = slot.group;
        let key = std::mem::replace(&mut slot.key, KeyBytes::new(&[]));
        self.group_dec(group);
        self.len -= 1;
        self.free.push(i);
        if let Some(v) = value {
            match why.event() {
                Some(kind) if self.watch => self.emit(kind, key.as_slice(), Some(v)),
                _ => self.graveyard.push(v),
            }
        }
    }

    /// Remove `key`. Returns whether a live entry was there (an expired one is removed
    /// too, counted as an expiration, and reported as absent).
    pub fn remove(&mut self, key: &[u8], hash: u64, now: u64) -> bool {
        match self.find(key, hash) {
            Some(i) => {
                let live = !Self::is_expired(&self.slots[i as usize], now);
                self.remove_slot(i, hash, if live { Why::Remove } else { Why::Expire });
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
        self.remove_slot(i, hash, if live { Why::Remove } else { Why::Expire });
        if live {
            self.stats.removals += 1;
            self.graveyard.pop()
        } else {
            self.stats.expirations += 1;
            None
        }
    }

    /// Remove every entry whose TTL has passed. Amortised O(log n) per expired entry.
    #[inline]
    pub fn purge_expired(&mut self, now: u64) -> usize {
        match self.expiry.peek() {
            Some(&Reverse((deadline, _))) if deadline <= now => self.purge_expired_slow(now),
            _ => 0,
        }
    }

    #[inline(never)]
    fn purge_expired_slow(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(&Reverse((deadline, i))) = self.expiry.peek() {
            if deadline > now {
                break;
            }
            self.expiry.pop();
            let slot = &self.slots[i as usize];
            if slot.value.is_some() && slot.expires == deadline {
                let hash = fast_hash(slot.key.as_slice());
                self.remove_slot(i, hash, Why::Expire);
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
            self.remove_slot(i, hash, Why::Remove);
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
        self.extra.clear();
        self.deps.clear();
        self.has_meta = false;
        self.warm_pending = 0;
        self.rewatch();
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

    /// Every live entry with its extras and dependencies, coldest first (so writing them
    /// back in order into an empty store reproduces the recency order).
    pub fn dump(&self, now: u64) -> Vec<Dumped<'_, V>> {
        let mut order = self.policy.hottest(self.len);
        if order.len() != self.len {
            order = (0..self.slots.len() as u32)
                .filter(|&i| self.slots[i as usize].value.is_some())
                .collect();
        } else {
            order.reverse();
        }
        let mut out = Vec::with_capacity(order.len());
        for i in order {
            let slot = &self.slots[i as usize];
            let Some(value) = slot.value.as_ref() else {
                continue;
            };
            if Self::is_expired(slot, now) {
                continue;
            }
            out.push(Dumped {
                key: slot.key.as_slice(),
                value,
                group: slot.group,
                ttl_left: (slot.expires != 0).then(|| slot.expires - now),
                content_hash: self.content_hash_of(i),
                parents: self.deps.parents(i),
            });
        }
        out
    }

    /// The stored content hash and dependencies (parent key bytes) of `key`.
    pub fn meta_of(&self, key: &[u8], hash: u64) -> Option<EntryMeta<'_>> {
        let i = self.find(key, hash)?;
        Some((self.content_hash_of(i), self.deps.parents(i)))
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
        let slots = &self.slots;
        self.deps
            .check(|c| slots.get(c as usize).is_some_and(|s| s.value.is_some()))?;
        let mut warm = 0;
        for (i, x) in self.extra.iter().enumerate() {
            let live = slots.get(i).is_some_and(|s| s.value.is_some());
            if !live && (x.warmup || x.content_hash.is_some()) {
                return Err(format!("extras left on vacant slot {i}"));
            }
            warm += usize::from(x.warmup);
        }
        if warm != self.warm_pending {
            return Err(format!(
                "{} warm-up flags but {} pending",
                warm, self.warm_pending
            ));
        }
        let watch =
            self.ring.is_some() || self.notify != 0 || self.learning || self.warm_pending > 0;
        if watch != self.watch {
            return Err(format!("watch flag {} but should be {}", self.watch, watch));
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

    fn put_full(s: &mut Store<u64>, n: u64, parents: &[u64], ttl: Ttl, group: u32, now: u64) {
        let k = key(n);
        let deps: Vec<Vec<u8>> = parents.iter().map(|&p| key(p)).collect();
        let ext = WriteExt {
            depends_on: &deps,
            ..WriteExt::PLAIN
        };
        s.insert_ext(&k, fast_hash(&k), n, 8, ttl, group, now, &ext)
            .expect("insert");
    }

    fn put_ext(s: &mut Store<u64>, n: u64, parents: &[u64], ttl: Ttl, now: u64) {
        put_full(s, n, parents, ttl, 0, now);
    }

    fn invalidate(s: &mut Store<u64>, n: u64, now: u64) -> usize {
        let k = key(n);
        s.invalidate(&k, fast_hash(&k), now)
    }

    fn live(s: &mut Store<u64>, n: u64) -> bool {
        let k = key(n);
        s.peek(&k, fast_hash(&k), 0).is_some()
    }

    #[test]
    fn invalidate_removes_transitive_dependents_only() {
        let mut s: Store<u64> = Store::new(Config::default());
        // 1 <- 2 <- 3, 1 <- 4, 5 independent, 6 depends on unstored 100
        put(&mut s, 1, 0);
        put_ext(&mut s, 2, &[1], Ttl::Default, 0);
        put_ext(&mut s, 3, &[2], Ttl::Default, 0);
        put_ext(&mut s, 4, &[1, 100], Ttl::Default, 0);
        put(&mut s, 5, 0);
        put_ext(&mut s, 6, &[100], Ttl::Default, 0);
        s.check_invariants().expect("invariants");
        assert_eq!(invalidate(&mut s, 2, 0), 2);
        assert!(!live(&mut s, 2) && !live(&mut s, 3));
        assert!(live(&mut s, 1) && live(&mut s, 4));
        // a parent that is not stored still invalidates its dependents
        assert_eq!(invalidate(&mut s, 100, 0), 2);
        assert!(!live(&mut s, 4) && !live(&mut s, 6));
        assert!(live(&mut s, 1) && live(&mut s, 5));
        assert_eq!(invalidate(&mut s, 100, 0), 0);
        assert_eq!(s.stats().invalidations, 4);
        assert!(s.deps.is_empty(), "records of removed entries are gone");
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn invalidate_handles_cycles_and_self_dependencies() {
        let mut s: Store<u64> = Store::new(Config::default());
        put_ext(&mut s, 1, &[3], Ttl::Default, 0);
        put_ext(&mut s, 2, &[1], Ttl::Default, 0);
        put_ext(&mut s, 3, &[2, 3], Ttl::Default, 0);
        put_ext(&mut s, 4, &[4], Ttl::Default, 0);
        assert_eq!(invalidate(&mut s, 2, 0), 3);
        assert!(s.deps.edges() == 1);
        assert_eq!(invalidate(&mut s, 4, 0), 1);
        assert!(s.is_empty() && s.deps.is_empty());
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn dependency_records_follow_every_removal_path() {
        let sec = 1_000_000_000u64;
        let mut s: Store<u64> = Store::new(Config {
            max_entries: Some(50),
            ..Config::default()
        });
        // eviction: far more dependents than fit
        for n in 0..1000 {
            put_ext(&mut s, 1000 + n, &[1, n % 7], Ttl::Default, 0);
            assert!(s.deps.edges() <= 2 * 50);
        }
        s.check_invariants().expect("invariants");
        assert!(s.stats().evictions > 0);
        // expiry (read, purge and write-time purge)
        s.clear();
        for n in 0..40 {
            put_ext(&mut s, n, &[999], Ttl::After(sec), 0);
        }
        assert_eq!(get(&mut s, 0, 2 * sec), None);
        s.purge_expired(2 * sec);
        assert!(s.deps.is_empty());
        // overwrite replaces the dependencies; remove / take / remove_group drop them
        put_ext(&mut s, 1, &[2, 3], Ttl::Default, 0);
        put_ext(&mut s, 1, &[4], Ttl::Default, 0);
        assert_eq!(invalidate(&mut s, 2, 0), 0, "old dependency forgotten");
        assert!(live(&mut s, 1));
        put(&mut s, 1, 0);
        assert!(s.deps.is_empty(), "a plain rewrite has no dependencies");
        put_ext(&mut s, 1, &[9], Ttl::Default, 0);
        let k = key(1);
        assert!(s.remove(&k, fast_hash(&k), 0));
        put_ext(&mut s, 1, &[9], Ttl::Default, 0);
        assert_eq!(s.take(&k, fast_hash(&k), 0), Some(1));
        put_ext(&mut s, 1, &[9], Ttl::Default, 0);
        s.remove_group(0);
        assert!(s.deps.is_empty());
        put_ext(&mut s, 1, &[9], Ttl::Default, 0);
        s.clear();
        assert!(s.deps.is_empty());
        s.check_invariants().expect("invariants");
        // a reused slot does not inherit dependencies
        put(&mut s, 2, 0);
        assert_eq!(invalidate(&mut s, 9, 0), 0);
        assert!(live(&mut s, 2));
    }

    #[test]
    fn chains_survive_the_intermediate_leaving_by_any_path() {
        let sec = 1_000_000_000u64;
        // C (3) depends on B (2), which depends on A (1); B leaves, then A is invalidated:
        // C must go too, however B left
        for how in [
            "evict",
            "expire",
            "remove",
            "take",
            "overwrite",
            "stale",
            "group",
        ] {
            let mut s: Store<u64> = Store::new(Config {
                max_entries: Some(3),
                policy: PolicyKind::Lru,
                ..Config::default()
            });
            put(&mut s, 1, 0);
            let b_ttl = if how == "expire" {
                Ttl::After(sec)
            } else {
                Ttl::Default
            };
            let b_group = if how == "group" { 5 } else { 0 };
            put_full(&mut s, 2, &[1], b_ttl, b_group, 0);
            put_ext(&mut s, 3, &[2], Ttl::Default, 0);
            let kb = key(2);
            let hb = fast_hash(&kb);
            let mut now = 0;
            match how {
                "evict" => {
                    get(&mut s, 1, 0);
                    get(&mut s, 3, 0);
                    put(&mut s, 4, 0); // LRU victim: 2
                }
                "expire" => {
                    now = 2 * sec;
                    s.purge_expired(now);
                }
                "remove" => assert!(s.remove(&kb, hb, 0)),
                "take" => assert_eq!(s.take(&kb, hb, 0), Some(2)),
                "overwrite" => put_ext(&mut s, 2, &[9], Ttl::Default, 0),
                "stale" => assert!(s.get_checked(&kb, hb, 0, b"x").is_none()),
                _ => assert_eq!(s.remove_group(5), 1),
            }
            assert!(
                s.peek(&kb, hb, now).is_none() || how == "overwrite",
                "{how}: B gone"
            );
            assert!(live(&mut s, 3), "{how}: C still stored");
            s.check_invariants().expect("invariants");
            invalidate(&mut s, 1, now);
            assert!(!live(&mut s, 3), "{how}: C outlived A's invalidation");
            s.check_invariants().expect("invariants");
        }
    }

    #[test]
    fn expired_dependents_count_as_expirations_but_still_propagate() {
        let mut s: Store<u64> = Store::new(Config::default());
        put(&mut s, 1, 0);
        put_ext(&mut s, 2, &[1], Ttl::After(10), 0);
        put_ext(&mut s, 3, &[2], Ttl::Default, 0);
        assert_eq!(invalidate(&mut s, 1, 100), 2, "1 and 3 live, 2 expired");
        assert_eq!(s.stats().expirations, 1);
        assert!(s.is_empty());
    }

    #[test]
    fn content_hash_mismatch_is_a_miss_and_drops_the_entry() {
        let mut s: Store<u64> = Store::new(Config::default());
        let k = key(1);
        let h = fast_hash(&k);
        let ext = WriteExt {
            content_hash: Some(b"v1"),
            ..WriteExt::PLAIN
        };
        s.insert_ext(&k, h, 1, 8, Ttl::Default, 0, 0, &ext)
            .expect("insert");
        assert_eq!(s.get_checked(&k, h, 0, b"v1").copied(), Some(1));
        assert_eq!(s.meta_of(&k, h).map(|m| m.0), Some(Some(&b"v1"[..])));
        assert_eq!(s.get_checked(&k, h, 0, b"v2").copied(), None);
        assert_eq!(s.get(&k, h, 0).copied(), None, "dropped, not served later");
        // an entry without a hash fails any check
        put(&mut s, 2, 0);
        let k2 = key(2);
        assert_eq!(s.get_checked(&k2, fast_hash(&k2), 0, b"v1").copied(), None);
        let st = s.stats();
        assert_eq!((st.hits, st.misses, st.invalidations), (1, 3, 2));
        assert_eq!(s.take_graveyard().len(), 2);
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn events_log_in_order_and_notices_carry_removed_values() {
        let mut s: Store<u64> = Store::new(Config {
            max_entries: Some(2),
            policy: PolicyKind::Lru,
            ..Config::default()
        });
        s.set_event_log(100);
        s.set_notify(EventKind::Evict.bit() | EventKind::Invalidate.bit());
        put(&mut s, 1, 0);
        put(&mut s, 2, 0);
        assert_eq!(get(&mut s, 1, 0), Some(1));
        assert_eq!(get(&mut s, 7, 0), None);
        put(&mut s, 3, 0); // evicts 2 (LRU)
        invalidate(&mut s, 3, 0);
        let kinds: Vec<(EventKind, Vec<u8>)> = s
            .events(None)
            .iter()
            .map(|e| (e.kind, e.key.clone()))
            .collect();
        use EventKind::*;
        assert_eq!(
            kinds,
            vec![
                (Write, key(1)),
                (Write, key(2)),
                (Hit, key(1)),
                (Miss, key(7)),
                (Write, key(3)),
                (Evict, key(2)),
                (Invalidate, key(3)),
            ]
        );
        assert_eq!(s.events(Some(2)).len(), 2);
        let notices = s.take_notices();
        let got: Vec<(EventKind, Option<u64>)> =
            notices.iter().map(|n| (n.kind, n.value)).collect();
        assert_eq!(got, vec![(Evict, Some(2)), (Invalidate, Some(3))]);
        assert!(notices.iter().all(|n| n.time > 1.0e9));
        assert!(!s.has_outbox());
        s.set_event_log(0);
        s.set_notify(0);
        assert!(!s.watch);
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn warmups_count_prediction_hits_once() {
        let mut s: Store<u64> = Store::new(Config::default());
        let k = key(1);
        let h = fast_hash(&k);
        let warm = WriteExt {
            warmup: true,
            ..WriteExt::PLAIN
        };
        s.insert_ext(&k, h, 1, 8, Ttl::Default, 0, 0, &warm)
            .expect("insert");
        let k2 = key(2);
        s.insert_ext(&k2, fast_hash(&k2), 2, 8, Ttl::Default, 0, 0, &warm)
            .expect("insert");
        assert!(s.watch);
        assert_eq!(get(&mut s, 1, 0), Some(1));
        assert_eq!(get(&mut s, 1, 0), Some(1));
        // 2 is overwritten by a normal write before any hit: no prediction hit
        put(&mut s, 2, 0);
        assert_eq!(get(&mut s, 2, 0), Some(2));
        let st = s.stats();
        assert_eq!((st.warmups, st.prediction_hits), (2, 1));
        assert!(!s.watch, "nothing left to watch");
        s.check_invariants().expect("invariants");
    }

    #[test]
    fn learning_records_lookups_and_writes_and_predicts() {
        let mut s: Store<u64> = Store::new(Config::default());
        assert!(s.predict(&key(1), fast_hash(&key(1)), 3).is_empty());
        s.set_learning(true);
        for _ in 0..3 {
            put(&mut s, 1, 0);
            get(&mut s, 2, 0);
            get(&mut s, 3, 0);
        }
        get(&mut s, 1, 0);
        get(&mut s, 4, 0);
        let k = key(1);
        let p: Vec<Vec<u8>> = s
            .predict(&k, fast_hash(&k), 3)
            .iter()
            .map(|kb| kb.as_slice().to_vec())
            .collect();
        assert_eq!(p, vec![key(2), key(4)]);
        s.set_learning(false);
        get(&mut s, 1, 0);
        get(&mut s, 9, 0);
        assert_eq!(
            s.predict(&k, fast_hash(&k), 3).len(),
            2,
            "kept, not learning"
        );
        // warm-up writes are not accesses
        s.set_learning(true);
        let k5 = key(5);
        let warm = WriteExt {
            warmup: true,
            ..WriteExt::PLAIN
        };
        get(&mut s, 1, 0);
        s.insert_ext(&k5, fast_hash(&k5), 5, 8, Ttl::Default, 0, 0, &warm)
            .expect("insert");
        get(&mut s, 2, 0);
        let p = s.predict(&k, fast_hash(&k), 8);
        assert!(p.iter().all(|kb| kb.as_slice() != key(5)));
    }

    #[test]
    fn dump_reports_extras_coldest_first() {
        let mut s: Store<u64> = Store::new(Config {
            max_entries: Some(10),
            policy: PolicyKind::Lru,
            ..Config::default()
        });
        put(&mut s, 1, 0);
        put_ext(&mut s, 2, &[1, 7], Ttl::After(100), 0);
        let k3 = key(3);
        let ext = WriteExt {
            content_hash: Some(b"h"),
            ..WriteExt::PLAIN
        };
        s.insert_ext(&k3, fast_hash(&k3), 3, 8, Ttl::Default, 4, 0, &ext)
            .expect("insert");
        get(&mut s, 1, 0);
        let d = s.dump(40);
        let keys: Vec<&[u8]> = d.iter().map(|e| e.key).collect();
        assert_eq!(keys, vec![&key(2)[..], &key(3)[..], &key(1)[..]]);
        assert_eq!(d[0].ttl_left, Some(60));
        let mut parents = d[0].parents.clone();
        parents.sort_unstable();
        assert_eq!(parents, vec![&key(1)[..], &key(7)[..]]);
        assert_eq!((d[1].group, d[1].content_hash), (4, Some(&b"h"[..])));
        assert_eq!((d[2].ttl_left, d[2].content_hash), (None, None));
        assert_eq!(s.dump(200).len(), 2, "expired entries are not dumped");
    }
}
