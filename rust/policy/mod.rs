//! Eviction policies: which entry leaves when the store is over its limits.
//!
//! Entries are slot indices kept in intrusive doubly-linked queues (`list.rs`), so every
//! operation is O(1) amortised: no scan over entries ever happens.
//!
//! * `"adaptive"` ([`PolicyKind::TinyLfu`], the default): W-TinyLFU with an adaptive window.
//!   New entries enter an LRU *window* (recency); entries leaving the window are *candidates*
//!   that must beat the main region's LRU victim on estimated frequency (a count-min
//!   [`sketch::Sketch`] with ageing) to be admitted; the main region is a segmented LRU
//!   (probation → protected on re-use). The window's share adapts to the workload from ghost
//!   evidence (`ghost.rs`): a miss on a key that recently left the window grows the window, a
//!   miss on a key recently evicted from the main region shrinks it (ARC's idea applied to the
//!   W-TinyLFU split), with steps that double while the evidence keeps pointing the same way.
//!   A big window behaves like LRU (recency-heavy workloads), a small one like frequency-gated
//!   LFU (loops, scans, skewed popularity). The sketch starts counting once the cache is half
//!   full (a byte-bounded one: at once), crediting each entry loaded until then with one use,
//!   so a burst of hits while loading does not look like lasting popularity. A warm
//!   candidate that loses its duel is still admitted one time in 128, at random, so crafted
//!   keys cannot keep hot entries out (hash-flooding defence, as in Caffeine).
//! * `"lru"` ([`PolicyKind::Lru`]): one queue, least recently used first out.
//! * `"lfu"` ([`PolicyKind::Lfu`]): exact in-cache LFU with frequency buckets (`lfu.rs`): the
//!   victim is the least recently used entry among the least used; counts start at 1 when an
//!   entry is stored and are forgotten when it leaves; there is no ageing. A new entry is
//!   never its own victim.
//!
//! Costs per operation: a hit updates the queues and, for `"adaptive"`, increments the sketch
//! (four counters); a miss also looks the key up in the ghost lists and may nudge the window,
//! moving at most a few entries between regions. Nothing scans entries, except two one-off
//! steps amortised over many operations: sketch ageing (once per ~10 × capacity counts) and
//! the warm-up credit (once per store, over the entries loaded until half full).
//!
//! Large values (byte-bounded stores): under `"adaptive"`, a new entry weighing more than half
//! of `max_bytes` duels each entry it would displace and stays only while its estimated
//! frequency is strictly higher; otherwise it is the one evicted, so one big write cannot flush
//! a cache of hotter entries. Under `"lfu"` a new entry starts as the least used, so it can
//! only displace entries used once; `"lru"` evicts by recency only.

mod ghost;
mod lfu;
mod list;
pub mod sketch;

#[cfg(test)]
mod replay;
#[cfg(test)]
mod tests;

use ghost::{Departed, Ghosts};
use lfu::Lfu;
pub use list::NIL;
use list::{Node, Queue, EMPTY_NODE, EMPTY_QUEUE};
use sketch::Sketch;

const WINDOW: u8 = 0;
const CANDIDATE: u8 = 1;
const PROBATION: u8 = 2;
const PROTECTED: u8 = 3;
/// The slot is in an LFU frequency bucket.
const BUCKETED: u8 = 4;
const DETACHED: u8 = 255;

/// Entries moved between regions per insert while the window catches up with its target.
const REBALANCE_PER_OP: usize = 4;

/// Which eviction policy a store uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// `"adaptive"`: window TinyLFU with an adaptive window (the default).
    TinyLfu,
    /// `"lru"`: least recently used.
    Lru,
    /// `"lfu"`: least frequently used (exact in-cache counts, ties by recency).
    Lfu,
}

/// The policy names users pass, the default first.
pub const NAMES: [&str; 3] = ["adaptive", "lru", "lfu"];

impl PolicyKind {
    /// Every policy, in the order of [`NAMES`].
    pub const ALL: [PolicyKind; 3] = [PolicyKind::TinyLfu, PolicyKind::Lru, PolicyKind::Lfu];

    /// Parse a policy name as users write it (one of [`NAMES`]).
    pub fn parse(name: &str) -> Option<PolicyKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::TinyLfu => NAMES[0],
            PolicyKind::Lru => NAMES[1],
            PolicyKind::Lfu => NAMES[2],
        }
    }

    /// The names for an error message: `'adaptive' (default), 'lru', 'lfu'`.
    pub fn names_for_error() -> String {
        let mut out = String::new();
        for (i, n) in NAMES.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("'{n}'"));
            if i == 0 {
                out.push_str(" (default)");
            }
        }
        out
    }
}

/// Parameters of the adaptive policy. [`Tuning::default`] is what stores use (measured on the
/// traces of `benches/hitratio.py`); the fields are public for the replay harness.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tuning {
    /// Initial window share of the capacity.
    pub window: f64,
    /// Protected segment's share of the main region.
    pub protected: f64,
    /// Sketch size: 64-bit words (16 counters) per entry of capacity...
    pub sketch_words: f64,
    /// ...but at least this many words (small caches get a roomier sketch: 8 KiB).
    pub sketch_min_words: usize,
    /// Sketch ageing period, in multiples of the capacity...
    pub age_factor: f64,
    /// ...but at least this many increments (so loops longer than a small cache still age
    /// slower than they repeat).
    pub age_min: u64,
    /// Start counting frequencies once the cache holds this share of its capacity; the
    /// entries present then are credited one use each.
    pub warm: f64,
    /// Ghost memory per side, as a share of the capacity.
    pub ghost: f64,
    /// First window step per ghost hit, in entries.
    pub step: f64,
    /// Each further ghost hit in the same direction multiplies the step by this...
    pub accel: f64,
    /// ...up to this share of the capacity...
    pub max_step: f64,
    /// ...and at most this many entries.
    pub max_step_abs: f64,
    /// Randomly admit one in 128 warm candidates that lost their duel.
    pub jitter: bool,
    /// Sketch salt (`None`: random per store).
    pub seed: Option<u64>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            window: 0.01,
            protected: 0.8,
            sketch_words: 0.5,
            sketch_min_words: 1024,
            age_factor: 10.0,
            age_min: 1400,
            warm: 0.5,
            ghost: 0.03,
            step: 1.0,
            accel: 2.0,
            max_step: 0.01,
            max_step_abs: 16.0,
            jitter: true,
            seed: None,
        }
    }
}

/// A random 64-bit value (a fresh `RandomState`'s hash of nothing), for salting.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A strong 64-bit mix (splitmix64's finaliser).
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A slot's 32-bit fingerprint for the ghost filters.
#[inline]
fn fingerprint(hash: u64) -> u32 {
    (hash >> 32) as u32 ^ hash as u32
}

/// The sketch key of a key hash: its fingerprint (so slots can be counted from what the
/// policy stores).
#[inline]
fn skey(hash: u64) -> u64 {
    u64::from(fingerprint(hash))
}

/// State of the adaptive policy beyond the queues (absent for `"lru"` and `"lfu"`, and for
/// unbounded stores).
#[derive(Debug)]
struct Adaptive {
    tuning: Tuning,
    capacity: usize,
    /// Created once the cache is warm (see [`Tuning::warm`]).
    sketch: Option<Sketch>,
    ghosts: Ghosts,
    /// The window size the adaptation aims at (fractional; the window holds its rounding).
    target: f64,
    step: f64,
    direction: i8,
    /// Misses seen (salts the admission jitter).
    misses: u32,
    /// Between an insert and `settle`: removals are evictions (they feed the ghosts).
    evicting: bool,
}

/// The policy state for one store.
#[derive(Debug)]
pub struct Policy {
    kind: PolicyKind,
    nodes: Vec<Node>,
    queue_of: Vec<u8>,
    queues: [Queue; 4],
    adaptive: Option<Box<Adaptive>>,
    lfu: Option<Box<Lfu>>,
    tuning: Tuning,
    seed: u64,
    window_max: usize,
    protected_max: usize,
    /// A just-inserted entry heavier than half the byte budget (until `settle`).
    large: u32,
    /// The entry just inserted (until `settle`).
    fresh: u32,
}

impl Policy {
    /// A policy for a store of at most `capacity` entries (`None`: unbounded, so the policy
    /// only orders entries and keeps no frequency sketch).
    pub fn new(kind: PolicyKind, capacity: Option<usize>) -> Self {
        Self::with_tuning(kind, capacity, Tuning::default())
    }

    /// [`Policy::new`] with explicit parameters for the adaptive policy.
    pub fn with_tuning(kind: PolicyKind, capacity: Option<usize>, tuning: Tuning) -> Self {
        let mut p = Policy {
            kind,
            nodes: Vec::new(),
            queue_of: Vec::new(),
            queues: [EMPTY_QUEUE; 4],
            adaptive: None,
            lfu: (kind == PolicyKind::Lfu).then(|| Box::new(Lfu::new())),
            tuning,
            seed: tuning.seed.unwrap_or_else(random_u64),
            window_max: usize::MAX,
            protected_max: usize::MAX,
            large: NIL,
            fresh: NIL,
        };
        p.resize(capacity);
        p
    }

    /// The policy kind.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The current window size limit (adaptive policy; `usize::MAX` otherwise).
    pub fn window_max(&self) -> usize {
        self.window_max
    }

    /// Re-plan the regions for a new capacity estimate. Called at construction and by
    /// byte-bounded stores as their entry count grows; the window keeps its share.
    pub fn resize(&mut self, capacity: Option<usize>) {
        let (PolicyKind::TinyLfu, Some(cap)) = (self.kind, capacity) else {
            self.window_max = usize::MAX;
            self.protected_max = usize::MAX;
            self.adaptive = None;
            return;
        };
        let cap = cap.max(1);
        let t = self.tuning;
        // at most 65,536 departures per side (4 MiB of ghosts): a huge `max_entries` must not
        // allocate for a capacity it may never reach
        let ghosts = Ghosts::new(((t.ghost * cap as f64) as usize).clamp(2, 1 << 16));
        match self.adaptive.as_mut() {
            Some(a) => {
                let scale = cap as f64 / a.capacity as f64;
                a.target *= scale;
                a.capacity = cap;
                a.ghosts = ghosts;
                let need = (cap as f64 * t.sketch_words) as usize;
                if a.sketch.as_ref().is_some_and(|s| s.words() * 2 <= need) {
                    a.sketch = Some(Self::sketch_for(cap, &t, self.seed));
                }
            }
            None => {
                self.adaptive = Some(Box::new(Adaptive {
                    tuning: t,
                    capacity: cap,
                    sketch: None,
                    ghosts,
                    target: t.window * cap as f64,
                    step: t.step,
                    direction: 0,
                    misses: 0,
                    evicting: false,
                }));
            }
        }
        self.set_limits();
    }

    fn sketch_for(cap: usize, t: &Tuning, seed: u64) -> Sketch {
        let age = ((t.age_factor * cap as f64) as u64).max(t.age_min);
        Sketch::new(cap, t.sketch_words, t.sketch_min_words, age, seed)
    }

    /// Bytes the policy holds for its own bookkeeping per tracked slot, plus the sketch.
    pub fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.queue_of.capacity()
            + self
                .adaptive
                .as_ref()
                .map(|a| {
                    a.sketch.as_ref().map(|s| s.words() * 8).unwrap_or(0) + a.ghosts.memory_bytes()
                })
                .unwrap_or(0)
            + self.lfu.as_ref().map(|l| l.memory_bytes()).unwrap_or(0)
    }

    fn unlink(&mut self, i: u32) {
        let queue = self.queue_of[i as usize];
        debug_assert!(queue < BUCKETED);
        list::unlink(&mut self.nodes, &mut self.queues[queue as usize], i);
        self.queue_of[i as usize] = DETACHED;
    }

    fn push_tail(&mut self, i: u32, queue: u8) {
        list::push_tail(&mut self.nodes, &mut self.queues[queue as usize], i);
        self.queue_of[i as usize] = queue;
    }

    fn move_to(&mut self, i: u32, queue: u8) {
        self.unlink(i);
        self.push_tail(i, queue);
    }

    fn len_of(&self, queue: u8) -> usize {
        self.queues[queue as usize].len
    }

    fn head_of(&self, queue: u8) -> u32 {
        self.queues[queue as usize].head
    }

    /// A new entry at slot `i` with key hash `hash`.
    pub fn on_insert(&mut self, i: u32, hash: u64) {
        let idx = i as usize;
        if self.nodes.len() <= idx {
            self.nodes.resize(idx + 1, EMPTY_NODE);
            self.queue_of.resize(idx + 1, DETACHED);
        }
        self.fresh = i;
        if let Some(lfu) = self.lfu.as_mut() {
            lfu.insert(&mut self.nodes, i);
            self.queue_of[idx] = BUCKETED;
            return;
        }
        if self.adaptive.is_some() {
            self.adaptive_insert(idx, hash);
        }
        self.push_tail(i, WINDOW);
        // window overflow becomes candidates for admission into the main region
        while self.len_of(WINDOW) > self.window_max {
            let h = self.head_of(WINDOW);
            if let Some(a) = self.adaptive.as_mut() {
                a.ghosts.record(self.nodes[h as usize].fp, Departed::Window);
            }
            self.move_to(h, CANDIDATE);
            if self.len_of(CANDIDATE) >= 2 {
                break; // the rest leaves on later inserts (see `rebalance`)
            }
        }
    }

    /// The adaptive policy's work on a miss: count the key, learn from the ghosts, keep the
    /// regions moving toward their targets.
    fn adaptive_insert(&mut self, idx: usize, hash: u64) {
        let tracked = self.tracked();
        let Some(a) = self.adaptive.as_mut() else {
            return;
        };
        if a.sketch.is_none() && tracked as f64 >= a.tuning.warm * a.capacity as f64 {
            self.start_counting(tracked);
        }
        let Some(a) = self.adaptive.as_mut() else {
            return;
        };
        let fp = fingerprint(hash);
        self.nodes[idx].fp = fp;
        a.evicting = true;
        a.misses = a.misses.wrapping_add(1);
        if let Some(s) = a.sketch.as_mut() {
            s.increment(skey(hash));
        }
        let direction = match a.ghosts.departed(fp) {
            Some(Departed::Main) => -1,
            Some(Departed::Window) => 1,
            None => 0,
        };
        if direction != 0 {
            let t = &a.tuning;
            a.step = if direction == a.direction {
                (a.step * t.accel).min(
                    t.step
                        .max((t.max_step * a.capacity as f64).min(t.max_step_abs)),
                )
            } else {
                t.step
            };
            a.direction = direction;
            // the main region keeps at least the ghosts' share, so it keeps evicting and
            // feeding the evidence that can bring a grown window back
            a.target = (a.target + f64::from(direction) * a.step)
                .clamp(0.0, a.capacity as f64 * (1.0 - t.ghost));
            self.set_limits();
        }
        self.rebalance();
    }

    /// The cache is warm: create the sketch and credit each entry loaded while there was room
    /// with one use, whatever its hits during the fill (a burst of loading is not lasting
    /// popularity, but those entries were wanted once). Once per store: O(entries), amortised
    /// over the inserts of the fill.
    fn start_counting(&mut self, tracked: usize) {
        let mut slots = Vec::with_capacity(tracked);
        for q in [WINDOW, CANDIDATE, PROBATION, PROTECTED] {
            let mut j = self.queues[q as usize].head;
            while j != NIL {
                slots.push(j);
                j = self.nodes[j as usize].next;
            }
        }
        if let Some(a) = self.adaptive.as_mut() {
            let mut s = Self::sketch_for(a.capacity, &a.tuning, self.seed);
            for j in slots {
                s.increment(u64::from(self.nodes[j as usize].fp));
            }
            a.sketch = Some(s);
        }
    }

    /// Set the region limits from the adaptation's target.
    fn set_limits(&mut self) {
        if let Some(a) = self.adaptive.as_ref() {
            let cap = a.capacity;
            let w = (a.target.round() as usize).clamp(1, cap);
            self.window_max = w;
            self.protected_max = ((cap - w) as f64 * a.tuning.protected) as usize;
        }
    }

    /// Move a few entries toward the limits: a smaller window hands its oldest entries to
    /// probation, a bigger one takes the main region's oldest (when the cache is full), and
    /// protected overflow is demoted. At most `REBALANCE_PER_OP` moves each, so the window
    /// follows a big change over several operations and every operation stays O(1).
    fn rebalance(&mut self) {
        for _ in 0..REBALANCE_PER_OP {
            if self.len_of(WINDOW) <= self.window_max {
                break;
            }
            self.move_to(self.head_of(WINDOW), PROBATION);
        }
        let full = self.adaptive.as_ref().map(|a| a.capacity).unwrap_or(0) <= self.tracked();
        for _ in 0..REBALANCE_PER_OP {
            if !full || self.len_of(WINDOW) >= self.window_max {
                break;
            }
            let from = self.main_lru();
            if from == NIL {
                break;
            }
            self.move_to(from, WINDOW);
        }
        for _ in 0..REBALANCE_PER_OP {
            if self.len_of(PROTECTED) <= self.protected_max {
                break;
            }
            self.move_to(self.head_of(PROTECTED), PROBATION);
        }
    }

    /// [`Policy::on_insert`] for a store with a byte budget: an entry heavier than half of
    /// `max_bytes` must out-score what it displaces (see the module docs).
    ///
    /// A byte-bounded store counts frequencies from its first entry (its capacity in entries
    /// is only an estimate, and a large value needs frequencies to be judged by).
    pub fn on_insert_weighted(&mut self, i: u32, hash: u64, weight: u64, max_bytes: Option<u64>) {
        if max_bytes.is_some() && self.adaptive.as_ref().is_some_and(|a| a.sketch.is_none()) {
            self.start_counting(self.tracked());
        }
        self.on_insert(i, hash);
        if self.kind != PolicyKind::Lru && max_bytes.is_some_and(|m| weight > m / 2) {
            self.large = i;
        }
    }

    /// The entry at slot `i` (key hash `hash`) was read (or overwritten).
    #[inline]
    pub fn on_access(&mut self, i: u32, hash: u64) {
        if let Some(a) = self.adaptive.as_mut() {
            if let Some(s) = a.sketch.as_mut() {
                s.increment(skey(hash));
            }
        }
        match self.queue_of[i as usize] {
            PROBATION => {
                self.move_to(i, PROTECTED);
                if self.len_of(PROTECTED) > self.protected_max {
                    self.move_to(self.head_of(PROTECTED), PROBATION);
                }
            }
            CANDIDATE => {} // awaiting admission; settle() places it
            BUCKETED => {
                if let Some(lfu) = self.lfu.as_mut() {
                    lfu.touch(&mut self.nodes, i);
                }
            }
            q => {
                if self.nodes[i as usize].next != NIL {
                    self.move_to(i, q);
                }
            }
        }
    }

    /// The entry at slot `i` left the store (removed, expired or evicted).
    pub fn on_remove(&mut self, i: u32) {
        match self.queue_of.get(i as usize).copied() {
            None | Some(DETACHED) => {}
            Some(BUCKETED) => {
                if let Some(lfu) = self.lfu.as_mut() {
                    lfu.remove(&mut self.nodes, i);
                }
                self.queue_of[i as usize] = DETACHED;
            }
            Some(q) => {
                if let Some(a) = self.adaptive.as_mut() {
                    if a.evicting && (q == PROBATION || q == PROTECTED) {
                        a.ghosts.record(self.nodes[i as usize].fp, Departed::Main);
                    }
                }
                self.unlink(i);
            }
        }
        if i == self.large {
            self.large = NIL;
        }
        if i == self.fresh {
            self.fresh = NIL;
        }
    }

    /// The estimated recent frequency of the entry in slot `i`, from the fingerprint kept
    /// for it (the sketch counts fingerprints), so a duel never re-hashes a key.
    fn freq(&self, i: u32) -> u8 {
        self.adaptive
            .as_ref()
            .and_then(|a| {
                let fp = self.nodes.get(i as usize)?.fp;
                Some(a.sketch.as_ref()?.frequency(u64::from(fp)))
            })
            .unwrap_or(0)
    }

    fn main_lru(&self) -> u32 {
        let p = self.head_of(PROBATION);
        if p != NIL {
            p
        } else {
            self.head_of(PROTECTED)
        }
    }

    /// Whether a candidate (slot `cand`, estimated frequency `cf`) is admitted over a
    /// victim of frequency `vf`: a strictly higher frequency wins; a warm candidate (>= 6)
    /// that does not is still let in one time in 128, at random, so that an attacker cannot
    /// keep hot entries out.
    fn admit(&self, cand: u32, cf: u8, vf: u8) -> bool {
        if cf > vf {
            return true;
        }
        if self.tuning.jitter && cf >= 6 {
            let salt = self.adaptive.as_ref().map_or(0, |a| a.misses);
            let fp = self.nodes.get(cand as usize).map_or(cand, |n| n.fp);
            return mix(self.seed ^ u64::from(fp) ^ u64::from(salt).rotate_left(29)) & 127 == 0;
        }
        false
    }

    /// Choose the slot to evict next (the store removes it and calls [`Policy::on_remove`]).
    ///
    /// A pending candidate duels the main region's LRU victim: the one with the lower
    /// estimated frequency leaves (ties evict the candidate, which protects the main region
    /// from one-hit wonders and scans).
    pub fn victim(&self) -> Option<u32> {
        if let Some(lfu) = self.lfu.as_ref() {
            // a new entry is not its own victim, unless it is large: then it starts as the
            // least used like any other and leaves before anything used more often
            let skip = if self.fresh == self.large {
                NIL
            } else {
                self.fresh
            };
            return lfu.victim(&self.nodes, skip);
        }
        if self.large != NIL {
            return Some(self.large_duel());
        }
        let cand = self.head_of(CANDIDATE);
        if cand != NIL {
            let victim = self.main_lru();
            if victim == NIL {
                return Some(cand);
            }
            let Some(s) = self.adaptive.as_ref().and_then(|a| a.sketch.as_ref()) else {
                return Some(victim); // not warm yet: no frequencies to judge by
            };
            let fp = |i: u32| u64::from(self.nodes[i as usize].fp);
            let (cf, vf) = (s.frequency(fp(cand)), s.frequency(fp(victim)));
            return Some(if self.admit(cand, cf, vf) {
                victim
            } else {
                cand
            });
        }
        for q in [PROBATION, PROTECTED, WINDOW] {
            let h = self.head_of(q);
            if h != NIL {
                return Some(h);
            }
        }
        None
    }

    /// The victim while a large new entry is pending: it duels the entry the policy would
    /// evict otherwise, and leaves itself unless it is used strictly more often.
    fn large_duel(&self) -> u32 {
        let large = self.large;
        let mut opponent = self.main_lru();
        for q in [CANDIDATE, WINDOW] {
            if opponent != NIL {
                break;
            }
            let h = self.head_of(q);
            opponent = if h == large {
                self.nodes[h as usize].next
            } else {
                h
            };
        }
        if opponent != NIL && self.freq(large) > self.freq(opponent) {
            opponent
        } else {
            large
        }
    }

    /// After evictions: candidates still present were admitted (or there was room); they
    /// join the main region's probation segment.
    pub fn settle(&mut self) {
        self.large = NIL;
        self.fresh = NIL;
        if let Some(a) = self.adaptive.as_mut() {
            a.evicting = false;
        }
        while self.head_of(CANDIDATE) != NIL {
            self.move_to(self.head_of(CANDIDATE), PROBATION);
        }
    }

    /// Up to `n` slots, most valuable first: protected MRU→LRU, then probation, then window
    /// (LFU: highest count first, most recent first within a count).
    pub fn hottest(&self, n: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(n.min(1024));
        let walk = |out: &mut Vec<u32>, mut i: u32| {
            while i != NIL && out.len() < n {
                out.push(i);
                i = self.nodes[i as usize].prev;
            }
        };
        if let Some(lfu) = self.lfu.as_ref() {
            let mut b = lfu.last;
            while b != NIL && out.len() < n {
                walk(&mut out, lfu.buckets[b as usize].queue.tail);
                b = lfu.buckets[b as usize].prev;
            }
            return out;
        }
        for q in [PROTECTED, PROBATION, CANDIDATE, WINDOW] {
            walk(&mut out, self.queues[q as usize].tail);
        }
        out
    }

    /// Forget every entry (the store is being cleared).
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.queue_of.clear();
        self.queues = [EMPTY_QUEUE; 4];
        self.large = NIL;
        self.fresh = NIL;
        if let Some(a) = self.adaptive.as_mut() {
            a.sketch = None; // warms up again
            a.ghosts.clear();
            a.evicting = false;
        }
        if let Some(l) = self.lfu.as_mut() {
            **l = Lfu::new();
        }
    }

    /// Total entries tracked (for invariant checks).
    pub fn tracked(&self) -> usize {
        self.queues.iter().map(|q| q.len).sum::<usize>()
            + self.lfu.as_ref().map(|l| l.len).unwrap_or(0)
    }
}
