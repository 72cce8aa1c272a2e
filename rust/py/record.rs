//! The stored record's JSON (see `cachehaven.serialize`) for plain data, written and read
//! without building an intermediate tree.
//!
//! `record_encode` writes exactly the bytes `serialize._json_bytes(record_to_jsonable(...))`
//! gives, and `record_decode` returns exactly what `serialize.load_record` reads, but only
//! for records whose values are *plain* JSON data: exact `None`, `bool`, `int` within
//! ±(2**53 - 1), finite `float`, `str` without lone surrogates, `list`, and `dict` with `str`
//! keys other than the tag key, nested less than `MAX_DEPTH` deep. For anything else (a type
//! tag, a `\u` escape, malformed or foreign data...) both return `None`, and the Python
//! implementation, which handles every case and raises the errors, takes over. So these
//! functions never decide what is valid: they only skip the Python walk where it would give
//! the same result.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyEllipsis, PyFloat, PyInt, PyList, PyString, PyTuple};
use smallvec::SmallVec;

use super::key::Key;

/// The record layout version written and read here (`serialize.RECORD_VERSION`).
const RECORD_VERSION: i64 = 1;
/// The key marking a tagged JSON object (`serialize.TAG`).
const TAG: &str = "__ch__";
/// Containers may nest this deep (`serialize.MAX_DEPTH`); deeper values take the Python path.
pub const MAX_DEPTH: usize = 100;
/// Largest integer written as a plain JSON number (`2**53 - 1`).
const SAFE_INT: i64 = (1 << 53) - 1;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The bytes a JSON string holds as they are in the common case: printable ASCII but `"`
/// and `\` (control characters, escapes and UTF-8 take the general path of `Reader::text`).
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x20;
    while c < 0x80 {
        t[c] = c != b'"' as usize && c != b'\\' as usize;
        c += 1;
    }
    t
};

// ------------------------------------------------------------------ base64

/// Standard base64 with padding (`binascii.b2a_base64(data, newline=False)`).
fn b64_encode(data: &[u8], out: &mut Vec<u8>) {
    fn quad(n: u32) -> [u8; 4] {
        [
            B64[(n >> 18) as usize & 63],
            B64[(n >> 12) as usize & 63],
            B64[(n >> 6) as usize & 63],
            B64[n as usize & 63],
        ]
    }
    out.reserve(data.len().div_ceil(3) * 4);
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        out.extend_from_slice(&quad(
            (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]),
        ));
    }
    match *chunks.remainder() {
        [a] => {
            out.extend_from_slice(&quad(u32::from(a) << 16)[..2]);
            out.extend_from_slice(b"==");
        }
        [a, b] => {
            out.extend_from_slice(&quad((u32::from(a) << 16) | (u32::from(b) << 8))[..3]);
            out.push(b'=');
        }
        _ => {}
    }
}

/// Each byte's value as a base64 digit, or 0xFF.
const B64_VALUE: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 64 {
        t[B64[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn b64_value(c: u8) -> Option<u32> {
    match B64_VALUE[usize::from(c)] {
        0xFF => None,
        v => Some(u32::from(v)),
    }
}

/// The bytes of *canonical* standard base64 (the only form `b64_encode` writes, and the only
/// form `serialize._unb64` accepts), or None for anything else.
fn b64_decode(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let quads = s.len() / 4;
    for (i, q) in s.chunks(4).enumerate() {
        let last = i + 1 == quads;
        let pad = if last {
            q.iter().rev().take_while(|&&c| c == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | b64_value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // canonical: the bits below the last whole byte are zero
        let kept = 3 - pad;
        if pad > 0 && n & ((1 << (8 * pad as u32)) - 1) != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[..kept]);
    }
    Some(out)
}

// ------------------------------------------------------------------ writing

/// Why a value was not written: it needs the Python encoder, or Python raised.
enum Skip {
    Python,
    Err(PyErr),
}

impl From<PyErr> for Skip {
    fn from(e: PyErr) -> Self {
        Skip::Err(e)
    }
}

/// Whether any of the 8 bytes of `w` needs escaping in a JSON string: a control character
/// (below 0x20), `"` or `\` (exact: each test is the classic "has a byte below n" bit trick).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    (below(w, 0x20) | below(quote, 1) | below(backslash, 1)) != 0
}

/// How `json` escapes each byte in a string: 0 (as is), the letter after the backslash, or
/// `u` for `\u00xx`.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};

/// A JSON string as `json`'s C encoder writes it with `ensure_ascii=False`: `"` and `\`
/// escaped, `\b \f \n \r \t` by name, other control characters as `\u00xx`; the rest as is.
fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // the common case: runs of 8 bytes with nothing to escape are skipped a word at a time
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        if word_needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        i += 8;
    }
    let mut start = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let e = ESCAPE[usize::from(c)];
        if e != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if e == b'u' {
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
            } else {
                out.extend_from_slice(&[b'\\', e]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// An integer in decimal, as `str(int)` writes it.
fn write_int(v: i64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = v.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// A float as Python's `repr` (what `json` writes for a finite float).
fn write_float(f: &Bound<'_, PyFloat>, out: &mut Vec<u8>) -> Result<(), Skip> {
    if !f.value().is_finite() {
        return Err(Skip::Python);
    }
    out.extend_from_slice(f.repr()?.to_str()?.as_bytes());
    Ok(())
}

/// Write a plain value (see the module docs), or report that it is not one.
fn write_value(obj: &Bound<'_, PyAny>, depth: usize, out: &mut Vec<u8>) -> Result<(), Skip> {
    if let Ok(s) = obj.cast_exact::<PyString>() {
        // a lone surrogate fails here: Python then writes escaped ASCII
        write_str(s.to_str().map_err(|_| Skip::Python)?, out);
    } else if let Ok(i) = obj.cast_exact::<PyInt>() {
        let v = i.extract::<i64>().map_err(|_| Skip::Python)?;
        if !(-SAFE_INT..=SAFE_INT).contains(&v) {
            return Err(Skip::Python);
        }
        write_int(v, out);
    } else if obj.is_none() {
        out.extend_from_slice(b"null");
    } else if obj.is_exact_instance_of::<PyBool>() {
        out.extend_from_slice(if obj.is_truthy()? { b"true" } else { b"false" });
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        write_float(f, out)?;
    } else if let Ok(l) = obj.cast_exact::<PyList>() {
        if depth >= MAX_DEPTH {
            return Err(Skip::Python);
        }
        out.push(b'[');
        for (i, item) in l.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(&item, depth + 1, out)?;
        }
        out.push(b']');
    } else if let Ok(d) = obj.cast_exact::<PyDict>() {
        write_dict(d, depth, out)?;
    } else {
        return Err(Skip::Python);
    }
    Ok(())
}

fn write_dict(d: &Bound<'_, PyDict>, depth: usize, out: &mut Vec<u8>) -> Result<(), Skip> {
    if depth >= MAX_DEPTH {
        return Err(Skip::Python);
    }
    // Snapshot the items: no Python code runs while they are written (every type accepted
    // is exact and builtin), but a copy keeps the walk independent of the dict either way.
    let items: SmallVec<[(Bound<'_, PyAny>, Bound<'_, PyAny>); 8]> = d.iter().collect();
    out.push(b'{');
    for (i, (k, v)) in items.iter().enumerate() {
        let key = k.cast_exact::<PyString>().map_err(|_| Skip::Python)?;
        let key = key.to_str().map_err(|_| Skip::Python)?;
        if key == TAG {
            return Err(Skip::Python);
        }
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_value(v, depth + 1, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// The bytes of a version-1 record of plain data, as the JSON serializer stores it, or None
/// when some part needs the Python encoder. `output`/`expected` are `...` when unset.
#[pyfunction]
#[pyo3(name = "record_encode")]
#[allow(clippy::too_many_arguments)]
pub fn py_record_encode<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    inputs: &Bound<'py, PyAny>,
    output: &Bound<'py, PyAny>,
    expected: &Bound<'py, PyAny>,
    metadata: &Bound<'py, PyAny>,
    key: &Bound<'py, PyAny>,
    expires_at: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let Ok(key) = key.cast_exact::<PyBytes>() else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(192);
    let written = write_record(
        func,
        inputs,
        output,
        expected,
        metadata,
        key.as_bytes(),
        expires_at,
        &mut out,
    );
    record_bytes(py, written, &out)
}

/// The record `write_record` wrote into `out`, or None when the Python writer must take it.
fn record_bytes<'py>(
    py: Python<'py>,
    written: Result<(), Skip>,
    out: &[u8],
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    match written {
        Ok(()) => Ok(Some(PyBytes::new(py, out))),
        Err(Skip::Python) => Ok(None),
        Err(Skip::Err(e)) => Err(e),
    }
}

/// `record_encode` of each result of a batch of memoized calls (no `expected`): `funcs`,
/// `inputs`, `outputs` and `keys` (the calls' `Key` objects) are parallel lists, `metadata`
/// and `expires_at` are shared. A list of the records' bytes, with None for each one the
/// Python writer must take.
#[pyfunction]
#[pyo3(name = "record_encode_results")]
pub fn py_record_encode_results<'py>(
    py: Python<'py>,
    funcs: &Bound<'py, PyList>,
    inputs: &Bound<'py, PyList>,
    outputs: &Bound<'py, PyList>,
    metadata: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyList>,
    expires_at: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let n = funcs.len();
    if inputs.len() != n || outputs.len() != n || keys.len() != n {
        return Err(PyValueError::new_err(
            "record_encode_results: funcs, inputs, outputs and keys must have the same length",
        ));
    }
    let records = PyList::empty(py);
    let unset = PyEllipsis::get(py).to_owned().into_any();
    let mut out = Vec::with_capacity(192);
    for i in 0..n {
        let key = keys.get_item(i)?;
        let key = key.cast::<Key>()?;
        out.clear();
        let written = write_record(
            &funcs.get_item(i)?,
            &inputs.get_item(i)?,
            &outputs.get_item(i)?,
            &unset,
            metadata,
            &key.get().bytes,
            expires_at,
            &mut out,
        );
        records.append(record_bytes(py, written, &out)?)?;
    }
    Ok(records)
}

#[allow(clippy::too_many_arguments)]
fn write_record(
    func: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    output: &Bound<'_, PyAny>,
    expected: &Bound<'_, PyAny>,
    metadata: &Bound<'_, PyAny>,
    key: &[u8],
    expires_at: &Bound<'_, PyAny>,
    out: &mut Vec<u8>,
) -> Result<(), Skip> {
    let func = func.cast_exact::<PyString>().map_err(|_| Skip::Python)?;
    let inputs = inputs.cast_exact::<PyDict>().map_err(|_| Skip::Python)?;
    let metadata = metadata.cast_exact::<PyDict>().map_err(|_| Skip::Python)?;
    out.extend_from_slice(b"{\"cachehaven\":");
    write_int(RECORD_VERSION, out);
    out.extend_from_slice(b",\"func\":");
    write_str(func.to_str().map_err(|_| Skip::Python)?, out);
    out.extend_from_slice(b",\"inputs\":");
    write_dict(inputs, 0, out)?;
    if !output.is_instance_of::<PyEllipsis>() {
        out.extend_from_slice(b",\"output\":");
        write_value(output, 0, out)?;
    }
    if !expected.is_instance_of::<PyEllipsis>() {
        out.extend_from_slice(b",\"expected\":");
        write_value(expected, 0, out)?;
    }
    out.extend_from_slice(b",\"metadata\":");
    write_dict(metadata, 0, out)?;
    out.extend_from_slice(b",\"key\":\"");
    b64_encode(key, out);
    out.extend_from_slice(b"\",\"expires_at\":");
    if expires_at.is_none() {
        out.extend_from_slice(b"null");
    } else {
        write_float(
            expires_at
                .cast_exact::<PyFloat>()
                .map_err(|_| Skip::Python)?,
            out,
        )?;
    }
    out.push(b'}');
    Ok(())
}

// ------------------------------------------------------------------ reading

/// A strict JSON reader over a record's bytes that builds Python objects as `json` does, or
/// (with `build` false) only checks the syntax. Any error, and anything `json` might treat
/// differently, is `Skip::Python`.
struct Reader<'a, 'py> {
    py: Python<'py>,
    b: &'a [u8],
    pos: usize,
}

type Read<T> = Result<T, Skip>;

impl<'a, 'py> Reader<'a, 'py> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Read<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Skip::Python)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Read<()> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Skip::Python)
        }
    }

    /// A string (as a Python str when `build`).
    fn string(&mut self, build: bool) -> Read<Option<Bound<'py, PyString>>> {
        let text = self.text()?;
        Ok(build.then(|| PyString::new(self.py, &text)))
    }

    /// A string's text. A `\u` escape (which could spell the tag key) is sent to Python,
    /// as `load_record` walks such payloads.
    fn text(&mut self) -> Read<std::borrow::Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        // The common case first: ASCII without escapes, borrowed as it is.
        let b: &'a [u8] = self.b;
        let plain = b[start..].iter().position(|&c| !PLAIN[usize::from(c)]);
        if let Some(n) = plain.filter(|&n| b[start + n] == b'"') {
            self.pos = start + n + 1;
            // SAFETY: every byte of the slice is ASCII (PLAIN holds no byte >= 0x80), and
            // ASCII is valid UTF-8.
            let text = unsafe { std::str::from_utf8_unchecked(&b[start..start + n]) };
            return Ok(std::borrow::Cow::Borrowed(text));
        }
        let mut owned: Option<Vec<u8>> = None;
        loop {
            let run = self.pos;
            let rest = &self.b[run..];
            self.pos += rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(rest.len());
            if let Some(o) = owned.as_mut() {
                o.extend_from_slice(&self.b[run..self.pos]);
            }
            match self.peek() {
                Some(b'"') => {
                    let end = self.pos;
                    self.pos += 1;
                    // every string is checked to be UTF-8 here (bytes outside strings are
                    // ASCII or the grammar fails), so the payload as a whole never needs to be
                    return match owned {
                        None => std::str::from_utf8(&self.b[start..end])
                            .map(std::borrow::Cow::Borrowed)
                            .map_err(|_| Skip::Python),
                        Some(o) => String::from_utf8(o)
                            .map(std::borrow::Cow::Owned)
                            .map_err(|_| Skip::Python),
                    };
                }
                Some(b'\\') => {
                    let c = *self.b.get(self.pos + 1).ok_or(Skip::Python)?;
                    let o = owned.get_or_insert_with(|| self.b[start..self.pos].to_vec());
                    o.push(match c {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        _ => return Err(Skip::Python),
                    });
                    self.pos += 2;
                }
                _ => return Err(Skip::Python), // a raw control character, or the end
            }
        }
    }

    /// A number: `int` if it has neither fraction nor exponent, else `float` (as `json`).
    fn number(&mut self, build: bool) -> Read<Option<Bound<'py, PyAny>>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Skip::Python),
        }
        let int_end = self.pos;
        let mut is_float = false;
        if self.peek() == Some(b'.') && self.b.get(self.pos + 1).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
            self.digits();
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            let mut p = self.pos + 1;
            if let Some(b'+' | b'-') = self.b.get(p) {
                p += 1;
            }
            if !self.b.get(p).is_some_and(u8::is_ascii_digit) {
                return Err(Skip::Python);
            }
            self.pos = p;
            self.digits();
            is_float = true;
        }
        // the bytes are ASCII digits and signs
        let text = std::str::from_utf8(&self.b[start..self.pos]).map_err(|_| Skip::Python)?;
        if is_float {
            let v: f64 = text.parse().map_err(|_| Skip::Python)?;
            if !v.is_finite() {
                return Err(Skip::Python);
            }
            Ok(build.then(|| PyFloat::new(self.py, v).into_any()))
        } else {
            if int_end - start > 18 {
                return Err(Skip::Python); // a big int: Python reads it
            }
            let v: i64 = text.parse().map_err(|_| Skip::Python)?;
            Ok(build.then(|| PyInt::new(self.py, v).into_any()))
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    /// A value at nesting `depth`; with `build` false only its syntax is checked.
    fn value(&mut self, depth: usize, build: bool) -> Read<Option<Bound<'py, PyAny>>> {
        let py = self.py;
        match self.peek().ok_or(Skip::Python)? {
            b'"' => Ok(self.string(build)?.map(Bound::into_any)),
            b'{' => Ok(self.object(depth, build)?.map(Bound::into_any)),
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(Skip::Python);
                }
                self.pos += 1;
                let list = build.then(|| PyList::empty(py));
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(list.map(Bound::into_any));
                }
                loop {
                    self.ws();
                    let item = self.value(depth + 1, build)?;
                    if let (Some(l), Some(v)) = (&list, item) {
                        l.append(v)?;
                    }
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(list.map(Bound::into_any));
                        }
                        _ => return Err(Skip::Python),
                    }
                }
            }
            b't' => {
                self.literal(b"true")?;
                Ok(build.then(|| PyBool::new(py, true).to_owned().into_any()))
            }
            b'f' => {
                self.literal(b"false")?;
                Ok(build.then(|| PyBool::new(py, false).to_owned().into_any()))
            }
            b'n' => {
                self.literal(b"null")?;
                Ok(build.then(|| py.None().into_bound(py)))
            }
            _ => self.number(build),
        }
    }

    /// An object, built as `json` builds it (a repeated key keeps its first place and its
    /// last value), or with `build` false only checked.
    fn object(&mut self, depth: usize, build: bool) -> Read<Option<Bound<'py, PyDict>>> {
        if depth >= MAX_DEPTH {
            return Err(Skip::Python);
        }
        self.eat(b'{')?;
        let dict = build.then(|| PyDict::new(self.py));
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(dict);
        }
        loop {
            self.ws();
            let text = self.text()?;
            if text == TAG {
                return Err(Skip::Python); // a tagged value: from_jsonable decodes it
            }
            let key = build.then(|| PyString::new(self.py, &text));
            self.ws();
            self.eat(b':')?;
            self.ws();
            let v = self.value(depth + 1, build)?;
            if let (Some(d), Some(k), Some(v)) = (&dict, key, v) {
                d.set_item(k, v)?;
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(dict);
                }
                _ => return Err(Skip::Python),
            }
        }
    }
}

/// `(func, inputs, output, expected, metadata, key, expires_at)` of a stored version-1 record
/// of plain data (`output`/`expected` are `...` when unset; `inputs` and `metadata` are None
/// unless `full`, though they are always checked), or None when the payload needs
/// `serialize.load_record` (tags, `\u` escapes, another layout, anything malformed).
#[pyfunction]
#[pyo3(name = "record_decode", signature = (data, full = true))]
pub fn py_record_decode<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    full: bool,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Ok(data) = data.cast_exact::<PyBytes>() else {
        return Ok(None); // bytearray, memoryview, str...: load_record reads them
    };
    let f = match read_record(py, data.as_bytes(), full) {
        Ok(f) => f,
        Err(Skip::Python) => return Ok(None),
        Err(Skip::Err(e)) => return Err(e),
    };
    let none = py.None().into_bound(py);
    let items: [Bound<'py, PyAny>; 7] = [
        PyString::new(py, &f.func).into_any(),
        f.inputs.unwrap_or_else(|| none.clone()),
        f.output,
        f.expected,
        f.metadata.unwrap_or_else(|| none.clone()),
        PyBytes::new(py, &f.key).into_any(),
        f.expires_at.map_or(none, Bound::into_any),
    ];
    Ok(Some(PyTuple::new(py, items)?))
}

/// The value (`expected` if set, else `output`) of a stored version-1 record of plain data if
/// it was stored under the canonical key bytes `key` and does not expire by `now`, else `...`;
/// `NotImplemented` when the payload needs `serialize.load_record` (as for `record_decode`).
/// What `record_decode(data, False)` and those checks give, building only the value.
#[pyfunction]
#[pyo3(name = "record_value")]
pub fn py_record_value<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    key: &[u8],
    now: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let Ok(data) = data.cast_exact::<PyBytes>() else {
        return Ok(py.NotImplemented().into_bound(py));
    };
    let f = match read_record(py, data.as_bytes(), false) {
        Ok(f) => f,
        Err(Skip::Python) => return Ok(py.NotImplemented().into_bound(py)),
        Err(Skip::Err(e)) => return Err(e),
    };
    if f.key != key || f.expires_at.is_some_and(|e| e.value() <= now) {
        return Ok(PyEllipsis::get(py).to_owned().into_any());
    }
    Ok(if f.expected.is(PyEllipsis::get(py)) {
        f.output
    } else {
        f.expected
    })
}

/// A record's fields as `read_record` found them.
struct Fields<'a, 'py> {
    func: std::borrow::Cow<'a, str>,
    /// None unless built (`full`)
    inputs: Option<Bound<'py, PyAny>>,
    /// `...` when unset
    output: Bound<'py, PyAny>,
    /// `...` when unset
    expected: Bound<'py, PyAny>,
    /// None unless built (`full`)
    metadata: Option<Bound<'py, PyAny>>,
    key: Vec<u8>,
    expires_at: Option<Bound<'py, PyFloat>>,
}

fn read_record<'a, 'py>(py: Python<'py>, data: &'a [u8], full: bool) -> Read<Fields<'a, 'py>> {
    // What load_record walks for tags needs no scan of its own: the reader sends a `\u`
    // escape (which could spell the tag key) and an object key equal to the tag to Python,
    // checks each string to be UTF-8, and fails on anything else outside strings that is
    // not ASCII JSON. The tag text as a *value* is plain data to both readers.
    let mut r = Reader {
        py,
        b: data,
        pos: 0,
    };
    r.eat(b'{')?;
    let mut seen = [false; 8];
    let ellipsis = PyEllipsis::get(py).to_owned().into_any();
    let (mut func, mut key, mut expires_at) = (None, None, None);
    let (mut inputs, mut metadata) = (None, None);
    let (mut output, mut expected) = (ellipsis.clone(), ellipsis);
    r.ws();
    loop {
        r.ws();
        let name = r.text()?;
        r.ws();
        r.eat(b':')?;
        r.ws();
        let field = match &*name {
            "cachehaven" => 0,
            "func" => 1,
            "inputs" => 2,
            "output" => 3,
            "expected" => 4,
            "metadata" => 5,
            "key" => 6,
            "expires_at" => 7,
            _ => return Err(Skip::Python), // an unknown field: load_record reports it
        };
        if std::mem::replace(&mut seen[field], true) {
            return Err(Skip::Python);
        }
        match field {
            0 => {
                let start = r.pos;
                r.number(false)?;
                // an int as `number` reads it: no sign, fraction, exponent or leading zero
                // can spell the same value
                let version = std::str::from_utf8(&data[start..r.pos]).ok();
                if version.and_then(|v| v.parse::<i64>().ok()) != Some(RECORD_VERSION) {
                    return Err(Skip::Python);
                }
            }
            1 => func = Some(r.text()?),
            2 => inputs = r.object(0, full)?.map(Bound::into_any),
            5 => metadata = r.object(0, full)?.map(Bound::into_any),
            3 => output = r.value(0, true)?.ok_or(Skip::Python)?,
            4 => expected = r.value(0, true)?.ok_or(Skip::Python)?,
            6 => key = Some(b64_decode(r.text()?.as_bytes()).ok_or(Skip::Python)?),
            _ => {
                if r.peek() == Some(b'n') {
                    r.literal(b"null")?;
                    expires_at = Some(None);
                } else {
                    let v = r.number(true)?.ok_or(Skip::Python)?;
                    // an int: load_record converts it
                    let v = v.cast_into_exact::<PyFloat>().map_err(|_| Skip::Python)?;
                    expires_at = Some(Some(v));
                }
            }
        }
        r.ws();
        match r.peek() {
            Some(b',') => r.pos += 1,
            Some(b'}') => {
                r.pos += 1;
                break;
            }
            _ => return Err(Skip::Python),
        }
    }
    if r.pos != data.len() || !(seen[0] && seen[2] && seen[5]) {
        return Err(Skip::Python);
    }
    let (Some(func), Some(key), Some(expires_at)) = (func, key, expires_at) else {
        return Err(Skip::Python);
    };
    Ok(Fields {
        func,
        inputs,
        output,
        expected,
        metadata,
        key,
        expires_at,
    })
}
