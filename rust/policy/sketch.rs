//! A 4-bit count-min sketch that estimates how often a key was seen recently.
//!
//! Sixteen 4-bit counters are packed per `u64`. A key picks one 64-byte block (eight words,
//! one cache line) and, within it, four counters at depths 0..4, depth `d` in word `2d` or
//! `2d + 1` at a nibble chosen by its own bits. An update or estimate touches a single cache
//! line: with the store's sketch larger than L1, four scattered counters cost four misses per
//! operation, and the eviction duel reads two estimates per evicting insert, so this layout
//! is what keeps a set with eviction fast. An estimate is the minimum of the four, so
//! collisions can only over-estimate.
//!
//! Ageing: every `sample_size` increments all counters are halved (TinyLFU's "reset"), and the
//! increment count is halved and reduced by a quarter of the odd counters (whose halving
//! dropped half a count each), so ageing keeps a steady pace. Old popularity fades and the
//! sketch follows shifting workloads.
//!
//! Hash flooding: the block and the counter positions come from the key hash mixed with a
//! per-sketch random seed, so an attacker who can predict the store's (fixed-seed) key hash
//! still cannot aim keys at a hot key's counters.

/// One block: eight words, aligned to a cache line (a `Vec<u64>` is only 8- or 16-byte
/// aligned, and a block straddling two lines would cost two misses per access).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Line([u64; BLOCK]);

/// The frequency sketch.
#[derive(Clone, Debug)]
pub struct Sketch {
    table: Vec<Line>,
    /// Blocks - 1 (the number of blocks is a power of two).
    block_mask: u64,
    additions: u32,
    sample_size: u32,
    seed: u64,
}

/// Words per block (one 64-byte cache line).
const BLOCK: usize = 8;

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
        let words = want.clamp(BLOCK, 1 << 30).next_power_of_two();
        Sketch {
            table: vec![Line::default(); words / BLOCK],
            block_mask: (words / BLOCK) as u64 - 1,
            additions: 0,
            sample_size: sample_size.clamp(16, u64::from(u32::MAX / 2)) as u32,
            seed,
        }
    }

    /// Number of 64-bit words in the table (for memory accounting).
    pub fn words(&self) -> usize {
        self.table.len() * BLOCK
    }

    /// The block of `hash` and its four (word in the block, bit shift) counter positions:
    /// the block from the low bits of the seeded mix; within it, the counter of depth `d`
    /// lies in word `2d` or `2d + 1` (so the four are in different words) at a nibble chosen
    /// by its own bits of the high half.
    #[inline(always)]
    fn slots(&self, hash: u64) -> (usize, [(usize, u32); 4]) {
        let h = super::mix(hash ^ self.seed);
        let block = (h & self.block_mask) as usize;
        let bits = (h >> 32) as u32;
        let mut out = [(0usize, 0u32); 4];
        for (d, slot) in out.iter_mut().enumerate() {
            let b = bits >> (d * 8);
            *slot = (2 * d + (b & 1) as usize, ((b >> 1) & 15) * 4);
        }
        (block, out)
    }

    /// The estimated recent frequency of `hash` (0..=15).
    #[inline]
    pub fn frequency(&self, hash: u64) -> u8 {
        let (block, slots) = self.slots(hash);
        debug_assert!(block < self.table.len());
        // SAFETY: `block <= block_mask == table.len() - 1` (the length is a power of two,
        // fixed at construction).
        let line = unsafe { &self.table.get_unchecked(block).0 };
        let mut min = 15u64;
        for (w, shift) in slots {
            min = min.min((line[w] >> shift) & 15);
        }
        min as u8
    }

    /// Count one more occurrence of `hash` (counters saturate at 15).
    #[inline]
    pub fn increment(&mut self, hash: u64) {
        let (block, slots) = self.slots(hash);
        debug_assert!(block < self.table.len());
        // SAFETY: as in `frequency`: `block < self.table.len()`.
        let line = unsafe { &mut self.table.get_unchecked_mut(block).0 };
        let mut added = 0u64;
        for (w, shift) in slots {
            let word = &mut line[w];
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
        for w in self.table.iter_mut().flat_map(|l| l.0.iter_mut()) {
            odd += (*w & ONE_MASK).count_ones();
            *w = (*w >> 1) & RESET_MASK;
        }
        self.additions = (self.additions >> 1).saturating_sub(odd >> 2);
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.table.fill(Line::default());
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
        assert_eq!(a.frequency(99), 3);
        assert_eq!(b.frequency(99), 0);
        // another seed puts nearly every key in another block
        let same_block = (0..1000u64)
            .filter(|&k| a.slots(k).0 == b.slots(k).0)
            .count();
        assert!(
            same_block < 20,
            "{same_block} of 1000 keys kept their block"
        );
    }

    #[test]
    fn a_key_touches_one_cache_line() {
        let s = sketch(4096);
        for cap in [1, 100, 4096, 100_000] {
            let t = sketch(cap);
            assert_eq!(
                t.table.as_ptr() as usize % 64,
                0,
                "blocks are cache-line aligned"
            );
        }
        for k in 0..1000u64 {
            let (block, slots) = s.slots(k);
            assert!(block < s.table.len());
            let words: Vec<usize> = slots.iter().map(|&(w, _)| w / 2).collect();
            assert_eq!(words, [0, 1, 2, 3], "each depth in its own word pair");
        }
    }

    #[test]
    fn min_words_and_power_of_two_sizes() {
        assert_eq!(Sketch::new(10, 1.0, 512, 100, 0).words(), 512);
        assert_eq!(Sketch::new(1000, 1.0, 0, 100, 0).words(), 1024);
        assert_eq!(Sketch::new(0, 1.0, 0, 100, 0).words(), 8);
    }
}
