//! Raising cachehaven's exceptions from Rust.
//!
//! The one exception hierarchy lives in `cachehaven/errors.py` (it needs multiple
//! inheritance, e.g. `KeyTypeError(CachehavenError, TypeError)`, which is clearer in Python);
//! Rust looks the classes up once and raises them. If the Python package cannot be imported
//! (only possible when `_core` is used on its own), the built-in base exception is raised
//! instead, so an error is never lost.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static KEY_TYPE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static KEY_DEPTH_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn lookup(py: Python<'_>, cell: &'static PyOnceLock<Py<PyType>>, name: &str) -> Option<Py<PyType>> {
    cell.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let m = py.import("cachehaven.errors")?;
        Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
    })
    .ok()
    .map(|t| t.clone_ref(py))
}

/// `cachehaven.KeyTypeError(msg)` (a `TypeError`).
pub fn key_type_error(py: Python<'_>, msg: String) -> PyErr {
    match lookup(py, &KEY_TYPE_ERROR, "KeyTypeError") {
        Some(t) => PyErr::from_type(t.into_bound(py), msg),
        None => PyTypeError::new_err(msg),
    }
}

/// `cachehaven.KeyDepthError(msg)` (a `ValueError`).
pub fn key_depth_error(py: Python<'_>, msg: String) -> PyErr {
    match lookup(py, &KEY_DEPTH_ERROR, "KeyDepthError") {
        Some(t) => PyErr::from_type(t.into_bound(py), msg),
        None => PyValueError::new_err(msg),
    }
}
