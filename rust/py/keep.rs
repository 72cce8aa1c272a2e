//! `_core.keep_forever`: objects that must outlive the interpreter's own teardown.
//!
//! At shutdown CPython clears every module and frees what nothing else refers to. A few
//! objects must not be freed even then: `backends/_walindex.py`'s views of SQLite `-shm`
//! files hold file descriptors, and closing one would release every POSIX lock this
//! process holds on the file, SQLite's own included, while a connection (in a daemon
//! thread, say) may still be using it. A reference held from a Rust static is never
//! released, so such an object lives until the process exits.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

static KEPT: PyOnceLock<Py<PyList>> = PyOnceLock::new();

/// `_core.keep_forever(obj)`: hold a reference to `obj` until the process exits (never
/// released, not even when the interpreter shuts down).
#[pyfunction]
pub fn keep_forever(obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = obj.py();
    KEPT.get_or_init(py, || PyList::empty(py).unbind())
        .bind(py)
        .append(obj)
}
