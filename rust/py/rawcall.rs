//! Raw entry points: `Store.get`'s common case without PyO3's call machinery.
//!
//! PyO3 runs every method through a trampoline (attach count, panic catching, a `PyResult`
//! moved through several frames), a generic argument parser that matches names, and a
//! type check of `self`: about 160 instructions per call, more than the whole lookup. So the
//! pyclass still defines `get` with `#[pymethods]` (the general path: every argument form,
//! every error, the docstring and signature), and module init replaces the type's `get`
//! attribute with a method descriptor for [`store_get`], a raw `METH_FASTCALL |
//! METH_KEYWORDS` function with the same name, flags and docstring (so `help()` and
//! `inspect.signature` are unchanged). It serves the common call shape itself (`get(key)` or
//! `get(key, default)` with an exact int or str key, when the lookup needs no Python) and
//! hands every other call, unchanged, to PyO3's function, taken from the replaced
//! descriptor.
//!
//! Code on the raw path runs outside PyO3's attach count, so it holds only `Borrowed` /
//! `Bound` references (whose drops decref directly), never drops a `Py<T>` and never makes
//! a `PyErr` (both may defer to PyO3's reference pool when the count is zero); work that
//! would, such as dropping values that left the store, goes through `Python::attach` (see
//! `Shared::settle`). A panic is caught and raised as `PanicException`.

use std::any::Any;
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::PyType;

use super::store::PyStore;

/// A `METH_FASTCALL | METH_KEYWORDS` C function.
type FastCall = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

const FLAGS: std::os::raw::c_int = ffi::METH_FASTCALL | ffi::METH_KEYWORDS;

/// PyO3's own `Store.get`: the general path.
static STORE_GET: OnceLock<FastCall> = OnceLock::new();

/// Install the raw entries on their types (called once, from module init).
pub fn install(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<PyStore>();
    let general = replace_method(&ty, c"get", store_get)?;
    // a second module init (a re-import after deleting it from sys.modules) keeps the first
    // function, which is the same PyO3 function
    let _ = STORE_GET.set(general);
    Ok(())
}

/// Replace method `name` of `ty`, a PyO3 `METH_FASTCALL | METH_KEYWORDS` method, with a
/// descriptor for `entry` of the same name, flags and docstring; returns PyO3's function.
fn replace_method(ty: &Bound<'_, PyType>, name: &CStr, entry: FastCall) -> PyResult<FastCall> {
    let py = ty.py();
    let attr_name = name.to_str()?;
    let current = ty.getattr(attr_name)?;
    // SAFETY: the GIL is held; `PyMethodDescr_Type` is a static type object that is only
    // read, and `current` is a live object for the check.
    let is_descr = unsafe {
        ffi::Py_TYPE(current.as_ptr()) == std::ptr::addr_of_mut!(ffi::PyMethodDescr_Type)
    };
    if !is_descr {
        return Err(PyRuntimeError::new_err(format!(
            "cachehaven: {attr_name} is not a method descriptor"
        )));
    }
    // SAFETY: `current` is a method descriptor (checked above), so it has the layout of
    // `PyMethodDescrObject`, and its `d_method` points at the `PyMethodDef` PyO3 made for the
    // type, which lives as long as the type (for the whole process).
    let def = unsafe { &*(*current.as_ptr().cast::<ffi::PyMethodDescrObject>()).d_method };
    if def.ml_flags != FLAGS {
        return Err(PyRuntimeError::new_err(format!(
            "cachehaven: {attr_name} is not a METH_FASTCALL | METH_KEYWORDS method"
        )));
    }
    // SAFETY: the flags say `ml_meth` holds a `PyCFunctionFastWithKeywords`.
    let general = unsafe { def.ml_meth.PyCFunctionFastWithKeywords };
    // the descriptor keeps a pointer to its `PyMethodDef`: it must live as long as the type
    let raw: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: def.ml_name,
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: entry,
        },
        ml_flags: FLAGS,
        ml_doc: def.ml_doc,
    }));
    // SAFETY: the GIL is held, `ty` is a live type object and `raw` lives forever;
    // `PyDescr_NewMethod` returns a new reference or NULL with an error set.
    let descr =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), raw))? };
    ty.setattr(attr_name, descr)?;
    Ok(general)
}

/// `Store.get(key, default=None, content_hash=None)`, raw: see the module docs.
///
/// # Safety
/// Called by CPython as the C function of a `METH_FASTCALL | METH_KEYWORDS` method of
/// `Store`: with the GIL held, `slf` a `Store` (the method descriptor checked its type),
/// `args` pointing at `nargs` positional then `len(kwnames)` keyword arguments, and
/// `kwnames` NULL or a tuple.
unsafe extern "C" fn store_get(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if kwnames.is_null() && (nargs == 1 || nargs == 2) {
        // SAFETY: see the function's contract: the GIL is held, `slf` is a live `Store` and
        // `args[0]` (and `args[1]` when `nargs == 2`) are live references borrowed for the
        // duration of the call.
        let (store, key) = unsafe {
            let py = Python::assume_attached();
            let store = Borrowed::from_ptr(py, slf).cast_unchecked::<PyStore>();
            (store, Borrowed::from_ptr(py, *args))
        };
        match catch_unwind(AssertUnwindSafe(|| store.get().get_fast(&key))) {
            Ok(Some(Some(value))) => return value.into_ptr(),
            Ok(Some(None)) => {
                // SAFETY: as above (`nargs == 2` means `args[1]`, the default, is live); the
                // result is a new reference to the default or to None.
                unsafe {
                    let default = if nargs == 2 {
                        *args.add(1)
                    } else {
                        ffi::Py_None()
                    };
                    ffi::Py_INCREF(default);
                    return default;
                }
            }
            Ok(None) => {} // the general path
            Err(payload) => return raise_panic(payload),
        }
    }
    match STORE_GET.get() {
        // SAFETY: the same call, handed unchanged to PyO3's function for this method.
        Some(general) => unsafe { general(slf, args, nargs, kwnames) },
        None => raise_panic(Box::new("cachehaven: Store.get called before module init")),
    }
}

/// Raise a caught panic as `PanicException` (as PyO3's trampoline does); returns NULL.
#[cold]
#[inline(never)]
fn raise_panic(payload: Box<dyn Any + Send>) -> *mut ffi::PyObject {
    let msg = if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "panic from Rust code".to_string()
    };
    Python::attach(|py| PanicException::new_err(msg).restore(py));
    std::ptr::null_mut()
}
