//! `cachehaven._core.Event`: one store event as Python sees it (from `Store.events()` or
//! given to a subscriber).

use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use super::key::Key;
use crate::hash::fast_hash;
use crate::store::EventKind;

/// A store event: `kind` ("HIT", "MISS", "WRITE", "EVICT", "EXPIRE", "INVALIDATE",
/// "WARMUP", "PREDICT"), `key` (the key object; a `Key` when the key bytes cannot be decoded,
/// as for `InMemCache` call keys), `raw_key` (always the `Key`), `time` (seconds since the
/// epoch, like `time.time()`) and `value` (the removed value for EVICT / EXPIRE / INVALIDATE
/// events given to subscribers; None otherwise).
#[pyclass(frozen, module = "cachehaven._core", name = "Event")]
pub struct Event {
    pub(crate) kind: EventKind,
    pub(crate) key: Py<PyAny>,
    pub(crate) raw: Box<[u8]>,
    pub(crate) time: f64,
    pub(crate) value: Py<PyAny>,
}

impl Event {
    /// An event for `raw` key bytes; `key` is the key object to show (None: decode `raw`,
    /// falling back to a `Key`).
    pub fn build(
        py: Python<'_>,
        kind: EventKind,
        raw: &[u8],
        key: Option<Py<PyAny>>,
        time: f64,
        value: Option<Py<PyAny>>,
    ) -> PyResult<Py<Event>> {
        let key = match key {
            Some(k) => k,
            None => match super::decode::decode(py, raw) {
                Ok(k) => k.unbind(),
                Err(_) => Py::new(py, key_of(raw))?.into_any(),
            },
        };
        Py::new(
            py,
            Event {
                kind,
                key,
                raw: raw.into(),
                time,
                value: value.unwrap_or_else(|| py.None()),
            },
        )
    }
}

fn key_of(raw: &[u8]) -> Key {
    Key {
        bytes: raw.into(),
        hash: fast_hash(raw),
    }
}

#[pymethods]
impl Event {
    /// What happened: "HIT", "MISS", "WRITE", "EVICT", "EXPIRE", "INVALIDATE", "WARMUP" or
    /// "PREDICT".
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// The entry's key (a `Key` when its bytes cannot be decoded to the original object).
    #[getter]
    fn key(&self, py: Python<'_>) -> Py<PyAny> {
        self.key.clone_ref(py)
    }

    /// The entry's canonical key as a `Key`.
    #[getter]
    fn raw_key(&self) -> Key {
        key_of(&self.raw)
    }

    /// When it happened, in seconds since the Unix epoch (`time.time()`'s clock).
    #[getter]
    fn time(&self) -> f64 {
        self.time
    }

    /// The removed value (EVICT / EXPIRE / INVALIDATE events given to subscribers), else
    /// None.
    #[getter]
    fn value(&self, py: Python<'_>) -> Py<PyAny> {
        self.value.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Event(kind='{}', key={}, time={:.6})",
            self.kind.name(),
            self.key.bind(py).repr()?,
            self.time
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.key)?;
        visit.call(&self.value)
    }
}
