//! `GilCell`: the store's interior mutability, guarded by the GIL instead of a mutex.
//!
//! Every operation on a `Store` already runs with the GIL held (they are methods of Python
//! objects), so the GIL alone serialises them; a mutex on top only adds two atomic
//! read-modify-write instructions per call, which on the hit path cost more than the lookup.
//! `GilCell` keeps the exclusivity check (a `RefCell` flag, a plain load and store) and asks
//! for a `Python<'_>` token to prove the GIL is held.
//!
//! Re-entrance (Python code running while a borrow is live, reaching the same store) cannot
//! happen by construction: no Python runs while a borrow is held (values are cloned by an
//! incref and dropped only after the borrow ends). Were it ever to happen, it is reported
//! as a `RuntimeError`, never undefined behaviour and never a panic.

use std::cell::{RefCell, RefMut};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// A value mutated only by the thread holding the GIL.
pub struct GilCell<T>(RefCell<T>);

// SAFETY: the only ways to reach the inner `RefCell` are `borrow`, which requires a
// `Python<'_>` token, and the unsafe `try_borrow_in_gc`, whose caller must hold the GIL; so
// the calling thread always holds the GIL. The extension module
// does not declare free-threading support (PyO3's default `gil_used = true`), so CPython keeps
// the GIL even on free-threaded builds. Therefore at most one thread touches the `RefCell`
// (its flag and its value) at any time, and the GIL's release/acquire orders every access
// before the next thread's. `T: Send` because the value may be used from any thread that
// holds the GIL.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    /// A cell holding `value`.
    pub fn new(value: T) -> Self {
        GilCell(RefCell::new(value))
    }

    /// Exclusive access; `RuntimeError` if the store is already borrowed on this thread.
    #[inline(always)]
    pub fn borrow<'a>(&'a self, _py: Python<'_>) -> PyResult<RefMut<'a, T>> {
        match self.0.try_borrow_mut() {
            Ok(g) => Ok(g),
            Err(_) => Err(reentered()),
        }
    }

    /// Exclusive access, or None if the store is already borrowed on this thread (no error
    /// object is made: the raw `Store.get` entry then takes the general path, which raises).
    #[inline(always)]
    pub fn try_borrow<'a>(&'a self, _py: Python<'_>) -> Option<RefMut<'a, T>> {
        self.0.try_borrow_mut().ok()
    }

    /// Exclusive access if it is free, for `__traverse__`, which has no `Python` token.
    ///
    /// # Safety
    /// The caller must hold the GIL (CPython's garbage collector does when it calls
    /// `tp_traverse`).
    #[inline]
    pub unsafe fn try_borrow_in_gc(&self) -> Option<RefMut<'_, T>> {
        self.0.try_borrow_mut().ok()
    }
}

#[cold]
#[inline(never)]
fn reentered() -> PyErr {
    PyRuntimeError::new_err(
        "cachehaven store used re-entrantly (from code run during one of its own operations)",
    )
}
