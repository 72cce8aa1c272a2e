//! Ghost lists: which keys recently left the window, and which left the main region.
//!
//! The adaptive policy sizes its window by the marginal value of space on each side, as ARC
//! does: a miss on a key that recently *left the window* would have been a hit with a window
//! a little larger; a miss on a key recently *evicted from the main region* would have been a
//! hit with a main region a little larger. Each side remembers the fingerprints (32-bit key
//! hashes) of its last `n` departures, `n` being a small share of the capacity, so both answer
//! "would `n` more slots on this side have turned this miss into a hit?".
//!
//! A side is a ring buffer of fingerprints (FIFO order) plus a small open-addressing table
//! (linear probing, backward-shift deletion) counting each fingerprint's occurrences in the
//! ring, so recording, forgetting the oldest and looking up are all O(1) and cost a few
//! dozen instructions: this runs on every eviction. Memory: 12-20 bytes per remembered key,
//! so under 1 byte per entry of capacity at `n` = 3% of it on each side.

/// The side a key left from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departed {
    /// Left the window (admitted or not).
    Window = 0,
    /// Evicted from the main region.
    Main = 1,
}

/// One side: the last `cap` fingerprints and their counts.
#[derive(Debug)]
struct Side {
    ring: Vec<u32>,
    /// Next ring position to write (the oldest fingerprint once the ring is full).
    next: usize,
    /// The count table: `counts[i] == 0` marks an empty slot, else `keys[i]` occurs
    /// `counts[i]` times in the ring. At most half full.
    keys: Vec<u32>,
    counts: Vec<u32>,
    mask: usize,
    len: usize,
}

/// The two ghost lists of an adaptive policy.
#[derive(Debug)]
pub struct Ghosts {
    sides: [Side; 2],
    cap: usize,
}

#[inline]
fn home(fp: u32, mask: usize) -> usize {
    (super::mix(u64::from(fp)) >> 32) as usize & mask
}

impl Side {
    fn new(cap: usize) -> Self {
        let slots = (cap * 2).next_power_of_two().max(8);
        Side {
            ring: Vec::with_capacity(cap),
            next: 0,
            keys: vec![0; slots],
            counts: vec![0; slots],
            mask: slots - 1,
            len: 0,
        }
    }

    /// The slot holding `fp`, or the empty slot where it would go.
    #[inline]
    fn slot(&self, fp: u32) -> usize {
        let mut i = home(fp, self.mask);
        while self.counts[i] != 0 && self.keys[i] != fp {
            i = (i + 1) & self.mask;
        }
        i
    }

    fn add(&mut self, fp: u32) {
        let i = self.slot(fp);
        if self.counts[i] == 0 {
            self.keys[i] = fp;
            self.len += 1;
        }
        self.counts[i] += 1;
    }

    fn forget(&mut self, fp: u32) {
        let mut i = self.slot(fp);
        if self.counts[i] == 0 {
            return;
        }
        if self.counts[i] > 1 {
            self.counts[i] -= 1;
            return;
        }
        // remove, shifting back the entries of the probe run that follows
        self.len -= 1;
        let mask = self.mask;
        loop {
            self.counts[i] = 0;
            let mut j = i;
            loop {
                j = (j + 1) & mask;
                if self.counts[j] == 0 {
                    return;
                }
                let h = home(self.keys[j], mask);
                // the entry at j may stay if its home lies cyclically in (i, j]
                let stays = if i <= j {
                    i < h && h <= j
                } else {
                    i < h || h <= j
                };
                if !stays {
                    self.keys[i] = self.keys[j];
                    self.counts[i] = self.counts[j];
                    i = j;
                    break;
                }
            }
        }
    }

    fn contains(&self, fp: u32) -> bool {
        self.counts[self.slot(fp)] != 0
    }

    fn record(&mut self, fp: u32, cap: usize) {
        if self.ring.len() < cap {
            self.ring.push(fp);
        } else {
            let old = std::mem::replace(&mut self.ring[self.next], fp);
            self.forget(old);
        }
        self.next = (self.next + 1) % cap;
        self.add(fp);
    }
}

impl Ghosts {
    /// Lists remembering the last `remember` departures per side.
    pub fn new(remember: usize) -> Self {
        let cap = remember.max(1);
        Ghosts {
            sides: [Side::new(cap), Side::new(cap)],
            cap,
        }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.sides
            .iter()
            .map(|s| s.ring.capacity() * 4 + s.keys.len() * 8)
            .sum()
    }

    /// Remember that the key with fingerprint `fp` left `side` (forgetting that side's
    /// oldest departure once `remember` are held).
    pub fn record(&mut self, fp: u32, side: Departed) {
        let cap = self.cap;
        self.sides[side as usize].record(fp, cap);
    }

    /// Whether a key with fingerprint `fp` is among the last departures of `side`.
    pub fn contains(&self, fp: u32, side: Departed) -> bool {
        self.sides[side as usize].contains(fp)
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.sides = [Side::new(self.cap), Side::new(self.cap)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_model_under_collisions_and_repeats() {
        // a tiny ring and fingerprints from a small range: long probe runs, many repeats,
        // and deletions in the middle of runs (backward shifts)
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for cap in [1usize, 2, 3, 7, 16, 33] {
            let mut g = Ghosts::new(cap);
            let mut model: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
            for _ in 0..20_000 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let fp = ((state >> 33) % 40) as u32 * 0x0101_0101; // few distinct values
                g.record(fp, Departed::Window);
                model.push_back(fp);
                if model.len() > cap {
                    model.pop_front();
                }
                for probe in 0..40u32 {
                    let probe = probe * 0x0101_0101;
                    assert_eq!(g.contains(probe, Departed::Window), model.contains(&probe));
                }
                let distinct: std::collections::HashSet<u32> = model.iter().copied().collect();
                assert_eq!(g.sides[0].len, distinct.len());
            }
        }
    }

    #[test]
    fn remembers_the_last_departures_per_side() {
        let mut g = Ghosts::new(100);
        for fp in 0..100u32 {
            g.record(fp, Departed::Window);
        }
        assert!((0..100u32).all(|fp| g.contains(fp, Departed::Window)));
        assert!(!g.contains(5, Departed::Main));
        for fp in 1000..1050u32 {
            g.record(fp, Departed::Window);
        }
        // the 50 oldest were forgotten, the 50 most recent of the first batch remain
        assert!((0..50u32).all(|fp| !g.contains(fp, Departed::Window)));
        assert!((50..100u32).all(|fp| g.contains(fp, Departed::Window)));
        // a fingerprint recorded twice stays until its later record is forgotten too
        g.record(77, Departed::Main);
        g.record(77, Departed::Main);
        for fp in 0..99u32 {
            g.record(5000 + fp, Departed::Main);
        }
        assert!(g.contains(77, Departed::Main));
        g.record(6000, Departed::Main);
        assert!(!g.contains(77, Departed::Main));
        assert_eq!(g.sides[1].len, 100);
        g.clear();
        assert!(!g.contains(1049, Departed::Window));
    }
}
