//! Digests of canonical key bytes: blake3 (the default scheme) and md5 (AgentHeaven
//! compatibility), both truncated/read as a 128-bit unsigned integer, plus the fast
//! non-cryptographic hash the in-memory table uses.

use md5::{Digest, Md5};

/// The 128-bit blake3 digest of `bytes`: the first 16 bytes of the hash, big-endian.
pub fn blake3_128(bytes: &[u8]) -> u128 {
    let h = blake3::hash(bytes);
    let mut first = [0u8; 16];
    first.copy_from_slice(&h.as_bytes()[..16]);
    u128::from_be_bytes(first)
}

/// The md5 digest of `bytes` as a big-endian 128-bit integer (what Python's
/// `int(md5(b).hexdigest(), 16)` gives).
pub fn md5_128(bytes: &[u8]) -> u128 {
    let out = Md5::digest(bytes);
    let mut a = [0u8; 16];
    a.copy_from_slice(&out);
    u128::from_be_bytes(a)
}

/// The digest schemes a key can be computed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// blake3 over cachehaven's canonical bytes (the default).
    Blake3,
    /// md5 over the same canonical bytes.
    Md5,
}

impl Scheme {
    /// Parse a scheme name as users write it.
    pub fn parse(name: &str) -> Option<Scheme> {
        match name {
            "blake3" => Some(Scheme::Blake3),
            "md5" => Some(Scheme::Md5),
            _ => None,
        }
    }

    /// Digest `bytes` with this scheme.
    pub fn digest(self, bytes: &[u8]) -> u128 {
        match self {
            Scheme::Blake3 => blake3_128(bytes),
            Scheme::Md5 => md5_128(bytes),
        }
    }
}

/// Seed of [`fast_hash`].
const FAST_SEED: u64 = 0x6361_6368_6568_6176;

/// The in-memory table's hash: fast, with a fixed seed (it never leaves the process and is
/// never used as a persisted key, so determinism across runs is not needed, but a fixed seed
/// keeps benchmarks repeatable).
///
/// The canonical bytes of an int that fits in i64 hash by the int's value ([`hash_int`]),
/// and those of a str by its UTF-8 ([`hash_str`]), so the hot lookup of such a key hashes
/// it from a register or from the str object's own bytes: hashing the key bytes right
/// after writing them loads words that span two stores, which the CPU cannot forward (a
/// stall that cost more than the rest of `Store.get`'s hashing and probing).
#[inline]
pub fn fast_hash(bytes: &[u8]) -> u64 {
    use crate::key::{read_varint, tag};
    use std::hash::BuildHasher;
    match bytes {
        [tag::INT, value @ ..] => {
            if let Ok(be) = <[u8; 8]>::try_from(value) {
                return hash_int(i64::from_be_bytes(be));
            }
        }
        [tag::STR, ..] => {
            if let Some((len, at)) = read_varint(bytes, 1) {
                if len == (bytes.len() - at) as u64 {
                    return hash_str(&bytes[at..]);
                }
            }
        }
        _ => {}
    }
    foldhash::fast::FixedState::with_seed(FAST_SEED).hash_one(bytes)
}

/// [`fast_hash`] of the canonical bytes of `v` (`crate::key::int_bytes(v)`).
#[inline(always)]
pub fn hash_int(v: i64) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(FAST_SEED).hash_one(v as u64)
}

/// [`fast_hash`] of the canonical bytes of a str whose UTF-8 is `utf8`.
#[inline(always)]
pub fn hash_str(utf8: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(FAST_SEED).hash_one(utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_known_vector() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(md5_128(b""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }

    #[test]
    fn blake3_matches_known_vector() {
        // blake3("") = af1349b9f5f9a1a6a0404dea36dcc949 9bcb25c9adc112b7cc9a93cae41f3262
        assert_eq!(blake3_128(b""), 0xaf1349b9f5f9a1a6a0404dea36dcc949);
    }

    #[test]
    fn scheme_names() {
        assert_eq!(Scheme::parse("blake3"), Some(Scheme::Blake3));
        assert_eq!(Scheme::parse("md5"), Some(Scheme::Md5));
        assert_eq!(Scheme::parse("sha1"), None);
        assert_ne!(fast_hash(b"a"), fast_hash(b"b"));
    }

    #[test]
    fn int_keys_hash_by_value_and_other_keys_by_bytes() {
        for v in [0i64, 1, -1, 7, i64::MIN, i64::MAX, 1 << 40] {
            let bytes = crate::key::int_bytes(v);
            assert_eq!(fast_hash(&bytes), hash_int(v));
            // the same 9 bytes under another tag (a float, say) hash as bytes
            let mut other = bytes;
            other[0] = crate::key::tag::FLOAT;
            assert_ne!(fast_hash(&other), hash_int(v));
        }
        assert_ne!(hash_int(1), hash_int(2));
    }

    #[test]
    fn str_keys_hash_by_their_utf8() {
        for s in ["", "a", "ab", "日本語", &"x".repeat(200)] {
            let mut buf = crate::key::KeyBuf::new();
            buf.str(s);
            assert_eq!(fast_hash(buf.as_slice()), hash_str(s.as_bytes()), "{s:?}");
        }
        // a str-tagged byte string that is not one whole str hashes as bytes
        assert_ne!(fast_hash(&[crate::key::tag::STR, 2, b'a']), hash_str(b"a"));
        assert_ne!(
            fast_hash(&[crate::key::tag::STR, 1, b'a', b'b']),
            hash_str(b"ab")
        );
        assert_ne!(hash_str(b"a"), hash_str(b"b"));
    }
}
