//! A compact owned byte string for canonical keys: up to 22 bytes inline, longer on the heap.
//!
//! Most keys (ints, short strings, small tuples) fit inline, so storing them costs no
//! allocation and 24 bytes per entry.

const INLINE: usize = 22;

/// Owned canonical key bytes.
#[derive(Clone)]
pub enum KeyBytes {
    /// Short key stored in place.
    Inline {
        /// Number of bytes used in `data`.
        len: u8,
        /// The bytes (only the first `len` are meaningful).
        data: [u8; INLINE],
    },
    /// Long key on the heap.
    Heap(Box<[u8]>),
}

impl KeyBytes {
    /// Copy `bytes` into a new key.
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            KeyBytes::Inline {
                len: bytes.len() as u8,
                data,
            }
        } else {
            KeyBytes::Heap(bytes.into())
        }
    }

    /// The key's bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, data } => &data[..*len as usize],
            KeyBytes::Heap(b) => b,
        }
    }

    /// Whether this key's bytes equal `key`. Short keys compare with a few overlapping
    /// word loads instead of a `memcmp` call (this runs on every lookup).
    #[inline(always)]
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            KeyBytes::Inline { len, data } => {
                *len as usize == key.len() && short_eq(&data[..key.len()], key)
            }
            KeyBytes::Heap(b) => **b == *key,
        }
    }

    /// Heap bytes owned beyond the inline representation.
    pub fn heap_bytes(&self) -> usize {
        match self {
            KeyBytes::Inline { .. } => 0,
            KeyBytes::Heap(b) => b.len(),
        }
    }
}

/// Equality of two slices of the same length (at most 22 bytes), by overlapping loads.
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    debug_assert_eq!(n, b.len());
    let w8 = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let w4 = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    if n >= 16 {
        w8(a, 0) == w8(b, 0) && w8(a, 8) == w8(b, 8) && w8(a, n - 8) == w8(b, n - 8)
    } else if n >= 8 {
        w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8)
    } else if n >= 4 {
        w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4)
    } else if n > 0 {
        // the first, middle and last bytes cover every byte of 1..=3
        a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]
    } else {
        true
    }
}

impl PartialEq for KeyBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for KeyBytes {}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyBytes({:02x?})", self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_keys_compare_by_content() {
        assert_eq!(std::mem::size_of::<KeyBytes>(), 24);
        let short = KeyBytes::new(b"abc");
        let long = KeyBytes::new(&[7u8; 40]);
        assert!(matches!(short, KeyBytes::Inline { .. }));
        assert!(matches!(long, KeyBytes::Heap(_)));
        assert_eq!(short.as_slice(), b"abc");
        assert_eq!(long.as_slice(), &[7u8; 40][..]);
        assert_eq!(KeyBytes::new(&[1u8; 22]).heap_bytes(), 0);
        assert_eq!(KeyBytes::new(&[1u8; 23]).heap_bytes(), 23);
        assert_ne!(KeyBytes::new(b"ab"), KeyBytes::new(b"ab\0"));
        assert!(short.matches(b"abc"));
        assert!(!short.matches(b"abc\0"));
        assert!(!short.matches(b"ab"));
        assert!(long.matches(&[7u8; 40]));
        assert!(!long.matches(&[7u8; 39]));
        assert!(!KeyBytes::new(&[1u8; 22]).matches(&[1u8; 23]));
    }

    #[test]
    fn short_keys_differing_in_any_byte_do_not_match() {
        for n in 0..=22usize {
            let base: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            let k = KeyBytes::new(&base);
            assert!(k.matches(&base), "len {n}");
            for i in 0..n {
                let mut other = base.clone();
                other[i] ^= 0x40;
                assert!(!k.matches(&other), "len {n}, byte {i}");
            }
        }
    }
}
