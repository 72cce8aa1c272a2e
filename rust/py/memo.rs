//! The native memoized callable: the `InMemCache` hit path, entirely in Rust.
//!
//! A call binds and encodes its arguments (see `binder.rs`), looks the canonical bytes up in
//! the store, and on a hit returns the stored value without running any Python. A miss runs
//! under the cache's single-flight (`flight.rs`): the leader looks again, calls the function
//! and stores its result, here too when the function's options allow (a [`Plan`]: every
//! option but `fail_open` and `depends_on`); otherwise it hands the key to the Python miss
//! handler (`_Memo.native_miss` in `cachehaven/memoize.py`).
//!
//! Stored records are tuples whose item 0 is the value to return (see `store::memo_record`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::binder::Binder;
use super::flight::Flight;
use super::key::Key;
use super::store::{memo_record, parse_ttl, PyStore};
use crate::hash::fast_hash;
use crate::key::KeyBuf;
use crate::store::WriteExt;

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

/// Count one event. Every caller holds the GIL (see `gilcell.rs`), which already orders
/// the updates, so a plain load and store is exact and avoids a locked read-modify-write on
/// the hit path.
#[inline(always)]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

static PARTIAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Helpers that take the call's arguments, so a bound method must pass `self` to them.
const SELF_HELPERS: [&str; 5] = [
    "cache_key",
    "cache_get",
    "cache_invalidate",
    "refresh",
    "cache_set",
];

/// How a miss's result is stored without Python: what `InMemCache._put_result` would store.
struct Plan {
    /// The function identity (the record's `func`).
    name: Py<PyString>,
    /// `InMemCache`'s group of the function's entries.
    group: u32,
    /// The entries' TTL in ns (None: the store's default).
    ttl: Option<u64>,
    /// `cache_if(result)`: store the result only if true.
    cache_if: Option<Py<PyAny>>,
    /// `metadata()`: a fresh metadata dict for each record (None: the record has none).
    metadata: Option<Py<PyAny>>,
}

/// `Memoized`'s `plan` argument: `(name, group, ttl, cache_if, metadata)`.
type PlanArgs<'py> = (
    Py<PyString>,
    u32,
    Option<Bound<'py, PyAny>>,
    Option<Py<PyAny>>,
    Option<Py<PyAny>>,
);

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
    flight: Py<Flight>,
    plan: Option<Plan>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Memoized {
    /// The call itself (shared by `__call__` and bound methods).
    #[inline]
    fn call(
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
            if let Some(v) = self.hit_value(record.into_bound(py)) {
                return Ok(v.unbind());
            }
        }
        bump(&self.misses);
        let key = buf.as_slice();
        self.flight.get().run(py, key, hash, || match &self.plan {
            Some(plan) => self.compute(plan, key, hash, args, kwargs),
            None => {
                let kw: Py<PyAny> = match kwargs {
                    Some(k) => k.clone().into_any().unbind(),
                    None => py.None(),
                };
                let key = Key::from_bytes(key);
                Ok(self.miss.bind(py).call1((key, args, kw))?.unbind())
            }
        })
    }

    /// A miss, as the leader of its flight: look again (an earlier flight may have stored
    /// the key just now), else call the function and store its result as `plan` says.
    fn compute(
        &self,
        plan: &Plan,
        key: &[u8],
        hash: u64,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = args.py();
        let store = self.store.get();
        if let Some(record) = store.shared.peek(py, key, hash)? {
            if let Ok(t) = record.bind(py).cast::<PyTuple>() {
                if !t.is_empty() {
                    return Ok(t.get_item(0)?.unbind());
                }
            }
        }
        // the inputs are bound before the call and a method's `self` keyed after it, as
        // the Python engine does (a function may change its arguments)
        let binder = self.binder.get();
        let inputs = binder.bound_inputs(args, kwargs)?;
        let result = self.func.bind(py).call(args, kwargs)?;
        if let Some(keep) = &plan.cache_if {
            if !keep.bind(py).call1((&result,))?.is_truthy()? {
                return Ok(result.unbind());
            }
        }
        let inputs = binder.key_self(&inputs, false)?;
        let metadata = match &plan.metadata {
            Some(make) => make.bind(py).call0()?,
            None => py.None().into_bound(py),
        };
        let record = memo_record(&result, plan.name.bind(py), &inputs, &metadata)?;
        store.put_raw(
            py,
            key,
            hash,
            &record,
            &result,
            plan.group,
            plan.ttl,
            &WriteExt::PLAIN,
        )?;
        Ok(result.unbind())
    }
}

impl Memoized {
    /// The value a hit returns from a stored record (item 0 of the tuple), counting the hit;
    /// None for a record of another shape (a miss).
    #[inline(always)]
    fn hit_value<'py>(&self, record: Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
        let t = record.cast::<PyTuple>().ok()?;
        if t.is_empty() {
            return None;
        }
        // SAFETY: index 0 of a non-empty tuple, alive while `t` is
        let v = unsafe { t.get_borrowed_item_unchecked(0) }.to_owned();
        bump(&self.hits);
        Some(v)
    }

    /// A call's hit, served by the raw entry (`rawcall.rs`) when every argument is an exact
    /// int or str and the call fits positionally: the value, or None, having counted
    /// nothing, for the general path (`__call__`). Makes no `PyErr`.
    #[inline(always)]
    pub(crate) fn hit<'py>(&self, args: &Bound<'py, PyTuple>) -> Option<Bound<'py, PyAny>> {
        if !ENABLED.load(Ordering::Relaxed) {
            return None;
        }
        let py = args.py();
        let mut buf = KeyBuf::new();
        if !self.binder.get().encode_simple_call(args, &mut buf) {
            return None;
        }
        let key = buf.as_slice();
        let record = self
            .store
            .get()
            .shared
            .get_hit_native(py, key, fast_hash(key))?;
        // records are tuples (see backends/memory.py); another shape would have counted a
        // store hit here and again on the general path, which treats it as a miss
        self.hit_value(record.into_bound(py))
    }
}

#[pymethods]
impl Memoized {
    /// `Memoized(func, binder, store, miss, flight, plan=None)`: misses run under `flight`
    /// (the cache's single-flight). With `plan`, a tuple `(name, group, ttl, cache_if,
    /// metadata)`, the wrapper stores a miss's result itself, as the record
    /// `InMemCache._put_result` would store (`metadata` is None or a callable returning a
    /// fresh metadata dict per record); without it, `miss(key, args, kwargs)` computes and
    /// stores every miss and returns its result.
    #[new]
    #[pyo3(signature = (func, binder, store, miss, flight, plan = None))]
    fn new(
        func: Py<PyAny>,
        binder: Py<Binder>,
        store: Py<PyStore>,
        miss: Py<PyAny>,
        flight: Py<Flight>,
        plan: Option<&Bound<'_, PyTuple>>,
    ) -> PyResult<Self> {
        let plan = match plan {
            None => None,
            Some(t) => {
                let (name, group, ttl, cache_if, metadata): PlanArgs<'_> = t.extract()?;
                Some(Plan {
                    name,
                    group,
                    ttl: parse_ttl("ttl", ttl.as_ref())?,
                    cache_if,
                    metadata,
                })
            }
        };
        Ok(Memoized {
            func,
            binder,
            store,
            miss,
            flight,
            plan,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        self.call(py, args, kwargs)
    }

    fn __get__(
        slf: &Bound<'_, Self>,
        obj: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match obj.filter(|o| !o.is_none()) {
            None => Ok(slf.clone().into_any().unbind()),
            Some(o) => {
                let bound = BoundMemoized {
                    memo: slf.clone().unbind(),
                    obj: o.clone().unbind(),
                };
                Ok(Py::new(slf.py(), bound)?.into_any())
            }
        }
    }

    /// Pickle by reference (module + qualified name), as plain functions and
    /// `functools.lru_cache` wrappers do.
    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Ok(slf.getattr("__qualname__")?.unbind())
    }

    /// `(hits, misses)` counted by this function's wrapper.
    fn _counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
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
        visit.call(&self.miss)?;
        visit.call(&self.flight)?;
        if let Some(plan) = &self.plan {
            visit.call(&plan.name)?;
            if let Some(f) = &plan.cache_if {
                visit.call(f)?;
            }
            if let Some(f) = &plan.metadata {
                visit.call(f)?;
            }
        }
        Ok(())
    }
}

/// A memoized method bound to its instance: calls pass the instance as `self`, and so do the
/// per-call helpers (`m.predict.cache_get(2)` looks up `Model.predict(m, 2)`). Other
/// attributes (`cache_info`, `__wrapped__`, `__name__`, ...) are the function's.
#[pyclass(frozen, module = "cachehaven._core", name = "BoundMemoized")]
pub struct BoundMemoized {
    memo: Py<Memoized>,
    obj: Py<PyAny>,
}

#[pymethods]
impl BoundMemoized {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let mut all: Vec<Bound<'_, PyAny>> = Vec::with_capacity(args.len() + 1);
        all.push(self.obj.bind(py).clone());
        all.extend(args.iter());
        let full = PyTuple::new(py, all)?;
        self.memo.get().call(py, &full, kwargs)
    }

    fn __getattr__(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        match name {
            "__self__" => return Ok(self.obj.clone_ref(py)),
            "__func__" => return Ok(self.memo.clone_ref(py).into_any()),
            _ => {}
        }
        let attr = self.memo.bind(py).getattr(name)?;
        if name == "__wrapped__" {
            // the original function bound to the same instance (so `inspect.signature` drops
            // `self`, as for any bound method)
            let method_type = py.import("types")?.getattr("MethodType")?;
            return Ok(method_type.call1((attr, self.obj.bind(py)))?.unbind());
        }
        if !SELF_HELPERS.contains(&name) {
            return Ok(attr.unbind());
        }
        if name == "cache_set" {
            // cache_set(value, /, *args): the instance goes after the value
            let helpers = py.import("cachehaven.memoize")?;
            return Ok(helpers
                .getattr("_bind_cache_set")?
                .call1((attr, self.obj.bind(py)))?
                .unbind());
        }
        let partial = PARTIAL.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py.import("functools")?.getattr("partial")?.unbind())
        })?;
        Ok(partial.bind(py).call1((attr, self.obj.bind(py)))?.unbind())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<BoundMemoized>()
            .map(|o| o.get().memo.is(&self.memo) && o.get().obj.is(&self.obj))
            .unwrap_or(false)
    }

    fn __hash__(&self) -> isize {
        (self.memo.as_ptr() as isize) ^ (self.obj.as_ptr() as isize).rotate_left(16)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let name: String = self.memo.bind(py).getattr("__qualname__")?.extract()?;
        Ok(format!(
            "<bound memoized method {name} of {}>",
            self.obj.bind(py).repr()?
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.memo)?;
        visit.call(&self.obj)
    }
}
