//! The canonical key format: a type-tagged, self-delimiting, versioned byte encoding.
//!
//! Every value that can take part in a cache key is written as one tag byte followed by a
//! payload whose length is either fixed by the tag or given by a varint prefix. Because every
//! encoding is self-delimiting, the concatenation of encodings is injective, and unordered
//! collections (dict, set, frozenset) are made order-independent by sorting their members by
//! their encoded bytes. The format is documented, with its version, in `docs/keys.md`; this
//! module is the single writer of it (the Python walker in `py/encode.rs` only calls these
//! functions).

pub mod tag;

/// The version byte that opens every call key (`func` + `inputs`). Bump it whenever any
/// encoding in this module changes, so that old persisted keys can never alias new ones.
pub const FORMAT_VERSION: u8 = 1;

/// The encoding of an int that fits in i64 (what [`KeyBuf::int`] writes): the tag, then the
/// value's 8 big-endian bytes. A whole key when the key is such an int.
#[inline(always)]
pub fn int_bytes(v: i64) -> [u8; 9] {
    let mut out = [tag::INT; 9];
    out[1..].copy_from_slice(&v.to_be_bytes());
    out
}

/// Bytes kept inline before a key spills to the heap.
const INLINE: usize = 160;

/// A buffer that canonical encodings are appended to.
///
/// Most keys are short, so the first 160 bytes live inline (on the caller's stack) and the
/// hot path allocates nothing; longer keys move to a `Vec`.
#[derive(Clone)]
pub struct KeyBuf {
    len: usize,
    inline: [u8; INLINE],
    heap: Vec<u8>,
}

impl Default for KeyBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyBuf {
    /// An empty buffer.
    #[inline(always)]
    pub fn new() -> Self {
        KeyBuf {
            len: 0,
            inline: [0; INLINE],
            heap: Vec::new(),
        }
    }

    #[inline]
    fn spilled(&self) -> bool {
        self.len > INLINE || !self.heap.is_empty()
    }

    /// The bytes written so far.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        if self.spilled() {
            &self.heap
        } else {
            &self.inline[..self.len]
        }
    }

    /// Current length (used to mark the start of a member for later sorting).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drop everything written after `len` (used to undo a partial write on error).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            if self.spilled() {
                self.heap.truncate(len);
            }
            self.len = len;
        }
    }

    /// Append raw bytes.
    #[inline(always)]
    pub fn extend(&mut self, bytes: &[u8]) {
        let new_len = self.len + bytes.len();
        if !self.spilled() {
            if new_len <= INLINE {
                self.inline[self.len..new_len].copy_from_slice(bytes);
                self.len = new_len;
                return;
            }
            self.heap.reserve(new_len * 2);
            self.heap.extend_from_slice(&self.inline[..self.len]);
        }
        self.heap.extend_from_slice(bytes);
        self.len = new_len;
    }

    #[inline(always)]
    fn push(&mut self, b: u8) {
        if !self.spilled() && self.len < INLINE {
            self.inline[self.len] = b;
            self.len += 1;
        } else {
            self.extend(&[b]);
        }
    }

    /// Take the buffer's bytes.
    pub fn into_vec(self) -> Vec<u8> {
        if self.spilled() {
            self.heap
        } else {
            self.inline[..self.len].to_vec()
        }
    }

    /// Write the opening of a call key: the version byte.
    pub fn call_header(&mut self) {
        self.push(FORMAT_VERSION);
    }

    /// Write an unsigned LEB128 varint (used for lengths and counts).
    #[inline]
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }

    /// `None`.
    pub fn none(&mut self) {
        self.push(tag::NONE);
    }

    /// `...` (Ellipsis).
    pub fn ellipsis(&mut self) {
        self.push(tag::ELLIPSIS);
    }

    /// `True` / `False`: distinct from the ints 1 and 0.
    pub fn bool(&mut self, b: bool) {
        self.push(if b { tag::TRUE } else { tag::FALSE });
    }

    /// An int that fits in i64: always this form, so every int has exactly one encoding.
    #[inline(always)]
    pub fn int(&mut self, v: i64) {
        self.extend(&int_bytes(v));
    }

    /// An int outside i64, given as its sign and big-endian magnitude.
    ///
    /// Leading zero bytes of the magnitude are stripped so the encoding is canonical. The
    /// caller guarantees the value does not fit in i64 (else [`KeyBuf::int`] must be used).
    pub fn bigint(&mut self, negative: bool, magnitude_be: &[u8]) {
        let start = magnitude_be
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(magnitude_be.len());
        let mag = &magnitude_be[start..];
        self.push(tag::BIGINT);
        self.push(u8::from(negative));
        self.varint(mag.len() as u64);
        self.extend(mag);
    }

    /// A float. Every NaN is written as the one canonical quiet NaN (so `f(nan)` can hit);
    /// `-0.0` keeps its sign (a function can tell it from `0.0`, e.g. `math.copysign`).
    pub fn float(&mut self, v: f64) {
        let bits = if v.is_nan() {
            0x7ff8_0000_0000_0000u64
        } else {
            v.to_bits()
        };
        self.push(tag::FLOAT);
        self.extend(&bits.to_be_bytes());
    }

    /// A complex number, as two floats with the same rules as [`KeyBuf::float`].
    pub fn complex(&mut self, re: f64, im: f64) {
        let canon = |v: f64| {
            if v.is_nan() {
                0x7ff8_0000_0000_0000u64
            } else {
                v.to_bits()
            }
        };
        self.push(tag::COMPLEX);
        self.extend(&canon(re).to_be_bytes());
        self.extend(&canon(im).to_be_bytes());
    }

    /// A tag and a count or length as a varint; the common case (below 128: a one-byte
    /// varint) in one append.
    #[inline(always)]
    fn header(&mut self, t: u8, n: u64) {
        if n < 0x80 {
            self.extend(&[t, n as u8]);
        } else {
            self.push(t);
            self.varint(n);
        }
    }

    /// A str, as UTF-8 with a length prefix.
    #[inline(always)]
    pub fn str(&mut self, s: &str) {
        self.header(tag::STR, s.len() as u64);
        self.extend(s.as_bytes());
    }

    /// A str given as raw bytes that the caller knows are not valid UTF-8 (lone surrogates):
    /// written under its own tag so it can never alias a valid string.
    pub fn str_surrogates(&mut self, utf8_surrogatepass: &[u8]) {
        self.header(tag::STR_SURROGATES, utf8_surrogatepass.len() as u64);
        self.extend(utf8_surrogatepass);
    }

    /// bytes / bytearray / memoryview contents.
    pub fn bytes(&mut self, b: &[u8]) {
        self.header(tag::BYTES, b.len() as u64);
        self.extend(b);
    }

    /// Open a sequence (tuple or list) of `n` members; the members follow.
    pub fn seq_header(&mut self, t: u8, n: usize) {
        self.header(t, n as u64);
    }

    /// A type-named wrapper (enum, dataclass, `__cache_key__`, subclass, type object): the
    /// tag, then the qualified type name as a str; the payload follows.
    pub fn named(&mut self, t: u8, type_name: &str) {
        self.push(t);
        self.str(type_name);
    }

    /// Sort the members written since `start` (whose byte ranges are given as offsets
    /// relative to the buffer, in order) by their encoded bytes, and rewrite them in that
    /// order. Used for dict entries and set members, which makes them order-independent.
    ///
    /// Duplicated members (which only arise from distinct Python objects with the same
    /// encoding, e.g. two NaN objects in a set) are kept: the count stays the caller's.
    pub fn sort_members(&mut self, start: usize, bounds: &[usize]) {
        if bounds.len() <= 1 {
            return;
        }
        let tail: Vec<u8> = self.as_slice()[start..].to_vec();
        self.truncate(start);
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(bounds.len());
        let mut prev = 0usize;
        for &end in bounds {
            ranges.push((prev, end - start));
            prev = end - start;
        }
        ranges.sort_unstable_by(|a, b| tail[a.0..a.1].cmp(&tail[b.0..b.1]));
        for (a, b) in ranges {
            self.extend(&tail[a..b]);
        }
    }
}

/// Read a varint at `pos`, returning the value and the position after it.
pub fn read_varint(bytes: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *bytes.get(pos)?;
        pos += 1;
        if shift >= 64 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((v, pos));
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut KeyBuf)) -> Vec<u8> {
        let mut k = KeyBuf::new();
        f(&mut k);
        k.into_vec()
    }

    #[test]
    fn ints_bools_and_floats_never_alias() {
        let one = enc(|k| k.int(1));
        let t = enc(|k| k.bool(true));
        let f1 = enc(|k| k.float(1.0));
        assert_ne!(one, t);
        assert_ne!(one, f1);
        assert_ne!(t, f1);
        assert_eq!(one, vec![tag::INT, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn nan_is_canonical_and_negative_zero_is_distinct() {
        let a = enc(|k| k.float(f64::NAN));
        let b = enc(|k| k.float(-f64::NAN));
        let c = enc(|k| k.float(f64::from_bits(0x7ff0_0000_0000_0001)));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(enc(|k| k.float(0.0)), enc(|k| k.float(-0.0)));
    }

    #[test]
    fn strings_are_length_prefixed_so_concatenation_is_injective() {
        let ab_c = enc(|k| {
            k.str("ab");
            k.str("c")
        });
        let a_bc = enc(|k| {
            k.str("a");
            k.str("bc")
        });
        assert_ne!(ab_c, a_bc);
        assert_ne!(enc(|k| k.str("x")), enc(|k| k.bytes(b"x")));
    }

    #[test]
    fn bigint_strips_leading_zeros() {
        let a = enc(|k| k.bigint(false, &[0, 0, 1, 2]));
        let b = enc(|k| k.bigint(false, &[1, 2]));
        assert_eq!(a, b);
        assert_ne!(a, enc(|k| k.bigint(true, &[1, 2])));
    }

    #[test]
    fn varint_round_trips() {
        for v in [0u64, 1, 127, 128, 300, 16_384, u32::MAX as u64, u64::MAX] {
            let b = enc(|k| k.varint(v));
            assert_eq!(read_varint(&b, 0), Some((v, b.len())));
        }
        assert_eq!(read_varint(&[0x80], 0), None);
    }

    #[test]
    fn sorted_members_are_order_independent() {
        let write = |order: &[&str]| {
            enc(|k| {
                k.seq_header(tag::SET, order.len());
                let start = k.len();
                let mut bounds = vec![];
                for s in order {
                    k.str(s);
                    bounds.push(k.len());
                }
                k.sort_members(start, &bounds);
            })
        };
        assert_eq!(write(&["b", "a", "cc"]), write(&["cc", "b", "a"]));
        assert_ne!(write(&["a", "b"]), write(&["a", "c"]));
    }

    #[test]
    fn long_keys_spill_to_the_heap_intact() {
        let mut k = KeyBuf::new();
        for i in 0..100u64 {
            k.int(i as i64);
        }
        assert_eq!(k.len(), 900);
        assert_eq!(k.as_slice()[0], tag::INT);
        assert_eq!(
            &k.as_slice()[891..900],
            &[tag::INT, 0, 0, 0, 0, 0, 0, 0, 99]
        );
        k.truncate(9);
        assert_eq!(k.as_slice().len(), 9);
        k.int(7);
        assert_eq!(k.clone().into_vec().len(), 18);
    }

    #[test]
    fn complex_has_fixed_layout() {
        let c = enc(|k| k.complex(1.0, -0.0));
        assert_eq!(c.len(), 17);
        assert_eq!(c[0], tag::COMPLEX);
        assert_ne!(c, enc(|k| k.complex(1.0, 0.0)));
        assert_eq!(
            enc(|k| k.complex(f64::NAN, 0.0)),
            enc(|k| k.complex(-f64::NAN, 0.0))
        );
    }
}
