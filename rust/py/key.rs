//! The `Key` object (canonical call bytes + their table hash) and the functions that build
//! call keys from a function identity and an `inputs` dict.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::encode::{encode, require_str_keys, Exclude, Notes};
use crate::hash::{blake3_128, fast_hash, md5_128, Scheme};
use crate::key::KeyBuf;

/// A canonical cache key: the exact bytes of (format version, function identity, inputs).
///
/// Equality compares the full bytes, never a digest, so two different calls can never be
/// confused in memory. `digest()` gives the 128-bit integer that persistent backends store
/// and that `CacheEntry.key` shows.
#[pyclass(frozen, module = "cachehaven._core", name = "Key")]
pub struct Key {
    pub(crate) bytes: Box<[u8]>,
    pub(crate) hash: u64,
}

impl Key {
    /// A key for canonical `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Key {
        Key {
            bytes: bytes.into(),
            hash: fast_hash(bytes),
        }
    }

    /// Wrap finished canonical bytes.
    pub fn from_buf(buf: &KeyBuf) -> Key {
        let bytes: Box<[u8]> = buf.as_slice().into();
        let hash = fast_hash(&bytes);
        Key { bytes, hash }
    }
}

#[pymethods]
impl Key {
    /// Build a key from canonical bytes (as given by `Key.bytes`).
    #[new]
    fn new(data: &[u8]) -> Self {
        Key {
            bytes: data.into(),
            hash: fast_hash(data),
        }
    }

    /// The canonical bytes.
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.bytes)
    }

    /// The 128-bit digest of the canonical bytes: `"blake3"` (default) or `"md5"`.
    #[pyo3(signature = (scheme = "blake3"))]
    fn digest(&self, scheme: &str) -> PyResult<u128> {
        Ok(parse_scheme(scheme)?.digest(&self.bytes))
    }

    /// The digest as 32 lowercase hex digits (``f"{key.digest(scheme):032x}"``): the
    /// storage key of the persistent backends, at a fraction of the cost of formatting it.
    #[pyo3(signature = (scheme = "blake3"))]
    fn hexdigest<'py>(&self, py: Python<'py>, scheme: &str) -> PyResult<Bound<'py, PyString>> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = parse_scheme(scheme)?.digest(&self.bytes).to_be_bytes();
        let mut out = [0u8; 32];
        for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 15)];
        }
        // the digits are ASCII
        let text = std::str::from_utf8(&out).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyString::new(py, text))
    }

    fn __hash__(&self) -> isize {
        self.hash as isize
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Key>()
            .map(|o| o.get().bytes == self.bytes)
            .unwrap_or(false)
    }

    fn __len__(&self) -> usize {
        self.bytes.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Key(blake3={:032x}, {} bytes)",
            blake3_128(&self.bytes),
            self.bytes.len()
        )
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let cls = slf.get_type();
        let args = PyTuple::new(py, [PyBytes::new(py, &slf.get().bytes)])?;
        PyTuple::new(py, [cls.into_any(), args.into_any()])
    }
}

fn parse_scheme(scheme: &str) -> PyResult<Scheme> {
    Scheme::parse(scheme).ok_or_else(|| {
        PyValueError::new_err(format!("scheme must be 'blake3' or 'md5', not {scheme:?}"))
    })
}

/// Write the canonical call bytes for `func` + `inputs` into `buf`.
pub fn write_call(
    py: Python<'_>,
    func: &str,
    inputs: &Bound<'_, PyDict>,
    exclude: Option<&Exclude>,
    buf: &mut KeyBuf,
) -> PyResult<Notes> {
    require_str_keys(inputs)?;
    let mut notes = Notes::default();
    buf.call_header();
    buf.str(func);
    encode(inputs.as_any(), buf, 0, exclude, &mut notes).map_err(|e| {
        // the first path step is the parameter name: name it as the argument
        e.into_pyerr(py, "inputs", &format!("the inputs of {func:?}"))
    })?;
    Ok(notes)
}

/// `_core.call_key(func, inputs, exclude=None)`: the canonical key of calling `func` (its
/// identity string) with `inputs` (a dict of parameter name -> value), after dropping the
/// dotted `exclude` paths.
#[pyfunction]
#[pyo3(signature = (func, inputs, exclude = None))]
pub fn call_key(
    py: Python<'_>,
    func: &Bound<'_, PyString>,
    inputs: &Bound<'_, PyDict>,
    exclude: Option<&Bound<'_, PyList>>,
) -> PyResult<Key> {
    let ex = match exclude {
        Some(l) => {
            let paths: Vec<String> = l.extract()?;
            Some(Exclude::from_paths(paths.iter().map(|s| s.as_str())))
        }
        None => None,
    };
    let mut buf = KeyBuf::new();
    write_call(py, &func.to_cow()?, inputs, ex.as_ref(), &mut buf)?;
    Ok(Key::from_buf(&buf))
}

/// `_core.md5_int(data)`: md5 of `data` as a 128-bit int.
#[pyfunction]
pub fn md5_int(data: &[u8]) -> u128 {
    md5_128(data)
}

/// `_core.blake3_int(data)`: the first 128 bits of blake3(`data`) as an int.
#[pyfunction]
pub fn blake3_int(data: &[u8]) -> u128 {
    blake3_128(data)
}

/// A stand-in for an argument that is stored by its canonical bytes only: a method's `self`
/// in stored entries (so the cache never keeps the instance alive, yet the entry's key can
/// be recomputed from its inputs). It encodes to exactly the bytes it carries.
#[pyclass(frozen, module = "cachehaven._core", name = "RawKey")]
pub struct RawKey {
    pub(crate) bytes: Box<[u8]>,
    label: String,
}

impl RawKey {
    /// Wrap canonical bytes with a human-readable label.
    pub fn new_raw(bytes: &[u8], label: String) -> Self {
        RawKey {
            bytes: bytes.into(),
            label,
        }
    }
}

#[pymethods]
impl RawKey {
    #[new]
    fn new(data: &[u8], label: String) -> Self {
        RawKey {
            bytes: data.into(),
            label,
        }
    }

    /// The canonical bytes this stands for.
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.bytes)
    }

    /// What it stands for, e.g. `<mymod.Model instance>`.
    #[getter]
    fn label(&self) -> &str {
        &self.label
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<RawKey>()
            .map(|o| o.get().bytes == self.bytes)
            .unwrap_or(false)
    }

    fn __hash__(&self) -> isize {
        fast_hash(&self.bytes) as isize
    }

    fn __repr__(&self) -> String {
        self.label.clone()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let args =
            (PyBytes::new(py, &slf.get().bytes), slf.get().label.clone()).into_pyobject(py)?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}
