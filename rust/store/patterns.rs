//! Access-pattern learning: for each key, which keys tended to come next.
//!
//! Every recorded access `(previous key -> this key)` bumps a successor count. Memory is
//! bounded twice over: at most [`SUCCESSORS`] successors per key (a new one replaces the
//! weakest), and at most `capacity` tracked keys (a CLOCK sweep recycles keys not seen since
//! the hand last passed). Counts age: every `period` records the global epoch advances, and
//! a key's counts are halved once per elapsed epoch when it is next touched (lazily, so
//! ageing never scans the table), so old patterns fade and new ones take over.
//!
//! Successors refer to other tracked keys by `(index, generation)`; a recycled key bumps its
//! generation, which turns stale references into dead ones that are skipped and replaced
//! first. So one record costs one hash lookup and no key copy.

use hashbrown::HashTable;

use super::keybytes::KeyBytes;

/// Successors kept per key.
pub const SUCCESSORS: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Succ {
    id: u32,
    generation: u32,
    count: u32,
    /// The record number of the latest occurrence (ties rank the more recent first).
    stamp: u64,
}

#[derive(Debug)]
struct Entry {
    key: KeyBytes,
    hash: u64,
    generation: u32,
    epoch: u32,
    referenced: bool,
    succ: Vec<Succ>,
}

/// The successor table of one store.
#[derive(Debug)]
pub struct Patterns {
    entries: Vec<Entry>,
    index: HashTable<u32>,
    cap: usize,
    hand: usize,
    period: u64,
    ticks: u64,
    epoch: u32,
    last: Option<(u32, u32)>,
}

impl Patterns {
    /// A table tracking at most `capacity` keys whose counts halve every `period` records.
    pub fn new(capacity: usize, period: u64) -> Self {
        Patterns {
            entries: Vec::new(),
            index: HashTable::new(),
            cap: capacity.max(2),
            hand: 0,
            period: period.max(1),
            ticks: 0,
            epoch: 0,
            last: None,
        }
    }

    /// The default bounds for a store of at most `max_entries` entries: four times that many
    /// keys (within 1024..=262144), or 65536 when unbounded; ageing every two table-fulls.
    pub fn for_store(max_entries: Option<usize>) -> Self {
        let cap = match max_entries {
            Some(n) => n.saturating_mul(4).clamp(1024, 1 << 18),
            None => 1 << 16,
        };
        Patterns::new(cap, 2 * cap as u64)
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most keys tracked at once.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn find(&self, key: &[u8], hash: u64) -> Option<u32> {
        let entries = &self.entries;
        self.index
            .find(hash, |&j| entries[j as usize].key.matches(key))
            .copied()
    }

    /// The entry for `key`, created (recycling a cold one when full) if needed.
    fn intern(&mut self, key: &[u8], hash: u64) -> (u32, u32) {
        if let Some(id) = self.find(key, hash) {
            let e = &mut self.entries[id as usize];
            e.referenced = true;
            return (id, e.generation);
        }
        if self.entries.len() < self.cap {
            let id = self.entries.len() as u32;
            self.entries.push(Entry {
                key: KeyBytes::new(key),
                hash,
                generation: 0,
                epoch: self.epoch,
                referenced: true,
                succ: Vec::new(),
            });
            let entries = &self.entries;
            self.index
                .insert_unique(hash, id, |&j| entries[j as usize].hash);
            return (id, 0);
        }
        // CLOCK: skip (and clear) keys touched since the hand last passed
        loop {
            let h = self.hand;
            self.hand = (h + 1) % self.entries.len();
            if self.entries[h].referenced {
                self.entries[h].referenced = false;
                continue;
            }
            let old = self.entries[h].hash;
            if let Ok(slot) = self.index.find_entry(old, |&j| j as usize == h) {
                slot.remove();
            }
            let e = &mut self.entries[h];
            e.key = KeyBytes::new(key);
            e.hash = hash;
            e.generation = e.generation.wrapping_add(1);
            e.epoch = self.epoch;
            e.referenced = true;
            e.succ.clear();
            let generation = e.generation;
            let entries = &self.entries;
            self.index
                .insert_unique(hash, h as u32, |&j| entries[j as usize].hash);
            return (h as u32, generation);
        }
    }

    /// Apply the halvings due since entry `id` was last touched.
    fn age(&mut self, id: u32) {
        let epoch = self.epoch;
        let e = &mut self.entries[id as usize];
        let shift = epoch.wrapping_sub(e.epoch);
        if shift != 0 {
            let sh = shift.min(31);
            for s in &mut e.succ {
                s.count >>= sh;
            }
            e.succ.retain(|s| s.count > 0);
            e.epoch = epoch;
        }
    }

    /// Record an access to `key` (whose hash is `hash`): the previous key gains `key` as a
    /// successor (repeats of the same key are not transitions).
    pub fn record(&mut self, key: &[u8], hash: u64) {
        self.ticks += 1;
        if self.ticks % self.period == 0 {
            self.epoch = self.epoch.wrapping_add(1);
        }
        let (id, generation) = self.intern(key, hash);
        if let Some((pid, pgen)) = self.last {
            if pid != id && self.entries[pid as usize].generation == pgen {
                self.bump(pid, id, generation);
            }
        }
        self.last = Some((id, generation));
    }

    fn bump(&mut self, pid: u32, id: u32, generation: u32) {
        self.age(pid);
        let stamp = self.ticks;
        let entries = &self.entries;
        let e = &entries[pid as usize];
        if let Some(j) = e
            .succ
            .iter()
            .position(|s| s.id == id && s.generation == generation)
        {
            let s = &mut self.entries[pid as usize].succ[j];
            s.count = s.count.saturating_add(1);
            s.stamp = stamp;
            return;
        }
        let new = Succ {
            id,
            generation,
            count: 1,
            stamp,
        };
        if e.succ.len() < SUCCESSORS {
            self.entries[pid as usize].succ.push(new);
            return;
        }
        // full: replace a dead reference first, else the weakest (fewest, then oldest)
        let victim = e
            .succ
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| {
                let alive = entries[s.id as usize].generation == s.generation;
                (alive, s.count, s.stamp)
            })
            .map(|(j, _)| j);
        if let Some(j) = victim {
            self.entries[pid as usize].succ[j] = new;
        }
    }

    /// Up to `n` keys that most often followed `key`, most frequent first (ties: most
    /// recent first).
    pub fn predict(&mut self, key: &[u8], hash: u64, n: usize) -> Vec<KeyBytes> {
        let Some(id) = self.find(key, hash) else {
            return Vec::new();
        };
        self.age(id);
        let entries = &self.entries;
        let mut live: Vec<&Succ> = entries[id as usize]
            .succ
            .iter()
            .filter(|s| {
                let t = &entries[s.id as usize];
                t.generation == s.generation && s.count > 0 && !t.key.matches(key)
            })
            .collect();
        live.sort_unstable_by(|a, b| b.count.cmp(&a.count).then(b.stamp.cmp(&a.stamp)));
        live.into_iter()
            .take(n)
            .map(|s| entries[s.id as usize].key.clone())
            .collect()
    }

    /// Forget everything learned.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index.clear();
        self.hand = 0;
        self.last = None;
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self
                .entries
                .iter()
                .map(|e| e.key.heap_bytes() + e.succ.capacity() * std::mem::size_of::<Succ>())
                .sum::<usize>()
            + self.index.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::fast_hash;

    fn rec(p: &mut Patterns, k: u32) {
        let b = k.to_be_bytes();
        p.record(&b, fast_hash(&b));
    }

    fn predict(p: &mut Patterns, k: u32, n: usize) -> Vec<u32> {
        let b = k.to_be_bytes();
        p.predict(&b, fast_hash(&b), n)
            .iter()
            .map(|kb| u32::from_be_bytes(kb.as_slice().try_into().expect("4 bytes")))
            .collect()
    }

    #[test]
    fn ranks_by_frequency_then_recency_not_first_seen() {
        let mut p = Patterns::new(1024, 1 << 40);
        // 1 -> 2 once (first seen), 1 -> 3 three times, 1 -> 4 once (latest)
        for next in [2, 3, 3, 3, 4] {
            rec(&mut p, 1);
            rec(&mut p, next);
        }
        assert_eq!(predict(&mut p, 1, 3), vec![3, 4, 2]);
        assert_eq!(predict(&mut p, 1, 1), vec![3]);
        assert_eq!(predict(&mut p, 1, 0), Vec::<u32>::new());
        assert_eq!(predict(&mut p, 99, 3), Vec::<u32>::new());
        // the successors of 2, 3 and 4 are 1 (the chain went back to 1)
        assert_eq!(predict(&mut p, 3, 3), vec![1]);
    }

    #[test]
    fn repeated_keys_are_not_their_own_successor() {
        let mut p = Patterns::new(1024, 1 << 40);
        for _ in 0..10 {
            rec(&mut p, 7);
        }
        rec(&mut p, 8);
        assert_eq!(predict(&mut p, 7, 3), vec![8]);
        assert!(predict(&mut p, 8, 3).is_empty());
    }

    #[test]
    fn at_most_k_successors_and_the_weakest_is_replaced() {
        let mut p = Patterns::new(1024, 1 << 40);
        for _ in 0..5 {
            rec(&mut p, 0);
            rec(&mut p, 1); // strong successor of 0
        }
        for s in 100..200u32 {
            rec(&mut p, 0);
            rec(&mut p, s);
        }
        let id = p.find(&0u32.to_be_bytes(), fast_hash(&0u32.to_be_bytes()));
        let succ_len = p.entries[id.expect("tracked") as usize].succ.len();
        assert_eq!(succ_len, SUCCESSORS);
        let got = predict(&mut p, 0, SUCCESSORS);
        assert_eq!(got[0], 1, "the strong successor survives the churn");
        assert_eq!(got.len(), SUCCESSORS);
        // the others are the most recent newcomers
        assert!(got[1..].iter().all(|&s| s >= 190), "{got:?}");
    }

    #[test]
    fn tracked_keys_are_bounded_and_hot_keys_survive_the_clock() {
        let mut p = Patterns::new(64, 1 << 40);
        for round in 0..200u32 {
            // a hot chain 1 -> 2 -> 3, then a burst of one-off keys
            rec(&mut p, 1);
            rec(&mut p, 2);
            rec(&mut p, 3);
            for j in 0..20u32 {
                rec(&mut p, 10_000 + round * 20 + j);
            }
            assert!(p.len() <= 64);
        }
        assert_eq!(p.len(), 64);
        assert_eq!(predict(&mut p, 1, 1), vec![2]);
        assert_eq!(predict(&mut p, 2, 1), vec![3]);
        assert!(p.memory_bytes() < 64 * 512, "{} bytes", p.memory_bytes());
    }

    #[test]
    fn counts_age_so_a_new_pattern_takes_over() {
        let mut p = Patterns::new(1024, 100);
        for _ in 0..200 {
            rec(&mut p, 1);
            rec(&mut p, 2);
        }
        assert_eq!(predict(&mut p, 1, 1), vec![2]);
        // the workload changes: 1 is now followed by 3; without ageing, 2's ~200 count
        // would outrank 3 for another 200 rounds
        for _ in 0..120 {
            rec(&mut p, 1);
            rec(&mut p, 3);
        }
        assert_eq!(predict(&mut p, 1, 2)[0], 3);
        // and a pattern not seen for long enough disappears entirely
        for _ in 0..2000 {
            rec(&mut p, 1);
            rec(&mut p, 3);
        }
        assert_eq!(predict(&mut p, 1, 3), vec![3]);
    }

    #[test]
    fn recycled_keys_do_not_leave_wrong_predictions() {
        let mut p = Patterns::new(4, 1 << 40);
        rec(&mut p, 1);
        rec(&mut p, 2);
        for k in 50..80u32 {
            rec(&mut p, k);
        }
        // 1 and 2 were recycled; whatever is tracked now must never name a key that did not
        // follow it
        for k in 50..80u32 {
            for s in predict(&mut p, k, 8) {
                assert_eq!(s, k + 1, "{k} -> {s}");
            }
        }
        assert!(predict(&mut p, 1, 3).is_empty());
    }
}
