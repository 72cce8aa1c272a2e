//! A 4-bit count-min sketch that estimates how often a key was seen recently.
//!
//! Sixteen 4-bit counters are packed per `u64`. Each key picks one 64-byte block (eight
//! words, one cache line) and four counters in four different words of it, so an update
//! touches one cache line and needs one multiply to place all four counters. An estimate is the minimum of its four counters, so collisions can only
//! over-estimate. Every `sample_size` increments all counters are halved, which ages old
//! popularity out (the "reset" of TinyLFU), so the sketch follows shifting workloads.

/// The frequency sketch.
#[derive(Clone, Debug)]
pub struct Sketch {
    table: Vec<u64>,
    mask: usize,
    additions: u32,
    sample_size: u32,
}

const SEED: u64 = 0x97cb_3127_dc3c_4d8b;

/// Words per block (one 64-byte cache line).
const BLOCK: usize = 8;

impl Sketch {
    /// A sketch sized for a cache of about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        // one 64-bit word (16 counters) per two entries of capacity, at least 8 words
        // a power of two, so that `mask` keeps every index in bounds (see `slots`)
        let words = (capacity.max(16) / 2).next_power_of_two().max(BLOCK);
        let sample = (capacity.max(16) as u64 * 10).min(u32::MAX as u64) as u32;
        Sketch {
            table: vec![0; words],
            mask: words / BLOCK - 1,
            additions: 0,
            sample_size: sample,
        }
    }

    /// Number of 64-bit words in the table (for memory accounting).
    pub fn words(&self) -> usize {
        self.table.len()
    }

    /// The four (word, bit shift) counter positions of `hash`: a block from the high bits of
    /// the mixed hash; within it, counter `i` lies in word `2i` or `2i + 1` (so the four are in
    /// different words) at a nibble chosen by its own four bits.
    #[inline(always)]
    fn slots(&self, hash: u64) -> [(usize, u32); 4] {
        let h = hash.wrapping_mul(SEED);
        let block = ((h >> 40) as usize & self.mask) * BLOCK;
        let bits = (h >> 8) as u32;
        let mut out = [(0usize, 0u32); 4];
        for (i, slot) in out.iter_mut().enumerate() {
            let b = bits >> (i * 5);
            *slot = (block + 2 * i + (b & 1) as usize, ((b >> 1) & 15) * 4);
        }
        out
    }

    /// The estimated recent frequency of `hash` (0..=15).
    #[inline]
    pub fn frequency(&self, hash: u64) -> u8 {
        let mut min = 15u64;
        for (w, shift) in self.slots(hash) {
            debug_assert!(w < self.table.len());
            // SAFETY: `w = block + 2i + {0,1} <= block + 7`, and `block <= mask * BLOCK` with
            // `mask == table.len() / BLOCK - 1` (the length is a power-of-two multiple of
            // BLOCK, fixed at construction), so `w < table.len()` always.
            let word = unsafe { *self.table.get_unchecked(w) };
            min = min.min((word >> shift) & 15);
        }
        min as u8
    }

    /// Count one more occurrence of `hash` (counters saturate at 15).
    #[inline]
    pub fn increment(&mut self, hash: u64) {
        let mut added = 0u64;
        for (w, shift) in self.slots(hash) {
            debug_assert!(w < self.table.len());
            // SAFETY: as in `frequency`: `w < self.table.len()`.
            let word = unsafe { self.table.get_unchecked_mut(w) };
            let not_full = u64::from((*word >> shift) & 15 != 15);
            *word += not_full << shift;
            added |= not_full;
        }
        self.additions += added as u32;
        if self.additions >= self.sample_size {
            self.reset();
        }
    }

    /// Halve every counter (ageing).
    fn reset(&mut self) {
        for w in self.table.iter_mut() {
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.table.iter_mut().for_each(|w| *w = 0);
        self.additions = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_at_fifteen_and_age() {
        let mut s = Sketch::new(64);
        for _ in 0..40 {
            s.increment(42);
        }
        assert_eq!(s.frequency(42), 15);
        assert!(s.frequency(43) < 15);
        s.reset();
        assert_eq!(s.frequency(42), 7);
    }

    #[test]
    fn frequent_keys_estimate_higher_than_rare_ones() {
        let mut s = Sketch::new(1024);
        for k in 0..1000u64 {
            s.increment(k);
        }
        for _ in 0..5 {
            s.increment(7);
        }
        assert!(s.frequency(7) >= 5);
        let rare: u32 = (100..200u64).map(|k| u32::from(s.frequency(k))).sum();
        assert!(rare < 300, "collisions inflate estimates too much: {rare}");
    }

    #[test]
    fn sample_size_triggers_reset() {
        let mut s = Sketch::new(16);
        for k in 0..10_000u64 {
            s.increment(k % 3);
        }
        assert!(s.additions < s.sample_size);
        assert!(s.frequency(1) <= 15);
    }
}
