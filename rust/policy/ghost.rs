//! Ghost lists: which keys recently left the window, and which left the main region.
//!
//! The adaptive policy sizes its window by the marginal value of space on each side, as ARC
//! does: a miss on a key that recently *left the window* would have been a hit with a window
//! a little larger; a miss on a key recently *evicted from the main region* would have been a
//! hit with a main region a little larger. Each side remembers the fingerprints (32-bit key
//! hashes) of its last `n` departures, `n` being a small share of the capacity, so both answer
//! "would `n` more slots on this side have turned this miss into a hit?".
//!
//! A side is a ring buffer of fingerprints (FIFO order) plus a hash table counting each
//! fingerprint's occurrences in the ring, so recording, forgetting the oldest and looking up
//! are all O(1). Memory: about 13 bytes per remembered key, so under 1 byte per entry of
//! capacity at `n` = 3% of it on each side.

use hashbrown::HashTable;

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
    counts: HashTable<(u32, u32)>,
}

/// The two ghost lists of an adaptive policy.
#[derive(Debug)]
pub struct Ghosts {
    sides: [Side; 2],
    cap: usize,
}

#[inline]
fn spread(fp: u32) -> u64 {
    super::mix(u64::from(fp))
}

impl Side {
    fn new(cap: usize) -> Self {
        Side {
            ring: Vec::with_capacity(cap),
            next: 0,
            counts: HashTable::with_capacity(cap),
        }
    }

    fn add(&mut self, fp: u32) {
        match self.counts.find_mut(spread(fp), |e| e.0 == fp) {
            Some(e) => e.1 += 1,
            None => {
                self.counts
                    .insert_unique(spread(fp), (fp, 1), |e| spread(e.0));
            }
        }
    }

    fn forget(&mut self, fp: u32) {
        if let Ok(mut e) = self.counts.find_entry(spread(fp), |e| e.0 == fp) {
            if e.get().1 > 1 {
                e.get_mut().1 -= 1;
            } else {
                e.remove();
            }
        }
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
            .map(|s| s.ring.capacity() * 4 + s.counts.capacity() * 9)
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
        self.sides[side as usize]
            .counts
            .find(spread(fp), |e| e.0 == fp)
            .is_some()
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
        assert_eq!(g.sides[1].counts.len(), 100);
        g.clear();
        assert!(!g.contains(1049, Departed::Window));
    }
}
