//! The native memoized callable: the `InMemCache` hit path, entirely in Rust.
//!
//! A call binds and encodes its arguments (see `binder.rs`), looks the canonical bytes up in
//! the store, and on a hit returns the stored value without running any Python. On a miss
//! it hands the key to the Python miss handler (single-flight, the function call, storing,
//! callbacks), which lives in `cachehaven/memoize.py`.
//!
//! Stored records are tuples whose item 0 is the value to return (see `backends/memory.py`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::binder::Binder;
use super::key::Key;
use super::store::PyStore;
use crate::hash::fast_hash;
use crate::key::KeyBuf;

/// Process-wide switch: when false every memoized function calls straight through.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// `_core.set_enabled(flag)`: turn caching on or off for every memoized function.
#[pyfunction]
pub fn set_enabled(flag: bool) -> bool {
    ENABLED.swap(flag, Ordering::SeqCst)
}

/// `_core.is_enabled()`: whether caching is on.
#[pyfunction]
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

static METHOD_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A memoized function whose hits never leave Rust.
///
/// Attributes such as `__wrapped__`, `__name__`, `__doc__` and the helper methods
/// (`cache_info`, `cache_clear`, ...) live in the instance `__dict__`, set by the Python
/// decorator with `functools.update_wrapper`.
#[pyclass(frozen, dict, weakref, module = "cachehaven._core", name = "Memoized")]
pub struct Memoized {
    func: Py<PyAny>,
    binder: Py<Binder>,
    store: Py<PyStore>,
    miss: Py<PyAny>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[pymethods]
impl Memoized {
    /// `Memoized(func, binder, store, miss)`: `miss(key, args, kwargs)` computes and stores
    /// a missing result and returns it.
    #[new]
    fn new(func: Py<PyAny>, binder: Py<Binder>, store: Py<PyStore>, miss: Py<PyAny>) -> Self {
        Memoized {
            func,
            binder,
            store,
            miss,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        if !ENABLED.load(Ordering::Relaxed) {
            return Ok(self.func.bind(py).call(args, kwargs)?.unbind());
        }
        let mut buf = KeyBuf::new();
        if !self.binder.get().encode_call(py, args, kwargs, &mut buf)? {
            // does not fit the signature: let Python raise its own TypeError
            return Ok(self.func.bind(py).call(args, kwargs)?.unbind());
        }
        let hash = fast_hash(buf.as_slice());
        if let Some(record) = self.store.get().shared.get(py, buf.as_slice(), hash)? {
            let record = record.into_bound(py);
            if let Ok(t) = record.cast::<PyTuple>() {
                if let Ok(v) = t.get_borrowed_item(0) {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(v.to_owned().unbind());
                }
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let key = Key::from_buf(&buf);
        let kw: Py<PyAny> = match kwargs {
            Some(k) => k.clone().into_any().unbind(),
            None => py.None(),
        };
        Ok(self.miss.bind(py).call1((key, args, kw))?.unbind())
    }

    fn __get__(
        slf: &Bound<'_, Self>,
        obj: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match obj.filter(|o| !o.is_none()) {
            None => Ok(slf.clone().into_any().unbind()),
            Some(o) => {
                let mt = METHOD_TYPE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                    Ok(py.import("types")?.getattr("MethodType")?.unbind())
                })?;
                Ok(mt.bind(py).call1((slf, o))?.unbind())
            }
        }
    }

    /// `(hits, misses)` counted by this function's wrapper.
    fn _counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Count a hit or miss that the Python side resolved (e.g. a single-flight wait).
    fn _count(&self, hit: bool) {
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reset the counters.
    fn _reset_counts(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let name = slf.get().binder.get().func_name().to_string();
        format!("<cachehaven memoized function {name}>")
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.func)?;
        visit.call(&self.binder)?;
        visit.call(&self.store)?;
        visit.call(&self.miss)
    }
}
