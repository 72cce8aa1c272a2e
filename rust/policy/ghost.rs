//! Ghost lists: which keys recently left the window, and which left the main region.
//!
//! The adaptive policy sizes its window by the marginal value of space on each side, as ARC
//! does: a miss on a key that recently *left the window* would have been a hit with a window
//! a little larger; a miss on a key recently *evicted from the main region* would have been a
//! hit with a main region a little larger. Each side remembers the fingerprints (32-bit key
//! hashes) of its last `n` departures, `n` being a small share of the capacity, so both answer
//! "would `n` more slots on this side have turned this miss into a hit?".
//!
//! This runs on every miss and every eviction, so it must cost a few dozen instructions and
//! one cache line per use. The ghosts are a set-associative table of 64-byte buckets, a key's
//! bucket chosen by its fingerprint; a bucket holds four entries of each side, so a lookup
//! reads one line for both sides. An entry holds a fingerprint and its departure stamp, the
//! side's departure count at the time; a departure is "recent" while fewer than `n` later
//! departures happened on its side, so ageing needs no queue and a stale entry is simply
//! free. Recording writes into the key's bucket, over the same fingerprint's entry of that
//! side, else its oldest (free and stale entries are the oldest). With `n` live entries per
//! side in `2n` to `4n` of its slots, fewer than one recent departure in 500 is lost to a
//! full bucket (one in 3,000 at `n` = 300, against an exact model), which costs the
//! adaptation one signal, never correctness. The sides have their own ways and their own
//! counts, so a side that records rarely (the main region while the window fills most of the
//! cache) keeps its last departures however many the other side records; those are what bring
//! a grown window back. A key recent on both sides counts as evicted from main (it was
//! evicted, came back and left the window). Memory: 32 to 64 bytes per remembered key and
//! side, so 2 to 4 bytes per entry of capacity
//! at `n` = 3% of it.

/// The side a key left from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departed {
    /// Left the window (admitted or not).
    Window = 0,
    /// Evicted from the main region.
    Main = 1,
}

/// Entries per side in a bucket: a bucket is one 64-byte cache line holding both sides.
const WAYS: usize = 4;
/// Entries in a bucket.
const LANES: usize = 2 * WAYS;

/// A bucket: four remembered departures of each side (lanes `4 * side ..`), fingerprints and
/// stamps in separate arrays so the loops over them compile to a few vector compares. A
/// stamp is its side's departure count then (0 marks a free entry; the count skips 0 when it
/// wraps, after 2^32 departures, by which time every bucket has been rewritten many times
/// over, so ages computed with wrapping arithmetic stay exact).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Bucket {
    fps: [u32; LANES],
    stamps: [u32; LANES],
}

/// The two ghost lists of an adaptive policy.
#[derive(Debug)]
pub struct Ghosts {
    buckets: Vec<Bucket>,
    /// Departures so far per side (wrapping, never 0 once counting).
    counts: [u32; 2],
    mask: usize,
    /// Departures remembered per side.
    cap: u32,
}

impl Ghosts {
    /// Lists remembering the last `remember` departures per side.
    pub fn new(remember: usize) -> Self {
        let cap = remember.max(1);
        // 2 to 4 slots per live entry and side: a side's 4 ways in a bucket then overflow
        // (losing their oldest entry early) for fewer than one departure in 200 at worst
        let buckets = cap.next_power_of_two();
        Ghosts {
            buckets: vec![Bucket::default(); buckets],
            counts: [0; 2],
            mask: buckets - 1,
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
        }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// The bucket of `fp`: a fingerprint is already a hash, so one multiply spreads it
    /// (bits 40.. of the product; the table has at most 2^16 buckets).
    #[inline]
    fn bucket(&self, fp: u32) -> usize {
        (u64::from(fp).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize & self.mask
    }

    /// Remember that the key with fingerprint `fp` left `side` (its earlier departure from
    /// that side, if remembered, is replaced).
    pub fn record(&mut self, fp: u32, side: Departed) {
        let b = self.bucket(fp);
        let count = &mut self.counts[side as usize];
        *count = count.wrapping_add(1).max(1);
        let count = *count;
        let base = side as usize * WAYS;
        // SAFETY: `b <= mask == buckets.len() - 1` (a power of two, fixed at construction).
        let k = unsafe { self.buckets.get_unchecked_mut(b) };
        // overwrite the same fingerprint's entry, else the oldest: ages by wrapping
        // subtraction make a free entry (stamp 0) the oldest of all, branch-free
        let mut same = 0u32;
        let mut ages = [0u32; WAYS];
        for (w, age) in ages.iter_mut().enumerate() {
            let s = k.stamps[base + w];
            *age = count.wrapping_sub(s);
            same |= u32::from((k.fps[base + w] == fp) & (s != 0)) << w;
        }
        let way = if same != 0 {
            same.trailing_zeros() as usize
        } else {
            let oldest = ages.iter().copied().max().unwrap_or(0);
            ages.iter().position(|&a| a == oldest).unwrap_or(0)
        };
        k.fps[base + way] = fp;
        k.stamps[base + way] = count;
    }

    /// The side the key with fingerprint `fp` recently left, if it is among the last
    /// departures of that side; the main region when both. Reads one cache line.
    #[inline]
    pub fn departed(&self, fp: u32) -> Option<Departed> {
        // SAFETY: as in `record`, the bucket index is masked to the table.
        let k = unsafe { self.buckets.get_unchecked(self.bucket(fp)) };
        let mut recent = [0u32; LANES];
        for (w, r) in recent.iter_mut().enumerate() {
            let s = k.stamps[w];
            let age = self.counts[w / WAYS].wrapping_sub(s);
            *r = u32::from((k.fps[w] == fp) & (s != 0) & (age < self.cap));
        }
        let on = |side: Departed| {
            let lanes = &recent[side as usize * WAYS..][..WAYS];
            lanes.iter().fold(0, |a, &r| a | r) != 0
        };
        if on(Departed::Main) {
            Some(Departed::Main)
        } else if on(Departed::Window) {
            Some(Departed::Window)
        } else {
            None
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        self.counts = [0; 2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_departures_per_side() {
        let mut g = Ghosts::new(100);
        let side_of = |g: &Ghosts, fps: std::ops::Range<u32>| -> Vec<Option<Departed>> {
            fps.map(|fp| g.departed(fp)).collect()
        };
        // forgotten departures are never reported; a remembered one may rarely be lost to a
        // full bucket (see the module docs), never reported on the wrong side
        let all = |v: Vec<Option<Departed>>, want: Option<Departed>| match want {
            None => v.iter().all(Option::is_none),
            Some(_) => {
                v.iter().all(|&d| d.is_none() || d == want)
                    && v.iter().filter(|d| d.is_none()).count() * 100 <= v.len()
            }
        };
        for fp in 0..100u32 {
            g.record(fp, Departed::Window);
        }
        assert!(all(side_of(&g, 0..100), Some(Departed::Window)));
        for fp in 1000..1050u32 {
            g.record(fp, Departed::Window);
        }
        // the 50 oldest were forgotten, the 50 most recent of the first batch remain
        assert!(all(side_of(&g, 0..50), None));
        assert!(all(side_of(&g, 50..100), Some(Departed::Window)));
        // the sides age separately: main departures do not push out window ones
        for fp in 5000..5100u32 {
            g.record(fp, Departed::Main);
        }
        assert!(all(side_of(&g, 1000..1050), Some(Departed::Window)));
        assert!(all(side_of(&g, 5000..5100), Some(Departed::Main)));
        // remembered on both sides: main wins, whatever the order
        g.record(1040, Departed::Main);
        assert_eq!(g.departed(1040), Some(Departed::Main));
        g.record(5050, Departed::Window);
        assert_eq!(g.departed(5050), Some(Departed::Main));
        // and once the main departure is forgotten, the window one still counts
        for fp in 7000..7100u32 {
            g.record(fp, Departed::Main);
        }
        assert_eq!(g.departed(5050), Some(Departed::Window));
        g.clear();
        assert!(g.departed(1049).is_none() && g.departed(5099).is_none());
    }

    /// Against an exact model: never a false "recently departed" (fingerprints here are
    /// distinct per key), the right side, and at most a small share of recent departures
    /// lost to full buckets.
    #[test]
    fn agrees_with_an_exact_model() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for cap in [1usize, 2, 3, 7, 16, 33, 300] {
            let mut g = Ghosts::new(cap);
            // each fingerprint's latest departure from each side (that side's count then)
            let mut latest = [
                std::collections::HashMap::new(),
                std::collections::HashMap::new(),
            ];
            let mut counts = [0u64; 2];
            let (mut recent, mut found) = (0u64, 0u64);
            let keys = 8 * cap as u32 + 8;
            for _ in 0..20_000 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let fp = (state >> 40) as u32 % keys;
                let side = if state >> 63 == 1 {
                    Departed::Main
                } else {
                    Departed::Window
                };
                g.record(fp, side);
                counts[side as usize] += 1;
                latest[side as usize].insert(fp, counts[side as usize]);
                for probe in 0..keys {
                    let recent_on = |s: usize| {
                        latest[s]
                            .get(&probe)
                            .is_some_and(|&n| counts[s] - n < cap as u64)
                    };
                    let want = if recent_on(1) {
                        Some(Departed::Main)
                    } else if recent_on(0) {
                        Some(Departed::Window)
                    } else {
                        None
                    };
                    let got = g.departed(probe);
                    if want.is_some() {
                        recent += 1;
                        found += u64::from(got == want);
                    }
                    // never a departure that is not recent (a lost main entry may leave the
                    // window one visible)
                    let window_too = got == Some(Departed::Window) && recent_on(0);
                    assert!(
                        got.is_none() || got == want || window_too,
                        "{probe}: {got:?} vs {want:?}"
                    );
                }
            }
            assert!(
                found * 1000 >= recent * 995,
                "cap {cap}: {found} of {recent}"
            );
        }
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }
}
