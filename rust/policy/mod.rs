//! Eviction policies: which entry leaves when the store is over its limits.
//!
//! Every policy keeps entries (by slot index) in intrusive doubly-linked queues, so each
//! operation is O(1): no scan over entries ever happens.
//!
//! * `Lru` — one queue, least recently used first out.
//! * `TinyLfu` (the default, "adaptive recency + frequency") — the W-TinyLFU design: new
//!   entries enter a small LRU *window* (recency); entries leaving the window are
//!   *candidates* that must beat the main region's LRU victim on estimated frequency
//!   (a count-min [`sketch::Sketch`] with ageing) to be admitted; the main region is a
//!   segmented LRU (probation → protected on re-use). This keeps the seed's "LRU + access
//!   frequency" scoring but without its O(n) scan, and it resists scans and loops, which
//!   plain LRU does not.

pub mod sketch;

use sketch::Sketch;

/// Index of "no node".
pub const NIL: u32 = u32::MAX;

const WINDOW: u8 = 0;
const CANDIDATE: u8 = 1;
const PROBATION: u8 = 2;
const PROTECTED: u8 = 3;
const DETACHED: u8 = 255;

/// Which eviction policy a store uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Least recently used.
    Lru,
    /// Window TinyLFU: recency window + frequency-gated segmented LRU.
    TinyLfu,
}

impl PolicyKind {
    /// Parse a policy name as users write it.
    pub fn parse(name: &str) -> Option<PolicyKind> {
        match name {
            "lru" => Some(PolicyKind::Lru),
            "tinylfu" | "adaptive" => Some(PolicyKind::TinyLfu),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::TinyLfu => "adaptive",
        }
    }
}

/// Links of one slot in its queue (8 bytes; the queue id lives in a parallel byte vector).
#[derive(Clone, Copy, Debug)]
struct Node {
    prev: u32,
    next: u32,
}

const EMPTY_NODE: Node = Node {
    prev: NIL,
    next: NIL,
};

#[derive(Clone, Copy, Debug)]
struct Queue {
    head: u32, // least recently used
    tail: u32, // most recently used
    len: usize,
}

const EMPTY_QUEUE: Queue = Queue {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// The policy state for one store.
#[derive(Debug)]
pub struct Policy {
    kind: PolicyKind,
    nodes: Vec<Node>,
    queue_of: Vec<u8>,
    queues: [Queue; 4],
    sketch: Option<Sketch>,
    window_max: usize,
    protected_max: usize,
}

impl Policy {
    /// A policy for a store of at most `capacity` entries (`None`: unbounded, so the policy
    /// only orders entries and keeps no frequency sketch).
    pub fn new(kind: PolicyKind, capacity: Option<usize>) -> Self {
        let mut p = Policy {
            kind,
            nodes: Vec::new(),
            queue_of: Vec::new(),
            queues: [EMPTY_QUEUE; 4],
            sketch: None,
            window_max: usize::MAX,
            protected_max: usize::MAX,
        };
        p.resize(capacity);
        p
    }

    /// The policy kind.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// Re-plan the regions for a new capacity estimate. Called at construction and by
    /// byte-bounded stores as their entry count grows; entries already queued stay put.
    pub fn resize(&mut self, capacity: Option<usize>) {
        match (self.kind, capacity) {
            (PolicyKind::TinyLfu, Some(cap)) => {
                let cap = cap.max(1);
                self.window_max = (cap / 100).max(1);
                let main = cap.saturating_sub(self.window_max).max(1);
                self.protected_max = (main * 4 / 5).max(1);
                let need = self
                    .sketch
                    .as_ref()
                    .map(|s| s.words() * 2 < cap.max(16))
                    .unwrap_or(true);
                if need {
                    self.sketch = Some(Sketch::new(cap));
                }
            }
            _ => {
                self.window_max = usize::MAX;
                self.protected_max = usize::MAX;
                self.sketch = None;
            }
        }
    }

    /// Bytes the policy holds for its own bookkeeping per tracked slot, plus the sketch.
    pub fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.queue_of.capacity()
            + self.sketch.as_ref().map(|s| s.words() * 8).unwrap_or(0)
    }

    fn unlink(&mut self, i: u32) {
        let n = self.nodes[i as usize];
        let queue = self.queue_of[i as usize];
        debug_assert!(queue != DETACHED);
        let q = &mut self.queues[queue as usize];
        if n.prev == NIL {
            q.head = n.next;
        } else {
            self.nodes[n.prev as usize].next = n.next;
        }
        if n.next == NIL {
            q.tail = n.prev;
        } else {
            self.nodes[n.next as usize].prev = n.prev;
        }
        q.len -= 1;
        self.nodes[i as usize] = EMPTY_NODE;
        self.queue_of[i as usize] = DETACHED;
    }

    fn push_tail(&mut self, i: u32, queue: u8) {
        let q = &mut self.queues[queue as usize];
        let old_tail = q.tail;
        q.tail = i;
        if old_tail == NIL {
            q.head = i;
        }
        q.len += 1;
        if old_tail != NIL {
            self.nodes[old_tail as usize].next = i;
        }
        self.nodes[i as usize] = Node {
            prev: old_tail,
            next: NIL,
        };
        self.queue_of[i as usize] = queue;
    }

    fn move_to(&mut self, i: u32, queue: u8) {
        self.unlink(i);
        self.push_tail(i, queue);
    }

    /// A new entry at slot `i` with key hash `hash`.
    pub fn on_insert(&mut self, i: u32, hash: u64) {
        let idx = i as usize;
        if self.nodes.len() <= idx {
            self.nodes.resize(idx + 1, EMPTY_NODE);
            self.queue_of.resize(idx + 1, DETACHED);
        }
        if let Some(s) = self.sketch.as_mut() {
            s.increment(hash);
        }
        self.push_tail(i, WINDOW);
        // window overflow becomes candidates for admission into the main region
        while self.queues[WINDOW as usize].len > self.window_max {
            let lru = self.queues[WINDOW as usize].head;
            self.move_to(lru, CANDIDATE);
        }
    }

    /// The entry at slot `i` (key hash `hash`) was read (or overwritten).
    #[inline]
    pub fn on_access(&mut self, i: u32, hash: u64) {
        if let Some(s) = self.sketch.as_mut() {
            s.increment(hash);
        }
        match self.queue_of[i as usize] {
            PROBATION => {
                self.move_to(i, PROTECTED);
                while self.queues[PROTECTED as usize].len > self.protected_max {
                    let demote = self.queues[PROTECTED as usize].head;
                    self.move_to(demote, PROBATION);
                }
            }
            CANDIDATE => {} // awaiting admission; settle() places it
            q => {
                if self.nodes[i as usize].next != NIL {
                    self.move_to(i, q);
                }
            }
        }
    }

    /// The entry at slot `i` left the store (removed, expired or evicted).
    pub fn on_remove(&mut self, i: u32) {
        if self
            .queue_of
            .get(i as usize)
            .map(|q| *q != DETACHED)
            .unwrap_or(false)
        {
            self.unlink(i);
        }
    }

    fn freq(&self, i: u32, hash_of: &impl Fn(u32) -> u64) -> u8 {
        self.sketch
            .as_ref()
            .map(|s| s.frequency(hash_of(i)))
            .unwrap_or(0)
    }

    fn main_lru(&self) -> u32 {
        let p = self.queues[PROBATION as usize].head;
        if p != NIL {
            p
        } else {
            self.queues[PROTECTED as usize].head
        }
    }

    /// Choose the slot to evict next (the store removes it and calls [`Policy::on_remove`]).
    /// `hash_of` gives a slot's key hash (recomputed by the store, which keeps nodes small).
    ///
    /// A pending candidate duels the main region's LRU victim: the one with the lower
    /// estimated frequency leaves (ties evict the candidate, which protects the main region
    /// from one-hit wonders and scans).
    pub fn victim(&self, hash_of: impl Fn(u32) -> u64) -> Option<u32> {
        let cand = self.queues[CANDIDATE as usize].head;
        if cand != NIL {
            let victim = self.main_lru();
            if victim == NIL {
                return Some(cand);
            }
            return Some(if self.freq(cand, &hash_of) > self.freq(victim, &hash_of) {
                victim
            } else {
                cand
            });
        }
        for q in [PROBATION, PROTECTED, WINDOW] {
            let h = self.queues[q as usize].head;
            if h != NIL {
                return Some(h);
            }
        }
        None
    }

    /// After evictions: candidates still present were admitted (or there was room); they
    /// join the main region's probation segment.
    pub fn settle(&mut self) {
        while self.queues[CANDIDATE as usize].head != NIL {
            let c = self.queues[CANDIDATE as usize].head;
            self.move_to(c, PROBATION);
        }
    }

    /// Up to `n` slots, most valuable first: protected MRU→LRU, then probation, then window.
    pub fn hottest(&self, n: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(n.min(1024));
        for q in [PROTECTED, PROBATION, CANDIDATE, WINDOW] {
            let mut i = self.queues[q as usize].tail;
            while i != NIL && out.len() < n {
                out.push(i);
                i = self.nodes[i as usize].prev;
            }
        }
        out
    }

    /// Forget every entry (the store is being cleared).
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.queue_of.clear();
        self.queues = [EMPTY_QUEUE; 4];
        if let Some(s) = self.sketch.as_mut() {
            s.clear();
        }
    }

    /// Total entries tracked (for invariant checks).
    pub fn tracked(&self) -> usize {
        self.queues.iter().map(|q| q.len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replay a trace through a bounded cache using the policy and count hits.
    fn hit_ratio(kind: PolicyKind, cap: usize, trace: &[u64]) -> f64 {
        use std::collections::HashMap;
        let mut p = Policy::new(kind, Some(cap));
        let mut slot_of: HashMap<u64, u32> = HashMap::new();
        let mut key_of: Vec<u64> = Vec::new();
        let mut free: Vec<u32> = Vec::new();
        let mut hits = 0usize;
        for &k in trace {
            if let Some(&i) = slot_of.get(&k) {
                hits += 1;
                p.on_access(i, k.wrapping_mul(0x2545_f491_4f6c_dd1d));
                continue;
            }
            let i = free.pop().unwrap_or_else(|| {
                key_of.push(0);
                (key_of.len() - 1) as u32
            });
            key_of[i as usize] = k;
            slot_of.insert(k, i);
            p.on_insert(i, k.wrapping_mul(0x2545_f491_4f6c_dd1d));
            while slot_of.len() > cap {
                let v = p
                    .victim(|j| key_of[j as usize].wrapping_mul(0x2545_f491_4f6c_dd1d))
                    .expect("victim while over capacity");
                p.on_remove(v);
                slot_of.remove(&key_of[v as usize]);
                free.push(v);
            }
            p.settle();
            assert_eq!(p.tracked(), slot_of.len());
        }
        hits as f64 / trace.len() as f64
    }

    #[test]
    fn lru_evicts_least_recent() {
        let trace = [1, 2, 3, 1, 4, 1, 2];
        // cap 3: 1,2,3 miss; 1 hit; 4 evicts 2; 1 hit; 2 miss
        assert!((hit_ratio(PolicyKind::Lru, 3, &trace) - 2.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn tinylfu_resists_a_scan_that_flushes_lru() {
        // a hot set of 50 keys, interleaved with a long one-off scan
        let mut trace = Vec::new();
        let mut scan = 1_000_000u64;
        for round in 0..200 {
            for k in 0..50u64 {
                trace.push(k);
                if round > 2 {
                    for _ in 0..3 {
                        trace.push(scan);
                        scan += 1;
                    }
                }
            }
        }
        let lru = hit_ratio(PolicyKind::Lru, 100, &trace);
        let lfu = hit_ratio(PolicyKind::TinyLfu, 100, &trace);
        assert!(lfu > lru + 0.1, "tinylfu {lfu} vs lru {lru}");
    }

    #[test]
    fn every_capacity_holds_under_random_traffic() {
        let mut x = 0x1234_5678u64;
        let trace: Vec<u64> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % 500
            })
            .collect();
        for cap in [1, 2, 3, 10, 99, 250, 600] {
            for kind in [PolicyKind::Lru, PolicyKind::TinyLfu] {
                let r = hit_ratio(kind, cap, &trace);
                assert!((0.0..=1.0).contains(&r));
            }
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!(PolicyKind::parse("lru"), Some(PolicyKind::Lru));
        assert_eq!(PolicyKind::parse("adaptive"), Some(PolicyKind::TinyLfu));
        assert_eq!(PolicyKind::parse("fifo"), None);
        assert_eq!(PolicyKind::TinyLfu.name(), "adaptive");
    }
}
