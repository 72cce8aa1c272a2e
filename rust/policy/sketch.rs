//! A 4-bit count-min sketch that estimates how often a key was seen recently.
//!
//! Sixteen 4-bit counters are packed per `u64`; a key has four counters at depths 0..4, each
//! in its own word chosen by a differently seeded hash, at nibble `4 * (h & 3) + depth` (the
//! classic TinyLFU layout of Caffeine's sketch). An estimate is the minimum of the four, so
//! collisions can only over-estimate.
//!
//! Ageing: every `sample_size` increments all counters are halved (TinyLFU's "reset"), and the
//! increment count is halved and reduced by a quarter of the odd counters (whose halving
//! dropped half a count each), so ageing keeps a steady pace. Old popularity fades and the
//! sketch follows shifting workloads.
//!
//! Hash flooding: counter positions come from the key hash mixed with a per-sketch random
//! seed, so an attacker who can predict the store's (fixed-seed) key hash still cannot aim
//! keys at a hot key's counters.

/// The frequency sketch.
#[derive(Clone, Debug)]
pub struct Sketch {
    table: Vec<u64>,
    mask: u64,
    additions: u32,
    sample_size: u32,
    seed: u64,
}

/// Multipliers of the four depths (from FNV-1a, CityHash and Murmur3, as in Caffeine).
const SEEDS: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];

const ONE_MASK: u64 = 0x1111_1111_1111_1111;
const RESET_MASK: u64 = 0x7777_7777_7777_7777;

impl Sketch {
    /// A sketch for a cache of about `capacity` entries: `words_per_entry` 64-bit words (16
    /// counters each) per entry of capacity but at least `min_words`, rounded up to a power of
    /// two, halving every `sample_size` increments. `seed` salts the counter positions.
    pub fn new(
        capacity: usize,
        words_per_entry: f64,
        min_words: usize,
        sample_size: u64,
        seed: u64,
    ) -> Self {
        let want = ((capacity as f64 * words_per_entry).ceil() as usize).max(min_words);
        let words = want.clamp(8, 1 << 30).next_power_of_two();
        Sketch {
            table: vec![0; words],
            mask: words as u64 - 1,
            additions: 0,
            sample_size: sample_size.clamp(16, u64::from(u32::MAX / 2)) as u32,
            seed,
        }
    }

    /// Number of 64-bit words in the table (for memory accounting).
    pub fn words(&self) -> usize {
        self.table.len()
    }

    /// The (word, bit shift) of the counter of `hash` at `depth`.
    #[inline(always)]
    fn slot(&self, hash: u64, depth: usize) -> (usize, u32) {
        let mut h = hash.wrapping_add(SEEDS[depth]).wrapping_mul(SEEDS[depth]);
        h = h.wrapping_add(h >> 32);
        (
            (h & self.mask) as usize,
            (((hash & 3) << 2) as u32 + depth as u32) << 2,
        )
    }

    /// The estimated recent frequency of `hash` (0..=15).
    #[inline]
    pub fn frequency(&self, hash: u64) -> u8 {
        let hash = hash ^ self.seed;
        let mut min = 15u64;
        for depth in 0..4 {
            let (w, shift) = self.slot(hash, depth);
            debug_assert!(w < self.table.len());
            // SAFETY: `w = h & mask` with `mask == table.len() - 1` (the length is a power of
            // two fixed at construction), so `w < table.len()`.
            let word = unsafe { *self.table.get_unchecked(w) };
            min = min.min((word >> shift) & 15);
        }
        min as u8
    }

    /// Count one more occurrence of `hash` (counters saturate at 15).
    #[inline]
    pub fn increment(&mut self, hash: u64) {
        let hash = hash ^ self.seed;
        let mut added = 0u64;
        for depth in 0..4 {
            let (w, shift) = self.slot(hash, depth);
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

    /// Halve every counter (ageing). O(table), once per `sample_size` increments, so O(1)
    /// amortised per increment.
    fn reset(&mut self) {
        let mut odd = 0u32;
        for w in self.table.iter_mut() {
            odd += (*w & ONE_MASK).count_ones();
            *w = (*w >> 1) & RESET_MASK;
        }
        self.additions = (self.additions >> 1).saturating_sub(odd >> 2);
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

    fn sketch(capacity: usize) -> Sketch {
        Sketch::new(capacity, 1.0, 0, capacity as u64 * 10, 0x1234)
    }

    #[test]
    fn counts_saturate_at_fifteen_and_age() {
        let mut s = sketch(64);
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
        let mut s = sketch(1024);
        for k in 0..1000u64 {
            s.increment(super::super::mix(k));
        }
        let hot = super::super::mix(7);
        for _ in 0..5 {
            s.increment(hot);
        }
        assert!(s.frequency(hot) >= 5);
        let rare: u32 = (100..200u64)
            .map(|k| u32::from(s.frequency(super::super::mix(k))))
            .sum();
        assert!(rare < 150, "collisions inflate estimates too much: {rare}");
    }

    #[test]
    fn sample_size_triggers_reset() {
        let mut s = sketch(16);
        for k in 0..10_000u64 {
            s.increment(k % 3);
        }
        assert!(s.additions < s.sample_size);
        assert!(s.frequency(1) <= 15);
    }

    #[test]
    fn the_seed_moves_the_counters() {
        let mut a = Sketch::new(1024, 1.0, 0, 1 << 30, 1);
        let b = Sketch::new(1024, 1.0, 0, 1 << 30, 2);
        for _ in 0..3 {
            a.increment(99);
        }
        let same = (0..4)
            .filter(|&d| a.slot(99 ^ 1, d) == b.slot(99 ^ 2, d))
            .count();
        assert_eq!(same, 0);
        assert_eq!(a.frequency(99), 3);
    }

    #[test]
    fn min_words_and_power_of_two_sizes() {
        assert_eq!(Sketch::new(10, 1.0, 512, 100, 0).words(), 512);
        assert_eq!(Sketch::new(1000, 1.0, 0, 100, 0).words(), 1024);
        assert_eq!(Sketch::new(0, 1.0, 0, 100, 0).words(), 8);
    }
}
