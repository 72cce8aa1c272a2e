//! `cachehaven.Store`: the Rust store as a thread-safe, dict-like Python object, plus the
//! raw-key methods `InMemCache` builds on.
//!
//! Locking rules (see STYLE.md): the raw store sits in a `GilCell` (see `gilcell.rs`): the
//! GIL serialises access, and the cell's borrow is only ever held around pure-Rust store
//! work. Python is never called while it is held: the clock and the weigher run before
//! borrowing, values are cloned (an incref, which runs no Python) under it, and values that
//! leave the store are dropped (a decref, which can run `__del__`) only after it ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDelta, PyDict, PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::encode::{encode, Notes};
use super::gilcell::GilCell;
use super::key::Key;
use crate::hash::fast_hash;
use crate::key::KeyBuf;
use crate::policy::PolicyKind;
use crate::store::{Config, Rejected, Store as RawStore, Ttl};

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

/// `_core.estimate_size(value)`: the default weigher.
#[pyfunction]
#[pyo3(name = "estimate_size")]
pub fn py_estimate_size(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    estimate_size(value, 0)
}

/// The shared machinery: the locked raw store and the clock.
pub struct Shared {
    pub(crate) inner: GilCell<RawStore<Py<PyAny>>>,
    uses_time: AtomicBool,
    clock: Option<Py<PyAny>>,
    epoch: Instant,
    weigher: Option<Py<PyAny>>,
    has_max_bytes: bool,
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
            None => Ok(self.epoch.elapsed().as_nanos() as u64 + 1),
        }
    }

    /// Weigh an entry for `max_bytes` (0 when the store has no byte limit).
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
        let mut g = self.inner.borrow(py)?;
        let found = g.get(key, hash, now).map(|v| v.clone_ref(py));
        if g.has_graveyard() {
            // an expired entry was dropped: release it after unlocking
            let dead = g.take_graveyard();
            drop(g);
            drop(dead);
        }
        Ok(found)
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
    ) -> PyResult<Result<(), Rejected>> {
        if ttl.is_some() {
            self.uses_time.store(true, Ordering::Relaxed);
        }
        let now = self.now(py, ttl.is_some())?;
        let t = ttl.map(Ttl::After).unwrap_or(Ttl::Default);
        let (r, dead) = {
            let mut g = self.inner.borrow(py)?;
            let r = g.insert(key, hash, value, weight, t, group, now);
            (r, g.take_graveyard())
        };
        drop(dead);
        Ok(r)
    }

    /// Run `f` on the locked store, then drop whatever left it, after unlocking.
    pub fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut RawStore<Py<PyAny>>) -> R,
    ) -> PyResult<R> {
        let (r, dead) = {
            let mut g = self.inner.borrow(py)?;
            let r = f(&mut g);
            (r, g.take_graveyard())
        };
        drop(dead);
        Ok(r)
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
/// clock=None)`: `max_entries=None` is unbounded and `0` stores nothing; `max_bytes` bounds
/// the total weight (by `weigher(key, value)` or a deep size estimate); `ttl` is seconds or a
/// timedelta; `clock` is a zero-argument callable returning seconds (for tests), defaulting
/// to a monotonic clock. Cost: O(1) amortised per operation; no operation scans entries except
/// iteration and `clear`.
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

    #[inline]
    fn unwrap_value(&self, py: Python<'_>, v: Py<PyAny>) -> Py<PyAny> {
        if !self.has_keyed.load(Ordering::Relaxed) {
            return v;
        }
        match v.bind(py).cast::<KeyedValue>() {
            Ok(kv) => kv.get().value.clone_ref(py),
            Err(_) => v,
        }
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

    fn snapshot(&self, py: Python<'_>) -> PyResult<Vec<(Vec<u8>, Py<PyAny>)>> {
        let now = self.shared.now(py, false)?;
        self.shared.with(py, |s| {
            let mut out = Vec::with_capacity(s.len());
            s.for_each(now, |k, v, _| out.push((k.to_vec(), v.clone_ref(py))));
            out
        })
    }

    fn set_impl(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<u64>,
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
        match self.shared.insert(py, buf.as_slice(), hash, stored, weight, ttl, 0)? {
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
    #[pyo3(signature = (max_entries = None, max_bytes = None, ttl = None, policy = "adaptive", weigher = None, clock = None))]
    fn new(
        max_entries: Option<&Bound<'_, PyAny>>,
        max_bytes: Option<&Bound<'_, PyAny>>,
        ttl: Option<&Bound<'_, PyAny>>,
        policy: &str,
        weigher: Option<Py<PyAny>>,
        clock: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
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
        Ok(PyStore {
            shared: Shared {
                inner: GilCell::new(RawStore::new(config)),
                uses_time: AtomicBool::new(ttl.is_some()),
                clock,
                epoch: Instant::now(),
                weigher,
                has_max_bytes: max_bytes.is_some(),
            },
            has_keyed: AtomicBool::new(false),
        })
    }

    /// The value for `key`, or `default` if absent (or expired).
    #[pyo3(signature = (key, default = None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        Ok(match self.shared.get(py, buf.as_slice(), hash)? {
            Some(v) => self.unwrap_value(py, v),
            None => default.unwrap_or_else(|| py.None()),
        })
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let mut buf = KeyBuf::new();
        self.encode_key(key, &mut buf)?;
        let hash = fast_hash(buf.as_slice());
        match self.shared.get(py, buf.as_slice(), hash)? {
            Some(v) => Ok(self.unwrap_value(py, v)),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_impl(key, value, None)
    }

    /// Store `value` under `key`, with an optional per-entry `ttl` (seconds or timedelta).
    #[pyo3(signature = (key, value, ttl = None))]
    fn set(
        &self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let ttl = parse_ttl("ttl", ttl)?;
        self.set_impl(key, value, ttl)
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
            Some(v) => Ok(self.unwrap_value(py, v)),
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
        PyList::new(py, snap.into_iter().map(|(_, v)| self.unwrap_value(py, v)))
    }

    /// A list of `(key, value)` pairs (a snapshot).
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snap = self.snapshot(py)?;
        let mut out = Vec::with_capacity(snap.len());
        for (k, v) in snap {
            let key = self.key_object(py, &k, &v)?;
            out.push(PyTuple::new(
                py,
                [key, self.unwrap_value(py, v).into_bound(py)],
            )?);
        }
        PyList::new(py, out)
    }

    /// Remove every entry (statistics are kept).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.with(py, |s| s.clear())
    }

    /// Counters and sizes: hits, misses, hit_rate, inserts, updates, evictions, expirations,
    /// removals, rejections, entries, bytes (total weight; 0 without max_bytes/weigher),
    /// max_entries, max_bytes, policy, memory (bytes the store's own structures use).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (st, len, weight, cfg, mem) = self.shared.with(py, |s| {
            (
                s.stats(),
                s.len(),
                s.weight(),
                *s.config(),
                s.memory_bytes(),
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
        d.set_item("entries", len)?;
        d.set_item("bytes", weight)?;
        d.set_item("max_entries", cfg.max_entries)?;
        d.set_item("max_bytes", cfg.max_bytes)?;
        d.set_item("policy", cfg.policy.name())?;
        d.set_item("memory", mem)?;
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

    /// The stored object for `key`, or None; counts a hit or miss.
    fn _get_raw(&self, py: Python<'_>, key: &Bound<'_, Key>) -> PyResult<Option<Py<PyAny>>> {
        let k = key.get();
        self.shared.get(py, &k.bytes, k.hash)
    }

    /// The stored object for `key` without counting or touching recency.
    fn _peek_raw(&self, py: Python<'_>, key: &Bound<'_, Key>) -> PyResult<Option<Py<PyAny>>> {
        let k = key.get();
        let now = self.shared.now(py, false)?;
        self.shared.with(py, |s| {
            s.peek(&k.bytes, k.hash, now).map(|v| v.clone_ref(py))
        })
    }

    /// Store `record` under `key` in `group`; `ttl` in seconds/timedelta or None for the
    /// default; `weigh_value` is what `max_bytes` weighs. Returns whether it was stored.
    #[pyo3(signature = (key, record, group = 0, ttl = None, weigh_value = None))]
    fn _set_raw(
        &self,
        py: Python<'_>,
        key: &Bound<'_, Key>,
        record: &Bound<'_, PyAny>,
        group: u32,
        ttl: Option<&Bound<'_, PyAny>>,
        weigh_value: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let ttl = parse_ttl("ttl", ttl)?;
        let k = key.get();
        let weight = self
            .shared
            .weigh(k.bytes.len(), None, weigh_value.unwrap_or(record))?;
        Ok(self
            .shared
            .insert(
                py,
                &k.bytes,
                k.hash,
                record.clone().unbind(),
                weight,
                ttl,
                group,
            )?
            .is_ok())
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
        Ok(())
    }

    fn __clear__(&self) {
        // tp_clear runs with the GIL held; a failed borrow (impossible, see gilcell.rs) would
        // only leave the entries for the store's own drop.
        Python::attach(|py| {
            let _ = self.shared.with(py, |s| s.clear());
        });
    }
}
