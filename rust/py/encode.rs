//! The Python -> canonical bytes walker: one pass over an argument, writing through
//! [`crate::key::KeyBuf`], with no intermediate representation.
//!
//! Exact builtin types are recognised by pointer comparison first (the hot path); richer
//! types (enums, dataclasses, datetimes, ...) go through `isinstance` checks against types
//! imported once. Errors carry the path inside the argument (`cfg['a'][2]`) so the message
//! can name exactly what could not be keyed.

use std::collections::HashMap;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyComplex, PyDate, PyDateTime, PyDelta, PyDict, PyFloat,
    PyFrozenSet, PyInt, PyList, PySet, PyString, PyTime, PyTuple, PyType,
};

use crate::key::{tag, KeyBuf};

/// Deepest nesting accepted; deeper (or self-referencing) structures raise instead of hanging.
pub const MAX_DEPTH: usize = 200;

/// Dotted exclusion paths, as a tree: `{"kwargs": {"api_key": ALL}}`.
#[derive(Clone, Debug, Default)]
pub struct Exclude {
    /// This whole value is excluded.
    pub all: bool,
    /// Keys to drop (or descend into) when the value is a dict with str keys.
    pub children: HashMap<String, Exclude>,
}

impl Exclude {
    /// Build the tree from dotted paths (`"a"`, `"kwargs.api_key"`, `"cfg.auth.token"`).
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Exclude {
        let mut root = Exclude::default();
        for p in paths {
            let mut node = &mut root;
            for part in p.split('.') {
                node = node.children.entry(part.to_string()).or_default();
            }
            node.all = true;
        }
        root
    }

    /// The subtree for `key`, if any.
    pub fn child(&self, key: &str) -> Option<&Exclude> {
        self.children.get(key)
    }

    /// The subtree for a dict key object (only str keys can be excluded).
    pub fn child_for(&self, key: &Bound<'_, PyAny>) -> Option<&Exclude> {
        self.child(key.cast::<PyString>().ok()?.to_str().ok()?)
    }

    /// Whether nothing is excluded.
    pub fn is_empty(&self) -> bool {
        !self.all && self.children.is_empty()
    }
}

/// One step of the path to a failing value.
#[derive(Debug, Clone)]
pub enum Seg {
    /// Sequence position.
    Index(usize),
    /// Dict key (already rendered).
    Key(String),
    /// Attribute or field.
    Attr(String),
}

/// Why a value could not be encoded.
#[derive(Debug)]
pub enum EncodeError {
    /// The type has no canonical encoding.
    Unsupported {
        /// Path from the argument to the value (innermost last).
        path: Vec<Seg>,
        /// The value's qualified type name.
        type_name: String,
    },
    /// Nesting deeper than [`MAX_DEPTH`] (or a structure that contains itself).
    TooDeep {
        /// Path to where the limit was hit (truncated).
        path: Vec<Seg>,
    },
    /// A Python error raised while inspecting the value (e.g. by `__cache_key__`).
    Python(PyErr),
}

impl From<PyErr> for EncodeError {
    fn from(e: PyErr) -> Self {
        EncodeError::Python(e)
    }
}

impl EncodeError {
    fn at(mut self, seg: Seg) -> Self {
        match &mut self {
            EncodeError::Unsupported { path, .. } => path.push(seg),
            EncodeError::TooDeep { path } if path.len() < 12 => path.push(seg),
            _ => {}
        }
        self
    }

    /// Turn into the Python exception, naming the argument `what` (e.g. `argument 'x' of f`).
    pub fn into_pyerr(self, py: Python<'_>, root: &str, what: &str) -> PyErr {
        fn render(root: &str, path: &[Seg]) -> String {
            let mut s = root.to_string();
            for seg in path.iter().rev() {
                match seg {
                    Seg::Index(i) => s.push_str(&format!("[{i}]")),
                    Seg::Key(k) => s.push_str(&format!("[{k}]")),
                    Seg::Attr(a) => s.push_str(&format!(".{a}")),
                }
            }
            s
        }
        match self {
            EncodeError::Unsupported { path, type_name } => {
                let at = render(root, &path);
                let loc = if path.is_empty() {
                    String::new()
                } else {
                    format!(" (at {at})")
                };
                super::errors::key_type_error(
                    py,
                    format!(
                        "cannot build a cache key from {what}{loc}: values of type '{type_name}' have no \
                         canonical form; give the type a __cache_key__() method, exclude the argument, or \
                         pass a supported value (None, bool, int, float, str, bytes, tuple, list, dict, set, \
                         dataclass, enum, datetime, Decimal, UUID, Path)"
                    ),
                )
            }
            EncodeError::TooDeep { path } => {
                let at = render(root, &path);
                super::errors::key_depth_error(
                    py,
                    format!(
                        "cannot build a cache key from {what}: nested more than {MAX_DEPTH} levels deep \
                         (at {at}...); is the structure recursive (does it contain itself)?"
                    ),
                )
            }
            EncodeError::Python(e) => e,
        }
    }
}

/// Types looked up once per interpreter.
struct KnownTypes {
    enum_type: Py<PyAny>,
    decimal: Py<PyAny>,
    uuid: Py<PyAny>,
    pure_path: Py<PyAny>,
    pure_windows_path: Py<PyAny>,
    dataclass_fields: Py<PyAny>,
}

static KNOWN: PyOnceLock<KnownTypes> = PyOnceLock::new();

fn known(py: Python<'_>) -> PyResult<&KnownTypes> {
    KNOWN.get_or_try_init(py, || {
        Ok(KnownTypes {
            enum_type: py.import("enum")?.getattr("Enum")?.unbind(),
            decimal: py.import("decimal")?.getattr("Decimal")?.unbind(),
            uuid: py.import("uuid")?.getattr("UUID")?.unbind(),
            pure_path: py.import("pathlib")?.getattr("PurePath")?.unbind(),
            pure_windows_path: py.import("pathlib")?.getattr("PureWindowsPath")?.unbind(),
            dataclass_fields: py.import("dataclasses")?.getattr("fields")?.unbind(),
        })
    })
}

/// `module.qualname` of a type (what errors and type-named tags show).
pub fn type_name(ty: &Bound<'_, PyType>) -> String {
    let module = ty
        .getattr("__module__")
        .ok()
        .and_then(|m| m.extract::<String>().ok());
    let qual = ty
        .getattr("__qualname__")
        .ok()
        .and_then(|m| m.extract::<String>().ok());
    match (module, qual) {
        (Some(m), Some(q)) if m != "builtins" => format!("{m}.{q}"),
        (_, Some(q)) => q,
        _ => "<unknown>".to_string(),
    }
}

/// What the walker reports besides the bytes.
#[derive(Default, Clone, Copy)]
pub struct Notes {
    /// The encoding contains a type-named or identity tag, so it cannot be decoded back
    /// into an equal value (the Store keeps the original key object for iteration).
    pub opaque: bool,
}

/// Render a dict key for an error path.
fn key_label(k: &Bound<'_, PyAny>) -> String {
    if let Ok(s) = k.cast::<PyString>() {
        let s = s.to_string_lossy();
        let short: String = s.chars().take(40).collect();
        format!("{short:?}")
    } else if let Ok(i) = k.extract::<i64>() {
        i.to_string()
    } else {
        format!("<{}>", type_name(&k.get_type()))
    }
}

/// Encode `obj` into `buf`.
#[inline]
pub fn encode(
    obj: &Bound<'_, PyAny>,
    buf: &mut KeyBuf,
    depth: usize,
    excl: Option<&Exclude>,
    notes: &mut Notes,
) -> Result<(), EncodeError> {
    // the two most common argument types, inlined into the callers' hot loops
    if encode_simple(obj, buf) {
        return Ok(());
    }
    encode_any(obj, buf, depth, excl, notes)
}

/// Write `obj` if it is [`Simple`]: true when written; false, having written nothing,
/// otherwise. Like [`simple`], it never raises and makes no `PyErr`.
#[inline(always)]
pub fn encode_simple(obj: &Bound<'_, PyAny>, buf: &mut KeyBuf) -> bool {
    match simple(obj) {
        Some(Simple::Int(v)) => buf.int(v),
        Some(Simple::Str(s)) => buf.str(s),
        None => return false,
    }
    true
}

/// A value of one of the two most common key types, in its common form.
pub enum Simple<'a> {
    /// An exact `int` that fits in i64.
    Int(i64),
    /// An exact `str` that is valid UTF-8 (no lone surrogates), borrowed from the object.
    Str(&'a str),
}

/// Recognise a [`Simple`] value; None for anything else (which [`encode`] handles in full).
///
/// It never raises and makes no `PyErr` (only raw C-API calls; an error they set is
/// cleared), so the raw `Store.get` entry, which runs outside PyO3's call bookkeeping, can
/// use it (see `rawcall.rs`).
#[inline(always)]
pub fn simple<'a>(obj: &'a Bound<'_, PyAny>) -> Option<Simple<'a>> {
    let p = obj.as_ptr();
    // SAFETY: `p` is a live object borrowed from `obj`, and `obj` being bound proves the GIL
    // is held. `PyUnicode_AsUTF8AndSize` returns `len` bytes of UTF-8 (CPython refuses lone
    // surrogates) owned by the str, so alive as long as `obj`, or NULL with an error set,
    // which we clear.
    unsafe {
        if ffi::PyLong_CheckExact(p) != 0 {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(p, &mut overflow);
            if overflow != 0 || (v == -1 && !ffi::PyErr_Occurred().is_null()) {
                ffi::PyErr_Clear();
                return None;
            }
            return Some(Simple::Int(v));
        }
        if ffi::PyUnicode_CheckExact(p) != 0 {
            let mut len: ffi::Py_ssize_t = 0;
            let data = ffi::PyUnicode_AsUTF8AndSize(p, &mut len);
            if data.is_null() {
                ffi::PyErr_Clear();
                return None;
            }
            let utf8 = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
            return Some(Simple::Str(std::str::from_utf8_unchecked(utf8)));
        }
    }
    None
}

/// Encode any value (the full type dispatch).
fn encode_any(
    obj: &Bound<'_, PyAny>,
    buf: &mut KeyBuf,
    depth: usize,
    excl: Option<&Exclude>,
    notes: &mut Notes,
) -> Result<(), EncodeError> {
    if depth > MAX_DEPTH {
        return Err(EncodeError::TooDeep { path: Vec::new() });
    }
    let py = obj.py();
    if obj.is_none() {
        buf.none();
        return Ok(());
    }
    // exact builtins first: pointer comparisons, no attribute lookups
    if let Ok(v) = obj.cast_exact::<PyInt>() {
        match v.extract::<i64>() {
            Ok(i) => buf.int(i),
            Err(_) => encode_bigint(v.as_any(), buf)?,
        }
        return Ok(());
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        match s.to_str() {
            Ok(t) => buf.str(t),
            Err(_) => {
                let raw = s.call_method1("encode", ("utf-8", "surrogatepass"))?;
                buf.str_surrogates(raw.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes());
            }
        }
        return Ok(());
    }
    if obj.is_exact_instance_of::<PyBool>() {
        buf.bool(obj.is_truthy()?);
        return Ok(());
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        buf.float(f.value());
        return Ok(());
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        buf.seq_header(tag::TUPLE, t.len());
        for (i, item) in t.iter().enumerate() {
            encode(&item, buf, depth + 1, None, notes).map_err(|e| e.at(Seg::Index(i)))?;
        }
        return Ok(());
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        // snapshot: a list mutated by a __cache_key__ during encoding must not confuse us
        let items: Vec<Bound<'_, PyAny>> = l.iter().collect();
        buf.seq_header(tag::LIST, items.len());
        for (i, item) in items.iter().enumerate() {
            encode(item, buf, depth + 1, None, notes).map_err(|e| e.at(Seg::Index(i)))?;
        }
        return Ok(());
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        return encode_dict(d, buf, depth, excl, notes);
    }
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        buf.bytes(b.as_bytes());
        return Ok(());
    }
    if obj.is_exact_instance_of::<PySet>() || obj.is_exact_instance_of::<PyFrozenSet>() {
        let t = if obj.is_exact_instance_of::<PySet>() {
            tag::SET
        } else {
            tag::FROZENSET
        };
        let items: Vec<Bound<'_, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
        buf.seq_header(t, items.len());
        let start = buf.len();
        let mut bounds = Vec::with_capacity(items.len());
        for item in &items {
            encode(item, buf, depth + 1, None, notes)
                .map_err(|e| e.at(Seg::Key(key_label(item))))?;
            bounds.push(buf.len());
        }
        buf.sort_members(start, &bounds);
        return Ok(());
    }
    if obj.is(py.Ellipsis()) {
        buf.ellipsis();
        return Ok(());
    }
    if let Ok(c) = obj.cast_exact::<PyComplex>() {
        buf.complex(c.real(), c.imag());
        return Ok(());
    }
    encode_rich(obj, buf, depth, excl, notes)
}

fn encode_bigint(v: &Bound<'_, PyAny>, buf: &mut KeyBuf) -> Result<(), EncodeError> {
    let negative = v.lt(0)?;
    let mag = if negative {
        v.call_method0("__neg__")?
    } else {
        v.clone()
    };
    let bits: usize = mag.call_method0("bit_length")?.extract()?;
    let raw = mag.call_method1("to_bytes", (bits.div_ceil(8), "big"))?;
    buf.bigint(
        negative,
        raw.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes(),
    );
    Ok(())
}

fn encode_dict(
    d: &Bound<'_, PyDict>,
    buf: &mut KeyBuf,
    depth: usize,
    excl: Option<&Exclude>,
    notes: &mut Notes,
) -> Result<(), EncodeError> {
    encode_pairs(d.iter(), buf, depth, excl, notes)
}

/// Encode `(key, value)` pairs as a dict: excluded keys dropped, entries sorted by their
/// encoded bytes. Serves dict values and a call's `**kwargs` alike.
pub fn encode_pairs<'py>(
    pairs: impl Iterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    buf: &mut KeyBuf,
    depth: usize,
    excl: Option<&Exclude>,
    notes: &mut Notes,
) -> Result<(), EncodeError> {
    let items: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>, Option<&Exclude>)> = pairs
        .filter_map(|(k, v)| {
            let sub = excl.and_then(|ex| ex.child_for(&k));
            if sub.map(|s| s.all).unwrap_or(false) {
                None
            } else {
                Some((k, v, sub))
            }
        })
        .collect();
    buf.seq_header(tag::DICT, items.len());
    let start = buf.len();
    let mut bounds = Vec::with_capacity(items.len());
    for (k, v, sub) in &items {
        encode(k, buf, depth + 1, None, notes).map_err(|e| e.at(Seg::Key(key_label(k))))?;
        encode(v, buf, depth + 1, *sub, notes).map_err(|e| e.at(Seg::Key(key_label(k))))?;
        bounds.push(buf.len());
    }
    buf.sort_members(start, &bounds);
    Ok(())
}

fn tz_offset_micros(obj: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    let off = obj.call_method0("utcoffset")?;
    if off.is_none() {
        return Ok(None);
    }
    let d = off.cast::<PyDelta>().map_err(PyErr::from)?;
    let days: i64 = d.getattr("days")?.extract()?;
    let secs: i64 = d.getattr("seconds")?.extract()?;
    let us: i64 = d.getattr("microseconds")?.extract()?;
    Ok(Some((days * 86_400 + secs) * 1_000_000 + us))
}

fn write_tz(buf: &mut KeyBuf, off: Option<i64>) {
    match off {
        None => buf.extend(&[0]),
        Some(us) => {
            buf.extend(&[1]);
            buf.extend(&us.to_be_bytes());
        }
    }
}

fn u(obj: &Bound<'_, PyAny>, attr: &str) -> PyResult<i64> {
    obj.getattr(attr)?.extract()
}

/// hour, minute, second (u8 each), microsecond (u32), then the tz: shared by datetime and time.
fn write_time_of_day(obj: &Bound<'_, PyAny>, buf: &mut KeyBuf) -> PyResult<()> {
    buf.extend(&[
        u(obj, "hour")? as u8,
        u(obj, "minute")? as u8,
        u(obj, "second")? as u8,
    ]);
    buf.extend(&(u(obj, "microsecond")? as u32).to_be_bytes());
    write_tz(buf, tz_offset_micros(obj)?);
    Ok(())
}

fn encode_rich(
    obj: &Bound<'_, PyAny>,
    buf: &mut KeyBuf,
    depth: usize,
    excl: Option<&Exclude>,
    notes: &mut Notes,
) -> Result<(), EncodeError> {
    let py = obj.py();
    let ty = obj.get_type();
    // a stand-in that carries its canonical bytes (a stored method's `self`)
    if let Ok(raw) = obj.cast_exact::<super::key::RawKey>() {
        notes.opaque = true;
        buf.extend(&raw.get().bytes);
        return Ok(());
    }
    // a class object: keyed by its qualified name
    if let Ok(cls) = obj.cast::<PyType>() {
        notes.opaque = true;
        buf.named(tag::TYPE, &type_name(cls));
        return Ok(());
    }
    // an explicit key wins over everything else
    if let Ok(method) = ty.getattr("__cache_key__") {
        if method.is_callable() {
            notes.opaque = true;
            let k = obj.call_method0("__cache_key__")?;
            buf.named(tag::CACHE_KEY, &type_name(&ty));
            return encode(&k, buf, depth + 1, None, notes)
                .map_err(|e| e.at(Seg::Attr("__cache_key__()".into())));
        }
    }
    let kt = known(py)?;
    if obj.is_instance(kt.enum_type.bind(py))? {
        notes.opaque = true;
        buf.named(tag::ENUM, &type_name(&ty));
        let v = obj.getattr("value")?;
        return encode(&v, buf, depth + 1, None, notes)
            .map_err(|e| e.at(Seg::Attr("value".into())));
    }
    if obj.is_instance_of::<PyDateTime>() {
        buf.extend(&[tag::DATETIME]);
        buf.extend(&(u(obj, "year")? as u16).to_be_bytes());
        buf.extend(&[u(obj, "month")? as u8, u(obj, "day")? as u8]);
        write_time_of_day(obj, buf)?;
        return Ok(());
    }
    if obj.is_instance_of::<PyDate>() {
        buf.extend(&[tag::DATE]);
        buf.extend(&(u(obj, "year")? as u16).to_be_bytes());
        buf.extend(&[u(obj, "month")? as u8, u(obj, "day")? as u8]);
        return Ok(());
    }
    if obj.is_instance_of::<PyTime>() {
        buf.extend(&[tag::TIME]);
        write_time_of_day(obj, buf)?;
        return Ok(());
    }
    if obj.is_instance_of::<PyDelta>() {
        buf.extend(&[tag::TIMEDELTA]);
        for a in ["days", "seconds", "microseconds"] {
            buf.extend(&u(obj, a)?.to_be_bytes());
        }
        return Ok(());
    }
    if obj.is_instance(kt.decimal.bind(py))? {
        buf.extend(&[tag::DECIMAL]);
        buf.str(&obj.str()?.to_cow()?);
        return Ok(());
    }
    if obj.is_instance(kt.uuid.bind(py))? {
        let b = obj.getattr("bytes")?;
        buf.extend(&[tag::UUID]);
        buf.extend(b.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes());
        return Ok(());
    }
    if obj.is_instance(kt.pure_path.bind(py))? {
        let windows = obj.is_instance(kt.pure_windows_path.bind(py))?;
        buf.extend(&[tag::PATH, u8::from(windows)]);
        buf.str(&obj.str()?.to_cow()?);
        return Ok(());
    }
    if ty.hasattr("__dataclass_fields__")? {
        notes.opaque = true;
        let fields = kt.dataclass_fields.bind(py).call1((obj,))?;
        let mut pairs = Vec::new();
        for f in fields.try_iter()? {
            let f = f?;
            if f.getattr("compare")?.is_truthy()? {
                let name: String = f.getattr("name")?.extract()?;
                let value = obj.getattr(name.as_str())?;
                pairs.push((name, value));
            }
        }
        buf.named(tag::DATACLASS, &type_name(&ty));
        buf.varint(pairs.len() as u64);
        for (name, value) in &pairs {
            buf.str(name);
            encode(value, buf, depth + 1, None, notes)
                .map_err(|e| e.at(Seg::Attr(name.clone())))?;
        }
        return Ok(());
    }
    if obj.is_instance_of::<PyByteArray>() {
        notes.opaque = true;
        buf.named(tag::SUBCLASS, "bytearray");
        let data = obj.cast::<PyByteArray>().map_err(PyErr::from)?.to_vec();
        buf.bytes(&data);
        return Ok(());
    }
    // subclasses of builtins (namedtuple, IntFlag-less int subclasses, str subclasses, ...):
    // keyed as their base value, tagged with the subclass name so they never alias the base
    let bases: [(bool, &str); 9] = [
        (
            obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>(),
            "int",
        ),
        (obj.is_instance_of::<PyString>(), "str"),
        (obj.is_instance_of::<PyFloat>(), "float"),
        (obj.is_instance_of::<PyTuple>(), "tuple"),
        (obj.is_instance_of::<PyList>(), "list"),
        (obj.is_instance_of::<PyDict>(), "dict"),
        (obj.is_instance_of::<PyBytes>(), "bytes"),
        (obj.is_instance_of::<PySet>(), "set"),
        (obj.is_instance_of::<PyFrozenSet>(), "frozenset"),
    ];
    if let Some((_, base)) = bases.iter().find(|(yes, _)| *yes) {
        notes.opaque = true;
        buf.named(tag::SUBCLASS, &type_name(&ty));
        let builtins = py.import("builtins")?;
        let plain = builtins.getattr(*base)?.call1((obj,))?;
        return encode(&plain, buf, depth + 1, excl, notes);
    }
    Err(EncodeError::Unsupported {
        path: Vec::new(),
        type_name: type_name(&ty),
    })
}

/// `_core.encode(value)`: the canonical bytes of one value (for tests, docs and tools).
#[pyfunction]
#[pyo3(name = "encode")]
pub fn py_encode<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut buf = KeyBuf::new();
    let mut notes = Notes::default();
    encode(value, &mut buf, 0, None, &mut notes)
        .map_err(|e| e.into_pyerr(py, "value", "the value"))?;
    Ok(PyBytes::new(py, buf.as_slice()))
}

/// Reject a value that is not a `dict` with `str` keys (used for `inputs`).
pub fn require_str_keys(inputs: &Bound<'_, PyDict>) -> PyResult<()> {
    for k in inputs.keys() {
        if !k.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "inputs must be a dict with str keys (parameter names); got a key of type '{}'",
                type_name(&k.get_type())
            )));
        }
    }
    Ok(())
}
