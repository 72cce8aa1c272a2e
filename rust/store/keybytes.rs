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

    /// Whether this key's bytes equal `probe` (a lookup key). Short keys compare as fixed
    /// 22-byte arrays, which compiles to a few word compares instead of a `memcmp` call.
    #[inline(always)]
    pub fn matches(&self, probe: &Probe<'_>) -> bool {
        match (self, probe.inline) {
            (KeyBytes::Inline { len, data }, Some(p)) => {
                *len as usize == probe.bytes.len() && *data == p
            }
            (KeyBytes::Heap(b), None) => **b == *probe.bytes,
            _ => false,
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

/// A lookup key prepared for [`KeyBytes::matches`]: short keys are zero-padded once.
pub struct Probe<'a> {
    bytes: &'a [u8],
    inline: Option<[u8; INLINE]>,
}

impl<'a> Probe<'a> {
    /// Prepare `bytes` for comparisons.
    #[inline(always)]
    pub fn new(bytes: &'a [u8]) -> Self {
        let inline = if bytes.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            Some(data)
        } else {
            None
        };
        Probe { bytes, inline }
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
        assert!(short.matches(&Probe::new(b"abc")));
        assert!(!short.matches(&Probe::new(b"abc\0")));
        assert!(!short.matches(&Probe::new(b"ab")));
        assert!(long.matches(&Probe::new(&[7u8; 40])));
        assert!(!long.matches(&Probe::new(&[7u8; 39])));
        assert!(!KeyBytes::new(&[1u8; 22]).matches(&Probe::new(&[1u8; 23])));
    }
}
