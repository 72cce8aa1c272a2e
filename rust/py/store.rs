//! `cachehaven.Store`: the Rust store as a thread-safe, dict-like Python object, plus the
//! raw-key methods `InMemCache` builds on.
//!
//! Locking rules (see STYLE.md): the raw store sits in a `GilCell` (see `gilcell.rs`): the
//! GIL serialises access, and the cell's borrow is only ever held around pure-Rust store
//! work. Python is never called while it is held: the clock and the weigher run before
//! borrowing, values are cloned (an incref, which runs no Python) under it, and values that
//! leave the store are dropped (a decref, which can run `__del__`) only after it ends.
//! Subscriber callbacks are the same: the store queues notices under the borrow, and
//! [`Shared`] calls the subscribers after releasing it.

use std::cell::RefMut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDelta, PyDict, PyEllipsis, PyInt, PyList, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::encode::{encode, simple, Notes, Simple};
use super::event::Event;
use super::gilcell::GilCell;
use super::key::Key;
use crate::hash::{fast_hash, hash_int, hash_str};
use crate::key::{int_bytes, KeyBuf};
use crate::policy::PolicyKind;
use crate::store::{Config, EventKind, Notice, Rejected, Store as RawStore, Ttl, WriteExt};

/// A value stored under a key whose bytes cannot be decoded back (enum, dataclass, ...):
/// the original key object travels with the value so iteration can return it.
#[pyclass(frozen, module = "cachehaven._core")]
pub struct KeyedValue {
    key: Py<PyAny>,
    value: Py<PyAny>,
}

#[pymethods]
impl KeyedValue {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.key)?;
        visit.call(&self.value)
    }
}

/// Parse a TTL argument: seconds (int/float > 0) or a positive `timedelta`. `None` -> None.
pub fn parse_ttl(arg: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let secs: f64 = if let Ok(d) = v.cast::<PyDelta>() {
        d.call_method0("total_seconds")?.extract()?
    } else if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{arg} must be seconds (int or float) or a timedelta, not bool"
        )));
    } else {
        v.extract::<f64>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{arg} must be seconds (int or float) or a timedelta, not {}",
                super::encode::type_name(&v.get_type())
            ))
        })?
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "{arg} must be a positive, finite duration; got {secs}"
        )));
    }
    Ok(Some(
        (secs * 1e9).round().max(1.0).min(u64::MAX as f64 / 4.0) as u64,
    ))
}

/// Parse a limit: `None` or an int >= 0.
pub fn parse_limit(arg: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if v.is_instance_of::<pyo3::types::PyBool>() || !v.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{arg} must be an int >= 0 or None, not {}",
            super::encode::type_name(&v.get_type())
        )));
    }
    let n: i128 = v.extract()?;
    if n < 0 {
        return Err(PyValueError::new_err(format!(
            "{arg} must be >= 0 or None; got {n}"
        )));
    }
    Ok(Some(n.min(u64::MAX as i128) as u64))
}

/// Rough deep size of a value in bytes: `sys.getsizeof` of the value and, for builtin
/// containers, of their members (at most 4 levels, at most 256 members sampled per level and
/// extrapolated). Used to weigh entries against `max_bytes` when no `weigher` is given.
pub fn estimate_size(v: &Bound<'_, PyAny>, depth: u32) -> PyResult<u64> {
    let py = v.py();
    let sys = py.import("sys")?;
    let shallow: u64 = sys.call_method1("getsizeof", (v,))?.extract()?;
    if depth >= 4 {
        return Ok(shallow);
    }
    let members: Option<Vec<Bound<'_, PyAny>>> = if let Ok(t) = v.cast_exact::<PyTuple>() {
        Some(t.iter().take(256).collect())
    } else if let Ok(l) = v.cast_exact::<PyList>() {
        Some(l.iter().take(256).collect())
    } else if let Ok(d) = v.cast_exact::<PyDict>() {
        Some(d.iter().take(128).flat_map(|(k, v)| [k, v]).collect())
    } else {
        None
    };
    let total_len = v.len().unwrap_or(0) as u64;
    match members {
        Some(ms) if !ms.is_empty() => {
            let mut sum = 0u64;
            for m in &ms {
                sum += estimate_size(m, depth + 1)?;
            }
            let sampled = if v.is_exact_instance_of::<PyDict>() {
                ms.len() as u64 / 2
            } else {
                ms.len() as u64
            };
            Ok(shallow + sum * total_len.max(1) / sampled.max(1))
        }
        _ => Ok(shallow),
    }
}

/// Parse a content hash: `str`, `bytes` or `int` (not bool), or None. The result is a type
/// tag and the value's bytes, so `"1"`, `b"1"` and `1` are different hashes.
pub fn parse_content_hash(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u8>>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(24);
    if let Ok(s) = v.cast::<PyString>() {
        out.push(b's');
        match s.to_str() {
            Ok(t) => out.extend_from_slice(t.as_bytes()),
            Err(_) => {
                // lone surrogates: keep them distinct from any valid string
                out[0] = b'S';
                let b = s.call_method1("encode", ("utf-8", "surrogatepass"))?;
                out.extend_from_slice(b.cast::<PyBytes>()?.as_bytes());
            }
        }
    } else if let Ok(b) = v.cast::<PyBytes>() {
        out.push(b'b');
        out.extend_from_slice(b.as_bytes());
    } else if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        out.push(b'i');
        match v.extract::<i64>() {
            Ok(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Err(_) => {
                let s = v
                    .cast::<PyInt>()?
                    .as_any()
                    .call_method0("__index__")?
                    .str()?;
                out.extend_from_slice(s.to_str()?.as_bytes());
            }
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "content_hash must be a str, bytes or int (or None), not {}",
            super::encode::type_name(&v.get_type())
        )));
    }
    Ok(Some(out))
}

/// The Python object a stored content hash was made from (inverse of `parse_content_hash`).
pub fn content_hash_object<'py>(py: Python<'py>, h: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let (tag, body) = h
        .split_first()
        .ok_or_else(|| PyValueError::new_err("empty hash"))?;
    match tag {
        b's' => Ok(PyString::new(py, std::str::from_utf8(body)?).into_any()),
        b'S' => PyBytes::new(py, body).call_method1("decode", ("utf-8", "surrogatepass")),
        b'b' => Ok(PyBytes::new(py, body).into_any()),
        b'i' => py.get_type::<PyInt>().call1((std::str::from_utf8(body)?,)),
        _ => Err(PyValueError::new_err("corrupt content hash")),
    }
}

/// Reject a bare string / bytes given where an iterable of keys belongs (iterating it would
/// make one key per character).
fn check_key_iterable(v: &Bound<'_, PyAny>) -> PyResult<()> {
    if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "depends_on must be an iterable of keys, not {} (wrap a single key in a list)",
            super::encode::type_name(&v.get_type())
        )));
    }
    Ok(())
}

fn iterate<'py>(v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
    v.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "depends_on must be an iterable of keys, not {}",
            super::encode::type_name(&v.get_type())
        ))
    })
}

/// Canonical bytes of each key in `depends_on` (an iterable of keys, or None).
fn parse_depends_on(v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Vec<u8>>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    check_key_iterable(v)?;
    let mut out = Vec::new();
    for (i, item) in iterate(v)?.enumerate() {
        let item = item?;
        let mut buf = KeyBuf::new();
        let mut notes = Notes::default();
        encode(&item, &mut buf, 0, None, &mut notes).map_err(|e| {
            e.into_pyerr(
                v.py(),
                &format!("depends_on[{i}]"),
                &format!("depends_on[{i}]"),
            )
        })?;
        out.push(buf.into_vec());
    }
    Ok(out)
}

/// Bytes of each `Key` in `depends_on` (an iterable of `Key` objects, or None).
fn parse_raw_depends_on(v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Vec<u8>>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    check_key_iterable(v)?;
    let mut out = Vec::new();
    for (i, item) in iterate(v)?.enumerate() {
        let item = item?;
        let k = item.cast::<Key>().map_err(|_| {
            PyTypeError::new_err(format!(
                "depends_on[{i}] must be a cachehaven Key, not {}",
                super::encode::type_name(&item.get_type())
            ))
        })?;
        out.push(k.get().bytes.to_vec());
    }
    Ok(out)
}

/// The extras of a raw write (`_set_raw`, `_put_memo`), parsed only when given.
struct RawExt {
    depends_on: Vec<Vec<u8>>,
    content_hash: Option<Vec<u8>>,
    warmup: bool,
}

impl RawExt {
    fn parse(
        depends_on: Option<&Bound<'_, PyAny>>,
        content_hash: Option<&Bound<'_, PyAny>>,
        warmup: bool,
    ) -> PyResult<Self> {
        let plain = depends_on.is_none() && content_hash.is_none() && !warmup;
        Ok(RawExt {
            depends_on: if plain {
                Vec::new()
            } else {
                parse_raw_depends_on(depends_on)?
            },
            content_hash: if plain {
                None
            } else {
                parse_content_hash(content_hash)?
            },
            warmup,
        })
    }

    fn write_ext(&self) -> WriteExt<'_> {
        WriteExt {
            depends_on: &self.depends_on,
            content_hash: self.content_hash.as_deref(),
            warmup: self.warmup,
        }
    }
}

/// The record `InMemCache` stores for a memoized call's result: item 0 is what a hit returns
/// (see `memo.rs`), then the entry's `func`, `inputs`, `output`, `expected` (unset: `...`)
/// and `metadata` (None for none; `CacheEntry` makes it `{}`).
///
/// A record that can never be part of a reference cycle is not tracked by the garbage
/// collector, which otherwise traverses every stored record at each full collection (most
/// of the cost of an unbounded cache's misses; see [`acyclic`]).
pub fn memo_record<'py>(
    result: &Bound<'py, PyAny>,
    func: &Bound<'py, PyString>,
    inputs: &Bound<'py, PyDict>,
    metadata: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = result.py();
    let record = PyTuple::new(
        py,
        [
            result,
            func.as_any(),
            inputs.as_any(),
            result,
            &PyEllipsis::get(py).to_owned().into_any(),
            metadata,
        ],
    )?;
    if metadata.is_none() && acyclic(result) && !is_tracked(inputs.as_any()) {
        // SAFETY: the GIL is held and `record` is a live tuple we made and own, fully
        // built; untracking a tracked object is what CPython's collector itself does for
        // tuples whose items cannot form a cycle.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(record.as_ptr().cast()) };
    }
    Ok(record)
}

/// Whether the garbage collector tracks `v`.
fn is_tracked(v: &Bound<'_, PyAny>) -> bool {
    // SAFETY: the GIL is held (a `Bound` proves it) and `v` is a live object.
    unsafe { pyo3::ffi::PyObject_GC_IsTracked(v.as_ptr()) != 0 }
}

/// Whether `v` can never reach a reference cycle: an object that is not a container the
/// collector knows (an int, str, float, bytes, None...), or a tuple the collector stopped
/// tracking (it holds only such values). CPython's rule for untracking tuples.
///
/// A record holding only such values plus `func` (a str), `...`, None for `metadata` and an
/// untracked `inputs` dict (one whose values are all atomic) cannot be in a cycle either:
/// the dict is the record's own (`InMemCache` hands out copies of it, see `_entry`), and
/// nothing else refers to the record but the store.
fn acyclic(v: &Bound<'_, PyAny>) -> bool {
    // SAFETY: the GIL is held and `v` is a live object.
    let gc = unsafe { pyo3::ffi::PyObject_IS_GC(v.as_ptr()) != 0 };
    !gc || (v.is_exact_instance_of::<PyTuple>() && !is_tracked(v))
}

/// Parse a count argument (`n`): an int >= 0, or None where allowed.
fn parse_count(arg: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    Ok(parse_limit(arg, v)?.map(|n| n.min(usize::MAX as u64) as usize))
}

/// `_core.estimate_size(value)`: the default weigher.
#[pyfunction]
#[pyo3(name = "estimate_size")]
pub fn py_estimate_size(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    estimate_size(value, 0)
}

/// Subscriber callbacks by event kind.
type Subscribers = [Vec<Py<PyAny>>; 8];

/// The shared machinery: the locked raw store, the clock and the subscribers.
pub struct Shared {
    pub(crate) inner: GilCell<RawStore<Py<PyAny>>>,
    uses_time: AtomicBool,
    clock: Option<Py<PyAny>>,
    epoch: Instant,
    weigher: Option<Py<PyAny>>,
    has_max_bytes: bool,
    subs: GilCell<Subscribers>,
}

impl Shared {
    /// Current time in ns on the store's clock (only read when an entry may expire).
    #[inline(always)]
    pub fn now(&self, py: Python<'_>, needed: bool) -> PyResult<u64> {
        if !(needed || self.uses_time.load(Ordering::Relaxed)) {
            return Ok(0);
        }
        self.read_clock(py)
    }

    fn read_clock(&self, py: Python<'_>) -> PyResult<u64> {
        match &self.clock {
            Some(c) => {
                let secs: f64 = c.bind(py).call0()?.extract().map_err(|_| {
                    PyTypeError::new_err("clock must return the time in seconds as an int or float")
                })?;
                if !secs.is_finite() || secs < 0.0 {
                    return Err(PyValueError::new_err(format!(
                        "clock returned {secs}; expected seconds >= 0"
                    )));
                }
                Ok((secs * 1e9) as u64 + 1)
            }
            None => Ok(self.monotonic()),
        }
    }

    /// The default clock: ns since the store was made, plus one (0 means "no time").
    #[inline]
    fn monotonic(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// The time for a lookup if reading it needs no Python: None when the store reads a
    /// Python `clock`.
    #[inline(always)]
    fn now_native(&self) -> Option<u64> {
        if !self.uses_time.load(Ordering::Relaxed) {
            Some(0)
        } else if self.clock.is_some() {
            None
        } else {
            Some(self.monotonic())
        }
    }

    /// Weigh an entry for `max_bytes` (0 when the store has no byte limit).
    #[inline]
    pub fn weigh(
        &self,
        key_len: usize,
        key: Option<&Bound<'_, PyAny>>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        if let Some(w) = &self.weigher {
            let r = match key {
                Some(k) => w.bind(value.py()).call1((k, value))?,
                None => w.bind(value.py()).call1((value.py().None(), value))?,
            };
            let n: i128 = r
                .extract()
                .map_err(|_| PyTypeError::new_err("weigher must return an int >= 0"))?;
            if n < 0 {
                return Err(PyValueError::new_err(format!(
                    "weigher returned {n}; weights must be >= 0"
                )));
            }
            return Ok(n.min(u64::MAX as i128) as u64);
        }
        if !self.has_max_bytes {
            return Ok(0);
        }
        Ok(key_len as u64 + estimate_size(value, 0)?)
    }

    /// Look up raw key bytes; returns a new reference to the stored object.
    #[inline]
    pub fn get(&self, py: Python<'_>, key: &[u8], hash: u64) -> PyResult<Option<Py<PyAny>>> {
        let now = self.now(py, false)?;
        let g = self.inner.borrow(py)?;
        Ok(self.lookup(py, g, key, hash, now, false))
    }

    /// [`Shared::get`] for the raw `Store.get` entry (see `rawcall.rs`): makes no `PyErr`,
    /// and returns None, having done nothing, when the lookup would need Python first (the
    /// store reads a Python `clock`) or cannot borrow the store (the general path then
    /// raises the error).
    #[inline(always)]
    pub fn get_native(&self, py: Python<'_>, key: &[u8], hash: u64) -> Option<Option<Py<PyAny>>> {
        let now = self.now_native()?;
        let g = self.inner.try_borrow(py)?;
        Some(self.lookup(py, g, key, hash, now, false))
    }

    /// [`Shared::get_native`] for hits only: None, having done nothing, also when `key` is
    /// absent or expired (the general path then does the miss). For the raw memoized call.
    #[inline(always)]
    pub fn get_hit_native(&self, py: Python<'_>, key: &[u8], hash: u64) -> Option<Py<PyAny>> {
        let now = self.now_native()?;
        let g = self.inner.try_borrow(py)?;
        self.lookup(py, g, key, hash, now, true)
    }

    /// The lookup on the borrowed store (`RawStore::get`, or `get_hit` if `hit_only`),
    /// returning a new reference; ends the borrow.
    #[inline(always)]
    fn lookup(
        &self,
        py: Python<'_>,
        mut g: RefMut<'_, RawStore<Py<PyAny>>>,
        key: &[u8],
        hash: u64,
        now: u64,
        hit_only: bool,
    ) -> Option<Py<PyAny>> {
        let found = if hit_only {
            g.get_hit(key, hash, now)
        } else {
            g.get(key, hash, now)
        };
        let found = found.map(|v| v.clone_ref(py));
        if g.has_outbox() {
            // an expired entry was dropped or an event is due: handle it after unlocking
            self.settle(g);
        }
        found
    }

    /// End a lookup's borrow, then drop the values that left the store and call the
    /// subscribers of its events. Inside `Python::attach`, so that the drops decref at once
    /// even when the raw entry, which runs outside PyO3's attach count, got here.
    #[cold]
    #[inline(never)]
    fn settle(&self, mut g: RefMut<'_, RawStore<Py<PyAny>>>) {
        let dead = g.take_graveyard();
        let notices = g.take_notices();
        drop(g);
        Python::attach(|py| {
            drop(dead);
            if !notices.is_empty() {
                self.deliver(py, notices);
            }
        });
    }

    /// The stored object for raw key bytes, without counting or touching recency.
    pub fn peek(&self, py: Python<'_>, key: &[u8], hash: u64) -> PyResult<Option<Py<PyAny>>> {
        let now = self.now(py, false)?;
        self.with(py, |s| s.peek(key, hash, now).map(|v| v.clone_ref(py)))
    }

    /// Look up raw key bytes, requiring the stored content hash to be `want` when given.
    pub fn get_checked(
        &self,
        py: Python<'_>,
        key: &[u8],
        hash: u64,
        want: Option<&[u8]>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let Some(want) = want else {
            return self.get(py, key, hash);
        };
        let now = self.now(py, false)?;
        self.with(py, |s| {
            s.get_checked(key, hash, now, want).map(|v| v.clone_ref(py))
        })
    }

    /// Write raw key bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        py: Python<'_>,
        key: &[u8],
        hash: u64,
        value: Py<PyAny>,
        weight: u64,
        ttl: Option<u64>,
        group: u32,
        ext: &WriteExt<'_>,
    ) -> PyResult<Result<(), Rejected>> {
        if ttl.is_some() {
            self.uses_time.store(true, Ordering::Relaxed);
        }
        let now = self.now(py, ttl.is_some())?;
        let t = ttl.map(Ttl::After).unwrap_or(Ttl::Default);
        self.with(py, |s| {
            s.insert_ext(key, hash, value, weight, t, group, now, ext)
        })
    }

    /// Run `f` on the locked store, then, after unlocking, drop whatever left it and call
    /// the subscribers of the events it made.
    pub fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut RawStore<Py<PyAny>>) -> R,
    ) -> PyResult<R> {
        let (r, dead, notices) = {
            let mut g = self.inner.borrow(py)?;
            let r = f(&mut g);
            (r, g.take_graveyard(), g.take_notices())
        };
        drop(dead);
        if !notices.is_empty() {
            self.deliver(py, notices);
        }
        Ok(r)
    }

    /// Call the subscribers of `notices` (the store is not borrowed here).
    #[cold]
    #[inline(never)]
    fn deliver(&self, py: Python<'_>, notices: Vec<Notice<Py<PyAny>>>) {
        for n in notices {
            self.notify(py, n);
        }
    }

    fn notify(&self, py: Python<'_>, n: Notice<Py<PyAny>>) {
        let callbacks: Vec<Py<PyAny>> = match self.subs.borrow(py) {
            Ok(subs) => subs[n.kind as usize]
                .iter()
                .map(|c| c.clone_ref(py))
                .collect(),
            Err(_) => return,
        };
        if callbacks.is_empty() {
            return; // unsubscribed since the event was queued
        }
        // an entry under a non-decodable key keeps its key object beside the value
        let (key, value) = match n.value {
            Some(v) => match v.bind(py).cast::<KeyedValue>() {
                Ok(kv) => (
                    Some(kv.get().key.clone_ref(py)),
                    Some(kv.get().value.clone_ref(py)),
                ),
                Err(_) => (None, Some(v)),
            },
            None => (None, None),
        };
        let event = match Event::build(py, n.kind, n.key.as_slice(), key, n.time, value) {
            Ok(e) => e,
            Err(e) => {
                e.write_unraisable(py, None);
                return;
            }
        };
        for cb in callbacks {
            if let Err(e) = cb.bind(py).call1((event.clone_ref(py),)) {
                // a failing subscriber never breaks the store operation that triggered it
                e.write_unraisable(py, Some(cb.bind(py)));
            }
        }
    }

    /// The subscription mask for the raw store.
    fn mask(subs: &Subscribers) -> u8 {
        EventKind::ALL
            .iter()
            .filter(|k| !subs[**k as usize].is_empty())
            .fold(0, |m, k| m | k.bit())
    }
}

fn parse_kind(kind: &str) -> PyResult<EventKind> {
    EventKind::parse(kind).ok_or_else(|| {
        PyValueError::new_err(format!(
            "kind must be one of {} (any case); got '{kind}'",
            EventKind::ALL
                .iter()
                .map(|k| format!("'{}'", k.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The key object for canonical bytes: decoded, or a `Key` when they do not decode.
fn decode_or_key<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    match super::decode::decode(py, bytes) {
        Ok(k) => Ok(k),
        Err(_) => Ok(Py::new(py, Key::from_bytes(bytes))?
            .into_bound(py)
            .into_any()),
    }
}

fn policy_names() -> String {
    PolicyKind::names_for_error()
}

/// A thread-safe in-memory key-value store with bounded size, TTL and recency + frequency
/// eviction, implemented in Rust.
///
/// Keys may be any value cachehaven can canonicalize (not only hashable ones: lists and dicts
/// work, and `1`, `1.0` and `True` are different keys). Lookups compare canonical bytes, so
/// they are exact.
///
/// `Store(max_entries=None, max_bytes=None, ttl=None, policy="adaptive", weigher=None,
/// clock=None, events=0, track_patterns=False)`: `max_entries=None` is unbounded and `0`
/// stores nothing; `max_bytes` bounds the total weight (by `weigher(key, value)` or a deep
/// size estimate); `ttl` is seconds or a timedelta; `clock` is a zero-argument callable
/// returning seconds (for tests), defaulting to a monotonic clock; `events` keeps that many
/// recent events (`events()`); `track_patterns` learns which keys follow which
/// (`predict_next()`). Entries may depend on other keys (`set(..., depends_on=[...])`,
/// `invalidate(key)`) and carry a content hash (`get(key, content_hash=...)`). Cost: O(1)
/// amortised per operation; no operation scans entries except iteration and `clear`.
#[pyclass(frozen, module = "cachehaven._core", name = "Store")]
pub struct PyStore {
    pub(crate) shared: Shared,
    /// Some value is wrapped in a `KeyedValue` (so reads must check for the wrapper).
    has_keyed: AtomicBool,
}

impl PyStore {
    #[inline]
    fn encode_key(&self, key: &Bound<'_, PyAny>, buf: &mut KeyBuf) -> PyResult<Notes> {
        let mut notes = Notes::default();
        encode(key, buf, 0, None, &mut notes)
            .map_err(|e| e.into_pyerr(key.py(), "key", "the key"))?;
        Ok(notes)
    }

    /// The user's value from a stored object (which may be a `KeyedValue` wrapper). Works
    /// on `Bound` references, whose drop decrefs directly (the raw entry relies on it).
    #[inline(always)]
    fn unwrap_value<'py>(&self, v: Bound<'py, PyAny>) -> Bound<'py, PyAny> {
        if !self.has_keyed.load(Ordering::Relaxed) {
            return v;
        }
        match v.cast::<KeyedValue>() {
            Ok(kv) => kv.get().value.bind(v.py()).clone(),
            Err(_) => v,
        }
    }

    /// `get(key)` when the key is an exact int or str and the lookup needs no Python (see
    /// `rawcall.rs`): Some(value or None for a miss), or None, having done nothing, for the
    /// general path.
    #[inline(always)]
    pub(crate) fn get_fast<'py>(
        &self,
        key: &Bound<'py, PyAny>,
    ) -> Option<Option<Bound<'py, PyAny>>> {
        let py = key.py();
        // one inlined lookup per arm: an int key's length is a constant there, which folds
        // the hash's and the key comparison's length branches
        let found = match simple(key)? {
            Simple::Int(v) => self.shared.get_native(py, &int_bytes(v), hash_int(v))?,
            Simple::Str(s) => {
                let mut buf = KeyBuf::new();
                buf.str(s);
                self.shared
                    .get_native(py, buf.as_slice(), hash_str(s.as_bytes()))?
            }
        };
        let Some(v) = found else {
            return Some(None);
        };
        Some(Some(self.unwrap_value(v.into_bound(py))))
    }

    fn key_object<'py>(
        &self,
        py: Python<'py>,
        bytes: &[u8],
        v: &Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match v.bind(py).cast::<KeyedValue>() {
            Ok(kv) => Ok(kv.get().key.bind(py).clone()),
            Err(_) => super::decode::decode(py, bytes),
        }
    }

    /// A list of `(key, value)` tuples from entries taken out of the store (key bytes and
    /// stored objects), decoded after the borrow ended.
    fn pairs<'py>(
        &self,
        py: Python<'py>,
        entries: Vec<(Vec<u8>, Py<PyAny>)>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let key = self.key_object(py, &k, &v)?;
            out.push(PyTuple::new(
                py,
                [key, self.unwrap_value(v.into_bound(py))],
            )?);
        }
        PyList::new(py, out)
    }

    fn snapshot(&self, py: Python<'_>) -> PyResult<Vec<(Vec<u8>, Py<PyAny>)>> {
        let now = self.shared.now(py, false)?;
        self.shared.with(py, |s| {
            let mut out = Vec::with_capacity(s.len());
            s.for_each(now, |k, v, _| out.push((k.to_vec(), v.clone_ref(py))));
            out
        })
    }

    /// Weigh `weigh_value` and store `record` under raw key bytes in `group`; whether it was
    /// stored (a value heavier than `max_bytes`, or `max_entries=0`, is not).
    #[allow(clippy::too_many_arguments)] // the write's independent facts
    pub(crate) fn put_raw(
        &self,
        py: Python<'_>,
        key: &[u8],
        hash: u64,
        record: &Bound<'_, PyAny>,
        weigh_value: &Bound<'_, PyAny>,
        group: u32,
        ttl: Option<u64>,
        ext: &WriteExt<'_>,
    ) -> PyResult<bool> {
        let weight = self.shared.weigh(key.len(), None, weigh_value)?;
        Ok(self
            .shared
            .insert(
                py,
                key,
                hash,
                record.clone().unbind(),
                weight,
                ttl,
                group,
                ext,
            )?
            .is_ok())
    }

    fn set_impl(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<u64>,
        ext: &WriteExt<'_>,
    ) -> PyResult<()> {
        let py = key.py();
        let mut buf = KeyBuf::new();
        let notes = self.encode_key(key, &mut buf)?;
        let weight = self.shared.weigh(buf.len(), Some(key), value)?;
        let stored = if notes.opaque {
            self.has_keyed.store(true, Ordering::Relaxed);
            Py::new(
                py,
                KeyedValue {
                    key: key.clone().unbind(),
                    value: value.clone().unbind(),
                },
            )?
            .into_any()
        } else {
            value.clone().unbind()
        };
        let hash = fast_hash(buf.as_slice());
        match self
            .shared
            .insert(py, buf.as_slice(), hash, stored, weight, ttl, 0, ext)?
        {
            Ok(()) | Err(Rejected::ZeroCapacity) => Ok(()),
            Err(Rejected::TooLarge { weight, max_bytes }) => Err(PyValueError::new_err(format!(
                "value weighs {weight} bytes, more than the store's max_bytes={max_bytes}; it was not stored"
            ))),
        }
    }
}

#[pymethods]
impl PyStore {
    #[new]
    #[pyo3(
        signature = (max_entries = None, max_bytes = None, ttl = None, policy = "adaptive", weigher = None, clock = None, events = None, track_patterns = false),
        text_signature = "(max_entries=None, max_bytes=None, ttl=None, policy='adaptive', weigher=None, clock=None, events=0, track_patterns=False)"
    )]
    #[allow(clippy::too_many_arguments)] // the constructor's keyword arguments
    fn new(
        max_entries: Option<&Bound<'_, PyAny>>,
        max_bytes: Option<&Bound<'_, PyAny>>,
        ttl: Option<&Bound<'_, PyAny>>,
        policy: &str,
        weigher: Option<Py<PyAny>>,
        clock: Option<Py<PyAny>>,
        events: Option<&Bound<'_, PyAny>>,
        track_patterns: bool,
    ) -> PyResult<Self> {
        let events = parse_count("events", events)?.unwrap_or(0);
        let max_entries =
            parse_limit("max_entries", max_entries)?.map(|n| n.min(u32::MAX as u64 - 1) as usize);
        let max_bytes = parse_limit("max_bytes", max_bytes)?;
        let ttl = parse_ttl("ttl", ttl)?;
        let policy = PolicyKind::parse(policy).ok_or_else(|| {
            PyValueError::new_err(format!(
                "policy must be one of {}; got {policy:?}",
                policy_names()
            ))
        })?;
        for (name, f) in [("weigher", &weigher), ("clock", &clock)] {
            if let Some(f) = f {
                Python::attach(|py| {
                    if f.bind(py).is_callable() {
                        Ok(())
                    } else {
                        Err(PyTypeError::new_err(format!("{name} must be callable")))
                    }
                })?;
            }
        }
        let config = Config {
            max_entries,
            max_bytes,
            ttl,
            policy,
        };
        let mut raw = RawStore::new(config);
        raw.set_event_log(events);
        raw.set_learning(track_patterns);
        Ok(PyStore {
            shared: Shared {
                inner: GilCell::new(raw),
                uses_time: AtomicBool::new(ttl.is_some()),
                clock,
                epoch: Instant::now(),
                weigher,
                has_max_bytes: max_bytes.is_some(),
                subs: GilCell::new(Default::default()),
            },
            has_keyed: AtomicBool::new(false),
        })
    }

    /// The value for `key`, or `default` if absent (or expired). With `content_hash`, an
    /// entry stored with a different hash (or none) is removed and the lookup is a miss.
    #[pyo3(signature = (key, default = None, content_hash = None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
        content_hash: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        let found = match content_hash {
            None => self.shared.get(py, buf.as_slice(), hash)?,
            Some(ch) => {
                let want = parse_content_hash(Some(ch))?;
                self.shared
                    .get_checked(py, buf.as_slice(), hash, want.as_deref())?
            }
        };
        Ok(match found {
            Some(v) => self.unwrap_value(v.into_bound(py)).unbind(),
            None => default.unwrap_or_else(|| py.None()),
        })
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        match self.shared.get(py, buf.as_slice(), hash)? {
            Some(v) => Ok(self.unwrap_value(v.into_bound(py)).unbind()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_impl(key, value, None, &WriteExt::PLAIN)
    }

    /// Store `value` under `key`, with an optional per-entry `ttl` (seconds or timedelta).
    /// `depends_on`: keys this entry depends on (`invalidate` of any of them removes it);
    /// `content_hash`: a str / bytes / int stored with it (see `get`); `warmup=True` marks a
    /// prefetched entry (counted in `warmups`; its first hit counts a `prediction_hit`).
    #[pyo3(signature = (key, value, ttl = None, *, depends_on = None, content_hash = None, warmup = false))]
    fn set(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
        depends_on: Option<&Bound<'_, PyAny>>,
        content_hash: Option<&Bound<'_, PyAny>>,
        warmup: bool,
    ) -> PyResult<()> {
        let ttl = parse_ttl("ttl", ttl)?;
        if depends_on.is_none() && content_hash.is_none() && !warmup {
            return self.set_impl(key, value, ttl, &WriteExt::PLAIN);
        }
        let deps = parse_depends_on(depends_on)?;
        let ch = parse_content_hash(content_hash)?;
        let ext = WriteExt {
            depends_on: &deps,
            content_hash: ch.as_deref(),
            warmup,
        };
        self.set_impl(key, value, ttl, &ext)
    }

    /// Remove `key` (if stored) and every entry depending on it, transitively (cycles are
    /// fine); returns how many entries were removed. Works whether or not `key` is stored.
    fn invalidate(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        let now = self.shared.now(py, false)?;
        self.shared
            .with(py, |s| s.invalidate(buf.as_slice(), hash, now))
    }

    /// Up to `n` keys that most often followed `key` (most frequent first, ties by
    /// recency), learned while `track_patterns` is on. Emits a PREDICT event per key.
    #[pyo3(signature = (key, n = None), text_signature = "($self, key, n=3)")]
    fn predict_next<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        n: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let n = parse_count("n", n)?.unwrap_or(3);
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        let keys = self
            .shared
            .with(py, |s| s.predict(buf.as_slice(), hash, n))?;
        let objs = keys
            .iter()
            .map(|k| decode_or_key(py, k.as_slice()))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, objs)
    }

    /// Whether the store learns successor frequencies for `predict_next` (settable).
    #[getter]
    fn get_track_patterns(&self, py: Python<'_>) -> PyResult<bool> {
        self.shared.with(py, |s| s.learning())
    }

    #[setter]
    fn set_track_patterns(&self, py: Python<'_>, track_patterns: bool) -> PyResult<()> {
        self.shared.with(py, |s| s.set_learning(track_patterns))
    }

    /// The newest `n` logged events (all with None), oldest first; empty with `events=0`.
    #[pyo3(signature = (n = None))]
    fn events<'py>(
        &self,
        py: Python<'py>,
        n: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let n = parse_count("n", n)?;
        let raw: Vec<(EventKind, f64, Vec<u8>)> = self.shared.with(py, |s| {
            s.events(n)
                .into_iter()
                .map(|e| (e.kind, e.time, e.key.clone()))
                .collect()
        })?;
        // keys are decoded after the borrow (decoding may run Python constructors)
        let out = raw
            .into_iter()
            .map(|(kind, time, key)| Event::build(py, kind, &key, None, time, None))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, out)
    }

    /// Call `callback(event)` for every event of `kind` ("HIT", "MISS", "WRITE", "EVICT",
    /// "EXPIRE", "INVALIDATE", "WARMUP", "PREDICT"), after the store's operation has
    /// finished. EVICT / EXPIRE / INVALIDATE events carry the removed value as
    /// `event.value`. Exceptions from callbacks go to `sys.unraisablehook`.
    fn subscribe(&self, py: Python<'_>, kind: &str, callback: Py<PyAny>) -> PyResult<()> {
        let k = parse_kind(kind)?;
        if !callback.bind(py).is_callable() {
            return Err(PyTypeError::new_err(format!(
                "callback must be callable, not {}",
                super::encode::type_name(&callback.bind(py).get_type())
            )));
        }
        let mask = {
            let mut subs = self.shared.subs.borrow(py)?;
            subs[k as usize].push(callback);
            Shared::mask(&subs)
        };
        self.shared.with(py, |s| s.set_notify(mask))
    }

    /// Stop calling `callback` for `kind` (ValueError if it was not subscribed).
    fn unsubscribe(&self, py: Python<'_>, kind: &str, callback: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = parse_kind(kind)?;
        let current: Vec<Py<PyAny>> = self.shared.subs.borrow(py)?[k as usize]
            .iter()
            .map(|c| c.clone_ref(py))
            .collect();
        // compare outside any borrow: `==` may run Python (bound methods compare by value)
        let mut found = None;
        for c in &current {
            if c.bind(py).is(callback) || c.bind(py).eq(callback)? {
                found = Some(c);
                break;
            }
        }
        let Some(target) = found else {
            return Err(PyValueError::new_err(format!(
                "callback is not subscribed to '{}'",
                k.name()
            )));
        };
        let (mask, removed) = {
            let mut subs = self.shared.subs.borrow(py)?;
            let list = &mut subs[k as usize];
            let removed = list
                .iter()
                .position(|c| c.is(target))
                .map(|j| list.remove(j));
            (Shared::mask(&subs), removed)
        };
        drop(removed);
        self.shared.with(py, |s| s.set_notify(mask))
    }

    /// Up to `n` `(key, value)` pairs the eviction policy values most, most valuable first
    /// (walks the policy's queues from the hot end; never sorts all entries).
    #[pyo3(signature = (n = None), text_signature = "($self, n=10)")]
    fn hot_entries<'py>(
        &self,
        py: Python<'py>,
        n: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let n = parse_count("n", n)?.unwrap_or(10);
        let now = self.shared.now(py, false)?;
        let hot = self.shared.with(py, |s| {
            let mut out = Vec::new();
            s.for_each_hot(n, now, |k, v| out.push((k.to_vec(), v.clone_ref(py))));
            out
        })?;
        self.pairs(py, hot)
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        let py = key.py();
        let now = self.shared.now(py, false)?;
        if self
            .shared
            .with(py, |s| s.remove(buf.as_slice(), hash, now))?
        {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// Remove `key` and return its value; `default` (or KeyError) if absent.
    #[pyo3(signature = (key, *default))]
    fn pop(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "pop expected at most 2 arguments, got {}",
                default.len() + 1
            )));
        }
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        let now = self.shared.now(py, false)?;
        match self
            .shared
            .with(py, |s| s.take(buf.as_slice(), hash, now))?
        {
            Some(v) => Ok(self.unwrap_value(v.into_bound(py)).unbind()),
            None if default.len() == 1 => Ok(default.get_item(0)?.unbind()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        let now = self.shared.now(py, false)?;
        self.shared
            .with(py, |s| s.peek(buf.as_slice(), hash, now).is_some())
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let now = self.shared.now(py, false)?;
        self.shared.with(py, |s| {
            if s.uses_time() {
                s.purge_expired(now);
            }
            s.len()
        })
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let keys = self.keys(py)?;
        Ok(keys.try_iter()?.into_any().unbind())
    }

    /// A list of the keys (a snapshot).
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snap = self.snapshot(py)?;
        let keys = snap
            .iter()
            .map(|(k, v)| self.key_object(py, k, v))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, keys)
    }

    /// A list of the values (a snapshot).
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snap = self.snapshot(py)?;
        PyList::new(
            py,
            snap.into_iter()
                .map(|(_, v)| self.unwrap_value(v.into_bound(py))),
        )
    }

    /// A list of `(key, value)` pairs (a snapshot).
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snap = self.snapshot(py)?;
        self.pairs(py, snap)
    }

    /// Remove every entry (statistics are kept).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.with(py, |s| s.clear())
    }

    /// Counters and sizes: hits, misses, hit_rate, inserts, updates, evictions, expirations,
    /// removals, rejections, invalidations, warmups, prediction_hits, prediction_accuracy
    /// (prediction_hits / warmups), entries, bytes (total weight; 0 without
    /// max_bytes/weigher), max_entries, max_bytes, policy, memory (bytes the store's own
    /// structures use), events (the event log's capacity), track_patterns.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (st, len, weight, cfg, mem, events, learning) = self.shared.with(py, |s| {
            (
                s.stats(),
                s.len(),
                s.weight(),
                *s.config(),
                s.memory_bytes(),
                s.event_log_capacity(),
                s.learning(),
            )
        })?;
        let d = PyDict::new(py);
        let lookups = st.hits + st.misses;
        d.set_item("hits", st.hits)?;
        d.set_item("misses", st.misses)?;
        d.set_item(
            "hit_rate",
            if lookups == 0 {
                0.0
            } else {
                st.hits as f64 / lookups as f64
            },
        )?;
        d.set_item("inserts", st.inserts)?;
        d.set_item("updates", st.updates)?;
        d.set_item("evictions", st.evictions)?;
        d.set_item("expirations", st.expirations)?;
        d.set_item("removals", st.removals)?;
        d.set_item("rejections", st.rejections)?;
        d.set_item("invalidations", st.invalidations)?;
        d.set_item("warmups", st.warmups)?;
        d.set_item("prediction_hits", st.prediction_hits)?;
        d.set_item(
            "prediction_accuracy",
            if st.warmups == 0 {
                0.0
            } else {
                st.prediction_hits as f64 / st.warmups as f64
            },
        )?;
        d.set_item("entries", len)?;
        d.set_item("bytes", weight)?;
        d.set_item("max_entries", cfg.max_entries)?;
        d.set_item("max_bytes", cfg.max_bytes)?;
        d.set_item("policy", cfg.policy.name())?;
        d.set_item("memory", mem)?;
        d.set_item("events", events)?;
        d.set_item("track_patterns", learning)?;
        Ok(d)
    }

    /// The configured limits, as `(max_entries, max_bytes, ttl_seconds, policy)`.
    #[getter]
    fn max_entries(&self, py: Python<'_>) -> PyResult<Option<usize>> {
        self.shared.with(py, |s| s.config().max_entries)
    }

    #[getter]
    fn max_bytes(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.shared.with(py, |s| s.config().max_bytes)
    }

    #[getter]
    fn policy(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.shared.with(py, |s| s.config().policy.name())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let (len, cfg) = self.shared.with(py, |s| (s.len(), *s.config()))?;
        Ok(format!(
            "Store(entries={len}, max_entries={}, max_bytes={}, policy={:?})",
            cfg.max_entries
                .map(|n| n.to_string())
                .unwrap_or_else(|| "None".into()),
            cfg.max_bytes
                .map(|n| n.to_string())
                .unwrap_or_else(|| "None".into()),
            cfg.policy.name()
        ))
    }

    /// Check internal invariants (for tests); raises AssertionError describing a violation.
    fn _check(&self, py: Python<'_>) -> PyResult<()> {
        self.shared
            .with(py, |s| s.check_invariants())?
            .map_err(pyo3::exceptions::PyAssertionError::new_err)
    }

    // ---- raw-key interface used by InMemCache (keys are canonical call keys) ----

    /// The stored object for `key`, or None; counts a hit or miss. With `content_hash`, a
    /// stored entry with a different hash (or none) is removed and the lookup is a miss.
    #[pyo3(signature = (key, content_hash = None))]
    fn _get_raw(
        &self,
        py: Python<'_>,
        key: &Bound<'_, Key>,
        content_hash: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let k = key.get();
        match content_hash {
            None => self.shared.get(py, &k.bytes, k.hash),
            Some(ch) => {
                let want = parse_content_hash(Some(ch))?;
                self.shared
                    .get_checked(py, &k.bytes, k.hash, want.as_deref())
            }
        }
    }

    /// The stored object for `key` without counting or touching recency.
    fn _peek_raw(&self, py: Python<'_>, key: &Bound<'_, Key>) -> PyResult<Option<Py<PyAny>>> {
        let k = key.get();
        self.shared.peek(py, &k.bytes, k.hash)
    }

    /// Store `record` under `key` in `group`; `ttl` in seconds/timedelta or None for the
    /// default; `weigh_value` is what `max_bytes` weighs; `depends_on` is a list of `Key`s;
    /// `content_hash` and `warmup` as for `set`. Returns whether it was stored.
    #[pyo3(signature = (key, record, group = 0, ttl = None, weigh_value = None, *, depends_on = None, content_hash = None, warmup = false))]
    #[allow(clippy::too_many_arguments)] // the write's keyword arguments
    fn _set_raw(
        &self,
        py: Python<'_>,
        key: &Bound<'_, Key>,
        record: &Bound<'_, PyAny>,
        group: u32,
        ttl: Option<&Bound<'_, PyAny>>,
        weigh_value: Option<&Bound<'_, PyAny>>,
        depends_on: Option<&Bound<'_, PyAny>>,
        content_hash: Option<&Bound<'_, PyAny>>,
        warmup: bool,
    ) -> PyResult<bool> {
        let ttl = parse_ttl("ttl", ttl)?;
        let ext = RawExt::parse(depends_on, content_hash, warmup)?;
        let k = key.get();
        let weigh_value = weigh_value.unwrap_or(record);
        self.put_raw(
            py,
            &k.bytes,
            k.hash,
            record,
            weigh_value,
            group,
            ttl,
            &ext.write_ext(),
        )
    }

    /// Store a memoized call's result under `key` in `group` as the record
    /// `(result, func, inputs, result, ..., metadata)` (see `memo_record`); `ttl` and the
    /// keywords as for `_set_raw`; `max_bytes` weighs the result. Returns whether it was
    /// stored.
    #[pyo3(signature = (key, result, func, inputs, metadata, group = 0, ttl = None, *, depends_on = None, content_hash = None, warmup = false))]
    #[allow(clippy::too_many_arguments)] // the record's fields and the write's options
    fn _put_memo(
        &self,
        py: Python<'_>,
        key: &Bound<'_, Key>,
        result: &Bound<'_, PyAny>,
        func: &Bound<'_, PyString>,
        inputs: &Bound<'_, PyDict>,
        metadata: &Bound<'_, PyAny>,
        group: u32,
        ttl: Option<&Bound<'_, PyAny>>,
        depends_on: Option<&Bound<'_, PyAny>>,
        content_hash: Option<&Bound<'_, PyAny>>,
        warmup: bool,
    ) -> PyResult<bool> {
        let ttl = parse_ttl("ttl", ttl)?;
        let ext = RawExt::parse(depends_on, content_hash, warmup)?;
        let k = key.get();
        let record = memo_record(result, func, inputs, metadata)?;
        self.put_raw(
            py,
            &k.bytes,
            k.hash,
            &record,
            result,
            group,
            ttl,
            &ext.write_ext(),
        )
    }

    /// `invalidate` for a `Key`: removes it and its transitive dependents; returns how many.
    fn _invalidate_raw(&self, py: Python<'_>, key: &Bound<'_, Key>) -> PyResult<usize> {
        let k = key.get();
        let now = self.shared.now(py, false)?;
        self.shared
            .with(py, |s| s.invalidate(&k.bytes, k.hash, now))
    }

    /// `predict_next` for a `Key`: up to `n` successor `Key`s.
    #[pyo3(signature = (key, n = None), text_signature = "($self, key, n=3)")]
    fn _predict_raw(
        &self,
        py: Python<'_>,
        key: &Bound<'_, Key>,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Key>> {
        let n = parse_count("n", n)?.unwrap_or(3);
        let k = key.get();
        let keys = self.shared.with(py, |s| s.predict(&k.bytes, k.hash, n))?;
        Ok(keys
            .iter()
            .map(|kb| Key::from_bytes(kb.as_slice()))
            .collect())
    }

    /// Every live entry as `(Key, record, group, ttl_left_seconds | None, content_hash |
    /// None, [parent Key, ...])`, coldest first, so `_set_raw`-ing them back in order
    /// restores the entries, their dependencies and (roughly) their recency.
    fn _dump<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let now = self.shared.now(py, true)?;
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            Vec<u8>,
            Py<PyAny>,
            u32,
            Option<u64>,
            Option<Vec<u8>>,
            Vec<Vec<u8>>,
        )> = self.shared.with(py, |s| {
            s.dump(now)
                .into_iter()
                .map(|d| {
                    (
                        d.key.to_vec(),
                        d.value.clone_ref(py),
                        d.group,
                        d.ttl_left,
                        d.content_hash.map(<[u8]>::to_vec),
                        d.parents.iter().map(|p| p.to_vec()).collect(),
                    )
                })
                .collect()
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (key, record, group, ttl_left, ch, parents) in rows {
            let ttl = match ttl_left {
                Some(ns) => (ns.max(1) as f64 / 1e9).into_pyobject(py)?.into_any(),
                None => py.None().into_bound(py),
            };
            let ch = match ch {
                Some(h) => content_hash_object(py, &h)?,
                None => py.None().into_bound(py),
            };
            let parents = PyList::new(
                py,
                parents
                    .iter()
                    .map(|p| Key::from_bytes(p))
                    .collect::<Vec<_>>(),
            )?;
            out.push(PyTuple::new(
                py,
                [
                    Py::new(py, Key::from_bytes(&key))?
                        .into_bound(py)
                        .into_any(),
                    record.into_bound(py),
                    group.into_pyobject(py)?.into_any(),
                    ttl,
                    ch,
                    parents.into_any(),
                ],
            )?);
        }
        PyList::new(py, out)
    }

    /// The content hash and dependency `Key`s stored with `key`, or None if absent.
    fn _meta_raw<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, Key>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Vec<Key>)>> {
        let k = key.get();
        let meta = self.shared.with(py, |s| {
            s.meta_of(&k.bytes, k.hash).map(|(ch, parents)| {
                (
                    ch.map(<[u8]>::to_vec),
                    parents.iter().map(|p| p.to_vec()).collect::<Vec<_>>(),
                )
            })
        })?;
        let Some((ch, parents)) = meta else {
            return Ok(None);
        };
        let ch = match ch {
            Some(h) => content_hash_object(py, &h)?,
            None => py.None().into_bound(py),
        };
        Ok(Some((
            ch,
            parents.iter().map(|p| Key::from_bytes(p)).collect(),
        )))
    }

    /// Remove `key`; returns whether it was present (and not expired).
    fn _remove_raw(&self, py: Python<'_>, key: &Bound<'_, Key>) -> PyResult<bool> {
        let k = key.get();
        let now = self.shared.now(py, false)?;
        self.shared.with(py, |s| s.remove(&k.bytes, k.hash, now))
    }

    /// Every live stored object (a snapshot), as a list.
    fn _records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snap = self.snapshot(py)?;
        PyList::new(py, snap.into_iter().map(|(_, v)| v))
    }

    /// Remove every entry of `group`; returns how many.
    fn _remove_group(&self, py: Python<'_>, group: u32) -> PyResult<usize> {
        self.shared.with(py, |s| s.remove_group(group))
    }

    /// Live entries in `group` (expired ones are purged first).
    fn _group_len(&self, py: Python<'_>, group: u32) -> PyResult<usize> {
        let now = self.shared.now(py, false)?;
        self.shared.with(py, |s| {
            if s.uses_time() {
                s.purge_expired(now);
            }
            s.group_len(group)
        })
    }

    /// Up to `n` stored objects, most valuable to the eviction policy first.
    fn _hottest<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        let now = self.shared.now(py, false)?;
        let out = self.shared.with(py, |s| {
            let mut out = Vec::new();
            s.for_each_hot(n, now, |_, v| out.push(v.clone_ref(py)));
            out
        })?;
        PyList::new(py, out)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // GC runs with the GIL held and no Python runs while the store is borrowed, so it is
        // free here; if it ever were not, the entries are skipped rather than touched.
        // SAFETY: CPython calls tp_traverse only from the garbage collector, with the GIL held.
        if let Some(g) = unsafe { self.shared.inner.try_borrow_in_gc() } {
            let mut result = Ok(());
            g.for_each(0, |_, v, _| {
                if result.is_ok() {
                    result = visit.call(v);
                }
            });
            result?;
        }
        if let Some(c) = &self.shared.clock {
            visit.call(c)?;
        }
        if let Some(w) = &self.shared.weigher {
            visit.call(w)?;
        }
        // SAFETY: as above, called by the garbage collector with the GIL held.
        if let Some(subs) = unsafe { self.shared.subs.try_borrow_in_gc() } {
            for cb in subs.iter().flatten() {
                visit.call(cb)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        // tp_clear runs with the GIL held; a failed borrow (impossible, see gilcell.rs) would
        // only leave the entries for the store's own drop.
        Python::attach(|py| {
            let dropped: Vec<Py<PyAny>> = match self.shared.subs.borrow(py) {
                Ok(mut subs) => subs.iter_mut().flat_map(std::mem::take).collect(),
                Err(_) => Vec::new(),
            };
            drop(dropped);
            let _ = self.shared.with(py, |s| {
                s.set_notify(0);
                s.clear()
            });
        });
    }
}
