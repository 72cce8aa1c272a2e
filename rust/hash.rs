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
/// so the hot lookup of an int key hashes it in registers: hashing its 9 bytes right after
/// writing them loads a word that spans two stores, which the CPU cannot forward (a stall
/// that cost more than the rest of `Store.get`'s hashing and probing).
#[inline]
pub fn fast_hash(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    if let [crate::key::tag::INT, value @ ..] = bytes {
        if let Ok(be) = <[u8; 8]>::try_from(value) {
            return hash_int(i64::from_be_bytes(be));
        }
    }
    foldhash::fast::FixedState::with_seed(FAST_SEED).hash_one(bytes)
}

/// [`fast_hash`] of the canonical bytes of `v` (`crate::key::int_bytes(v)`).
#[inline(always)]
pub fn hash_int(v: i64) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(FAST_SEED).hash_one(v as u64)
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
}
