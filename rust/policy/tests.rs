//! Unit tests of the policies, on a small model of the store (a map from key to slot).

use super::*;
use std::collections::HashMap;

/// The key hash the simulated store gives a key.
pub(super) fn hash(k: u64) -> u64 {
    super::mix(k ^ 0x2545_f491_4f6c_dd1d)
}

/// A minimal store around a policy: key -> slot, replay = get, on miss insert.
pub(super) struct Sim {
    pub policy: Policy,
    cap: usize,
    slot_of: HashMap<u64, u32>,
    key_of: Vec<u64>,
    free: Vec<u32>,
}

impl Sim {
    pub fn new(policy: Policy, cap: usize) -> Self {
        Sim {
            policy,
            cap,
            slot_of: HashMap::new(),
            key_of: Vec::new(),
            free: Vec::new(),
        }
    }

    pub fn contains(&self, k: u64) -> bool {
        self.slot_of.contains_key(&k)
    }

    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    /// One request: true on a hit.
    pub fn request(&mut self, k: u64) -> bool {
        if let Some(&i) = self.slot_of.get(&k) {
            self.policy.on_access(i, hash(k));
            return true;
        }
        let i = self.free.pop().unwrap_or_else(|| {
            self.key_of.push(0);
            (self.key_of.len() - 1) as u32
        });
        self.key_of[i as usize] = k;
        self.slot_of.insert(k, i);
        self.policy.on_insert(i, hash(k));
        while self.slot_of.len() > self.cap {
            let v = self.policy.victim().expect("a victim while over capacity");
            self.remove(v);
        }
        self.policy.settle();
        false
    }

    fn remove(&mut self, slot: u32) {
        self.policy.on_remove(slot);
        self.slot_of.remove(&self.key_of[slot as usize]);
        self.free.push(slot);
    }

    /// Hits over a whole trace.
    pub fn run(&mut self, trace: &[u64]) -> usize {
        trace.iter().filter(|&&k| self.request(k)).count()
    }
}

fn tuning() -> Tuning {
    Tuning {
        seed: Some(7),
        ..Tuning::default()
    }
}

/// Replay a trace through a bounded cache using the policy and return the hit ratio.
fn hit_ratio(kind: PolicyKind, cap: usize, trace: &[u64]) -> f64 {
    let mut sim = Sim::new(Policy::with_tuning(kind, Some(cap), tuning()), cap);
    let mut hits = 0;
    for &k in trace {
        hits += usize::from(sim.request(k));
        assert!(sim.len() <= cap);
        assert_eq!(sim.policy.tracked(), sim.len());
    }
    hits as f64 / trace.len() as f64
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A Zipf-like skewed key in `0..n` (rank r with weight ~ 1/r, by inverse transform on the
/// continuous approximation).
fn skewed(rng: &mut XorShift, n: u64) -> u64 {
    let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    ((n as f64).powf(u) - 1.0) as u64
}

#[test]
fn names_parse_and_list_the_default_first() {
    assert_eq!(PolicyKind::parse("lru"), Some(PolicyKind::Lru));
    assert_eq!(PolicyKind::parse("lfu"), Some(PolicyKind::Lfu));
    assert_eq!(PolicyKind::parse("adaptive"), Some(PolicyKind::TinyLfu));
    assert_eq!(PolicyKind::parse("fifo"), None);
    assert_eq!(PolicyKind::parse("LRU"), None);
    assert_eq!(NAMES[0], "adaptive");
    for (k, n) in PolicyKind::ALL.iter().zip(NAMES) {
        assert_eq!(k.name(), n);
        assert_eq!(PolicyKind::parse(n), Some(*k));
    }
    assert_eq!(
        PolicyKind::names_for_error(),
        "'adaptive' (default), 'lru', 'lfu'"
    );
}

#[test]
fn lru_evicts_least_recent() {
    let trace = [1, 2, 3, 1, 4, 1, 2];
    // cap 3: 1,2,3 miss; 1 hit; 4 evicts 2; 1 hit; 2 miss
    assert!((hit_ratio(PolicyKind::Lru, 3, &trace) - 2.0 / 7.0).abs() < 1e-9);
}

#[test]
fn every_policy_stays_bounded_under_random_traffic() {
    let mut rng = XorShift(0x1234_5678);
    let trace: Vec<u64> = (0..20_000).map(|_| rng.next() % 500).collect();
    for cap in [1, 2, 3, 10, 99, 250, 600] {
        for kind in PolicyKind::ALL {
            let r = hit_ratio(kind, cap, &trace);
            assert!((0.0..=1.0).contains(&r));
            if cap >= 500 {
                // everything fits: only the 500 first touches miss
                assert!(
                    (r - (20_000.0 - 500.0) / 20_000.0).abs() < 1e-9,
                    "{kind:?} {r}"
                );
            }
        }
    }
}

#[test]
fn adaptive_and_lfu_resist_a_scan_that_flushes_lru() {
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
    for kind in [PolicyKind::TinyLfu, PolicyKind::Lfu] {
        let r = hit_ratio(kind, 100, &trace);
        assert!(r > lru + 0.1, "{kind:?} {r} vs lru {lru}");
        // the hot keys (a quarter of the requests) nearly always hit
        assert!(r > 0.24, "{kind:?} {r}");
    }
}

#[test]
fn adaptive_resists_a_loop_larger_than_the_cache() {
    // a loop over 1000 keys with a cache of 200: LRU never hits, the optimum is 0.2
    let trace: Vec<u64> = (0..100_000u64).map(|i| i % 1000).collect();
    assert_eq!(hit_ratio(PolicyKind::Lru, 200, &trace), 0.0);
    let r = hit_ratio(PolicyKind::TinyLfu, 200, &trace);
    assert!(r > 0.15, "adaptive {r}");
}

#[test]
fn lfu_evicts_the_least_used_then_the_least_recent() {
    let mut sim = Sim::new(Policy::new(PolicyKind::Lfu, Some(3)), 3);
    for k in [1, 2, 3] {
        sim.request(k);
    }
    for _ in 0..3 {
        sim.request(1);
    }
    sim.request(2); // uses: 1 -> 4, 2 -> 2, 3 -> 1
    sim.request(4); // evicts 3, the least used
    assert!(!sim.contains(3) && sim.contains(1) && sim.contains(2) && sim.contains(4));
    sim.request(5); // evicts 4: the only other entry used once
    assert!(!sim.contains(4) && sim.contains(5));
    sim.request(5); // 5 -> 2 uses, tied with 2, which reached 2 uses earlier
    sim.request(6); // the newcomer is never its own victim: 2 leaves (least used, least recent)
    assert!(sim.contains(6) && !sim.contains(2));
    assert!(sim.contains(1) && sim.contains(5));
    let lfu = sim.policy.lfu.as_ref().expect("lfu state");
    let count = |k: u64| lfu.count(sim.slot_of[&k]);
    assert_eq!((count(1), count(5), count(6)), (4, 2, 1));
    sim.policy.clear();
    assert_eq!(sim.policy.tracked(), 0);
}

#[test]
fn lfu_counts_and_buckets_stay_consistent() {
    let mut rng = XorShift(99);
    let cap = 64;
    let mut sim = Sim::new(Policy::new(PolicyKind::Lfu, Some(cap)), cap);
    let mut uses: HashMap<u64, u32> = HashMap::new();
    for _ in 0..50_000 {
        let k = skewed(&mut rng, 1000);
        let hit = sim.request(k);
        if !hit {
            uses.retain(|key, _| sim.contains(*key));
            uses.insert(k, 1);
        } else {
            *uses.get_mut(&k).expect("a hit was counted") += 1;
        }
        assert_eq!(sim.policy.tracked(), sim.len());
    }
    let lfu = sim.policy.lfu.as_ref().expect("lfu state");
    for (k, n) in &uses {
        assert_eq!(lfu.count(sim.slot_of[k]), *n, "key {k}");
    }
    // buckets are in strictly increasing count order and none is empty
    let mut b = lfu.first;
    let mut last = 0;
    let mut total = 0;
    while b != NIL {
        let bucket = lfu.buckets[b as usize];
        assert!(bucket.count > last);
        assert!(bucket.queue.len > 0);
        last = bucket.count;
        total += bucket.queue.len;
        b = bucket.next;
    }
    assert_eq!(total, sim.len());
}

#[test]
fn lfu_keeps_the_most_used_entries_under_skew() {
    let mut rng = XorShift(5);
    let trace: Vec<u64> = (0..100_000).map(|_| skewed(&mut rng, 10_000)).collect();
    let lru = hit_ratio(PolicyKind::Lru, 200, &trace);
    let lfu = hit_ratio(PolicyKind::Lfu, 200, &trace);
    assert!(lfu > lru, "lfu {lfu} vs lru {lru}");
}

/// A recency-heavy workload: a working set that drifts slowly, so what was used recently is
/// what will be used next and frequency history misleads.
fn drifting(n: usize, set: u64) -> Vec<u64> {
    let mut rng = XorShift(11);
    (0..n).map(|i| (i as u64) / 8 + rng.next() % set).collect()
}

/// A frequency-heavy workload: a skewed stable popularity plus one-off scans.
fn skewed_with_scans(n: usize) -> Vec<u64> {
    let mut rng = XorShift(13);
    let mut scan = 10_000_000u64;
    (0..n)
        .map(|i| {
            if i % 3 == 0 {
                scan += 1;
                scan
            } else {
                skewed(&mut rng, 50_000)
            }
        })
        .collect()
}

#[test]
fn the_window_grows_on_recency_and_shrinks_on_frequency() {
    let cap = 1000;
    let initial = (Tuning::default().window * cap as f64).round() as usize;
    // recency: the adaptation must widen the window well past its initial 1%
    let mut sim = Sim::new(
        Policy::with_tuning(PolicyKind::TinyLfu, Some(cap), tuning()),
        cap,
    );
    sim.run(&drifting(400_000, 2000));
    let grown = sim.policy.window_max();
    assert!(
        grown > cap / 5,
        "window {grown} of {cap} after a recency workload"
    );
    // then frequency: it must come back down
    sim.run(&skewed_with_scans(600_000));
    let shrunk = sim.policy.window_max();
    assert!(
        shrunk < grown / 2,
        "window {shrunk} after a frequency workload (was {grown})"
    );
    assert!(shrunk < cap / 10, "window {shrunk}");
    assert!(initial < grown);
}

#[test]
fn adaptive_tracks_lru_on_recency_and_beats_it_on_frequency() {
    let cap = 1000;
    let rec = drifting(400_000, 2000);
    let (a, l) = (
        hit_ratio(PolicyKind::TinyLfu, cap, &rec),
        hit_ratio(PolicyKind::Lru, cap, &rec),
    );
    assert!(a > l - 0.02, "recency: adaptive {a} vs lru {l}");
    let freq = skewed_with_scans(300_000);
    let (a, l) = (
        hit_ratio(PolicyKind::TinyLfu, cap, &freq),
        hit_ratio(PolicyKind::Lru, cap, &freq),
    );
    assert!(a > l + 0.05, "frequency: adaptive {a} vs lru {l}");
}

#[test]
fn a_large_entry_must_outscore_what_it_displaces() {
    // slots weigh 1 except the large one; the simulated budget is 10 units
    let mut p = Policy::with_tuning(PolicyKind::TinyLfu, Some(10), tuning());
    let keys: Vec<u64> = (0..10).collect();
    for (i, &k) in keys.iter().enumerate() {
        p.on_insert(i as u32, hash(k));
        p.settle();
    }
    for _ in 0..5 {
        for (i, &k) in keys.iter().enumerate() {
            p.on_access(i as u32, hash(k));
        }
    }
    // a never-seen value weighing 8 of 10: it loses the duel against the hot entries
    let big = 10u32;
    p.on_insert_weighted(big, hash(100), 8, Some(10));
    assert_eq!(p.victim(), Some(big));
    p.on_remove(big);
    p.settle();
    assert_eq!(p.tracked(), 10);
    // a value that is hotter than the residents displaces them instead
    let mut p2 = Policy::with_tuning(PolicyKind::TinyLfu, Some(10), tuning());
    for (i, &k) in keys.iter().enumerate() {
        p2.on_insert(i as u32, hash(k));
        p2.settle();
    }
    for _ in 0..6 {
        p2.on_insert_weighted(big, hash(100), 8, Some(10));
        p2.on_remove(big);
        p2.settle();
    }
    p2.on_insert_weighted(big, hash(100), 8, Some(10));
    let v = p2.victim().expect("victim");
    assert_ne!(v, big, "a hot large value is admitted");
    // values up to half the budget are not large
    let mut p3 = Policy::with_tuning(PolicyKind::TinyLfu, Some(10), tuning());
    p3.on_insert_weighted(0, hash(0), 5, Some(10));
    assert_eq!(p3.large, NIL);
    p3.on_insert_weighted(1, hash(1), 6, Some(10));
    assert_eq!(p3.large, 1);
    p3.settle();
    assert_eq!(p3.large, NIL);
}

#[test]
fn hottest_lists_protected_first_and_lfu_by_count() {
    let mut sim = Sim::new(
        Policy::with_tuning(PolicyKind::TinyLfu, Some(100), tuning()),
        100,
    );
    for k in 0..100 {
        sim.request(k);
    }
    for _ in 0..3 {
        sim.request(42);
    }
    let hot = sim.policy.hottest(5);
    assert_eq!(hot.len(), 5);
    assert_eq!(hot[0], sim.slot_of[&42]);
    let mut lfu = Sim::new(Policy::new(PolicyKind::Lfu, Some(10)), 10);
    for k in 0..10 {
        for _ in 0..=k {
            lfu.request(k);
        }
    }
    let order: Vec<u32> = lfu.policy.hottest(3);
    assert_eq!(
        order,
        vec![lfu.slot_of[&9], lfu.slot_of[&8], lfu.slot_of[&7]]
    );
    assert_eq!(lfu.policy.hottest(100).len(), 10);
}

#[test]
fn counting_starts_half_full_with_one_use_per_loaded_entry() {
    let mut sim = Sim::new(
        Policy::with_tuning(PolicyKind::TinyLfu, Some(10), tuning()),
        10,
    );
    for k in 0..4 {
        sim.request(k);
    }
    for _ in 0..5 {
        sim.request(0); // hits while loading: not counted
    }
    let sketch = |p: &Policy| {
        p.adaptive
            .as_ref()
            .and_then(|a| a.sketch.as_ref())
            .is_some()
    };
    assert!(
        !sketch(&sim.policy),
        "no sketch before the cache is half full"
    );
    sim.request(4);
    sim.request(5);
    assert!(sketch(&sim.policy));
    let f = |p: &Policy, k: u64| key_freq(p, hash(k));
    assert_eq!(
        f(&sim.policy, 0),
        1,
        "credited once, whatever its hits while loading"
    );
    assert_eq!(f(&sim.policy, 3), 1);
    assert_eq!(f(&sim.policy, 5), 1);
    sim.request(0);
    assert_eq!(f(&sim.policy, 0), 2, "counted from then on");
    assert_eq!(f(&sim.policy, 99), 0);
}

/// The sketch's estimate for a key hash (0 without a sketch).
fn key_freq(p: &Policy, hash: u64) -> u8 {
    p.adaptive
        .as_ref()
        .and_then(|a| a.sketch.as_ref())
        .map(|s| s.frequency(skey(hash)))
        .unwrap_or(0)
}

#[test]
fn a_byte_bounded_store_counts_from_its_first_entry() {
    let mut p = Policy::with_tuning(PolicyKind::TinyLfu, Some(1024), tuning());
    p.on_insert_weighted(0, hash(0), 10, Some(1000));
    p.settle();
    assert_eq!(key_freq(&p, hash(0)), 1);
    let mut q = Policy::with_tuning(PolicyKind::TinyLfu, Some(1024), tuning());
    q.on_insert(0, hash(0));
    q.settle();
    assert_eq!(
        key_freq(&q, hash(0)),
        0,
        "a count-bounded store waits until half full"
    );
}

#[test]
fn lfu_a_large_entry_is_its_own_victim_before_anything_used_more() {
    let mut p = Policy::new(PolicyKind::Lfu, Some(10));
    for i in 0..3u32 {
        p.on_insert(i, hash(u64::from(i)));
        p.settle();
        p.on_access(i, hash(u64::from(i)));
    }
    p.on_insert(3, hash(3)); // used once, older than the large one
    p.settle();
    p.on_insert_weighted(4, hash(4), 80, Some(100));
    assert_eq!(p.victim(), Some(3), "the older entry used once first");
    p.on_remove(3);
    assert_eq!(p.victim(), Some(4), "then the large one itself");
    p.on_remove(4);
    p.settle();
    assert_eq!(p.tracked(), 3);
    // an ordinary newcomer is never its own victim
    p.on_insert_weighted(5, hash(5), 10, Some(100));
    assert_eq!(p.victim(), Some(0));
}
