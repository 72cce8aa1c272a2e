//! A 4-bit count-min sketch that estimates how often a key was seen recently.
//!
//! Sixteen 4-bit counters are packed per `u64`; each key maps to four counters in four
//! different words. An estimate is the minimum of its four counters, so collisions can only
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

const SEEDS: [u64; 4] = [
    0x97cb_3127_dc3c_4d8b,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0x9e37_79b9_7f4a_7c15,
];

impl Sketch {
    /// A sketch sized for a cache of about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        // one 64-bit word (16 counters) per two entries of capacity, at least 8 words
        let words = (capacity.max(16) / 2).next_power_of_two();
        let sample = (capacity.max(16) as u64 * 10).min(u32::MAX as u64) as u32;
        Sketch {
            table: vec![0; words],
            mask: words - 1,
            additions: 0,
            sample_size: sample,
        }
    }

    /// Number of 64-bit words in the table (for memory accounting).
    pub fn words(&self) -> usize {
        self.table.len()
    }

    #[inline]
    fn slot(&self, hash: u64, i: usize) -> (usize, u32) {
        let h = (hash ^ SEEDS[i]).wrapping_mul(SEEDS[(i + 1) & 3]);
        let h = h ^ (h >> 31);
        let word = (h as usize) & self.mask;
        let nibble = ((h >> 58) & 15) as u32;
        (word, nibble * 4)
    }

    /// The estimated recent frequency of `hash` (0..=15).
    #[inline]
    pub fn frequency(&self, hash: u64) -> u8 {
        let mut min = 15u64;
        for i in 0..4 {
            let (w, shift) = self.slot(hash, i);
            min = min.min((self.table[w] >> shift) & 15);
        }
        min as u8
    }

    /// Count one more occurrence of `hash`.
    #[inline]
    pub fn increment(&mut self, hash: u64) {
        let mut added = false;
        for i in 0..4 {
            let (w, shift) = self.slot(hash, i);
            if (self.table[w] >> shift) & 15 < 15 {
                self.table[w] += 1u64 << shift;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample_size {
                self.reset();
            }
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
