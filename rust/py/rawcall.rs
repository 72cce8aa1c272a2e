//! Raw entry points: the common case of `Store.get`, `store[key]` and a memoized call
//! without PyO3's call machinery.
//!
//! PyO3 runs every method through a trampoline (attach count, panic catching, a `PyResult`
//! moved through several frames), a generic argument parser that matches names, and a
//! type check of `self`: about 160 instructions per call, more than the whole lookup. So the
//! pyclass still defines `get` and `__getitem__` with `#[pymethods]` (the general path:
//! every argument form, every error, the docstring and signature), and module init puts raw
//! functions in front of them:
//! * `get`: the type's attribute becomes a method descriptor for [`store_get`], a raw
//!   `METH_FASTCALL | METH_KEYWORDS` function with the same name, flags and docstring (so
//!   `help()` and `inspect.signature` are unchanged);
//! * `store[key]`: the type's `mp_subscript` slot becomes [`store_getitem`] (the
//!   `__getitem__` attribute keeps calling PyO3's function directly);
//! * calling a `Memoized` function: the type's `tp_call` slot becomes [`memoized_call`]
//!   (where PyO3 also copies the arguments tuple for `*args`).
//!
//! They serve the common call shape themselves (`get(key)`, `get(key, default)` or
//! `store[key]` with an exact int or str key, when the lookup needs no Python; a memoized
//! call's hit when its arguments are exact ints or strs given positionally) and hand every
//! other call, unchanged, to PyO3's function, taken from what they replaced.
//!
//! Code on the raw path runs outside PyO3's attach count, so it holds only `Borrowed` /
//! `Bound` references (whose drops decref directly), never drops a `Py<T>` and never makes
//! a `PyErr` (both may defer to PyO3's reference pool when the count is zero); work that
//! would, such as dropping values that left the store, goes through `Python::attach` (see
//! `Shared::settle`). A panic is caught and raised as `PanicException`.

use std::any::Any;
use std::ffi::CStr;
use std::panic::catch_unwind;
use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use super::memo::Memoized;
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

/// PyO3's own `Store.__getitem__` slot: the general path.
static STORE_GETITEM: OnceLock<ffi::binaryfunc> = OnceLock::new();

/// PyO3's own `Memoized.__call__` slot: the general path.
static MEMOIZED_CALL: OnceLock<ffi::ternaryfunc> = OnceLock::new();

/// Install the raw entries on their types (called once, from module init).
pub fn install(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<PyStore>();
    // a second module init (a re-import after deleting it from sys.modules) finds the raw
    // entries already in place and keeps the PyO3 functions saved the first time
    if STORE_GET.get().is_none() {
        let _ = STORE_GET.set(replace_method(&ty, c"get", store_get)?);
    }
    if STORE_GETITEM.get().is_none() {
        let _ = STORE_GETITEM.set(replace_subscript(&ty, store_getitem)?);
    }
    if MEMOIZED_CALL.get().is_none() {
        let ty = py.get_type::<Memoized>();
        let _ = MEMOIZED_CALL.set(replace_call(&ty, memoized_call)?);
    }
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

/// Replace the `mp_subscript` slot of `ty`, a PyO3 class with `__getitem__`, with `entry`;
/// returns PyO3's function.
fn replace_subscript(ty: &Bound<'_, PyType>, entry: ffi::binaryfunc) -> PyResult<ffi::binaryfunc> {
    // SAFETY: the GIL is held and `ty` is a live heap type made by PyO3
    // (`PyType_FromSpec`), whose `tp_as_mapping` is NULL or points at the mapping slots stored
    // in the type object itself; writing a slot of a ready type and then calling
    // `PyType_Modified` is how CPython itself updates slots (`type.__setattr__`). The class
    // cannot be subclassed (no `subclass` option), so no subtype inherited the old slot.
    unsafe {
        let tp = ty.as_type_ptr();
        let mapping = (*tp).tp_as_mapping;
        let general = if mapping.is_null() {
            None
        } else {
            (*mapping).mp_subscript
        };
        let Some(general) = general else {
            return Err(PyRuntimeError::new_err(
                "cachehaven: the type has no mp_subscript slot",
            ));
        };
        (*mapping).mp_subscript = Some(entry);
        ffi::PyType_Modified(tp);
        Ok(general)
    }
}

/// Replace the `tp_call` slot of `ty`, a PyO3 class with `__call__`, with `entry`; returns
/// PyO3's function.
fn replace_call(ty: &Bound<'_, PyType>, entry: ffi::ternaryfunc) -> PyResult<ffi::ternaryfunc> {
    // SAFETY: as in `replace_subscript`: the GIL is held, `ty` is a live heap type made by
    // PyO3 and not subclassable, and `tp_call` is a field of the type object itself.
    unsafe {
        let tp = ty.as_type_ptr();
        let Some(general) = (*tp).tp_call else {
            return Err(PyRuntimeError::new_err(
                "cachehaven: the type has no tp_call slot",
            ));
        };
        (*tp).tp_call = Some(entry);
        ffi::PyType_Modified(tp);
        Ok(general)
    }
}

/// The fast lookup of `key` in `slf`, a `Store`: Some(a new reference to the value, or
/// NULL for a miss) when done, None for the general path (nothing was done). Each entry
/// calls it inside its own `catch_unwind` (one closure per entry, so each inlines).
///
/// # Safety
/// The GIL is held, `slf` is a live `Store` and `key` a live object, both borrowed for the
/// call.
#[inline(always)]
unsafe fn lookup(slf: *mut ffi::PyObject, key: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    // SAFETY: see the function's contract.
    let (store, key) = unsafe {
        let py = Python::assume_attached();
        let store = Borrowed::from_ptr(py, slf).cast_unchecked::<PyStore>();
        (store, Borrowed::from_ptr(py, key))
    };
    let found = store.get().get_fast(&key)?;
    Some(found.map_or(std::ptr::null_mut(), Bound::into_ptr))
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
        match catch_unwind(|| unsafe { lookup(slf, *args) }) {
            Ok(Some(value)) if !value.is_null() => return value,
            Ok(Some(_)) => {
                // SAFETY: as above; the result is a new reference to the default or to None.
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

/// `store[key]`, raw: see the module docs.
///
/// # Safety
/// Called by CPython as the `mp_subscript` slot of `Store`: with the GIL held, `slf` a
/// `Store` (the slot belongs to its type) and `key` a live object, both borrowed.
unsafe extern "C" fn store_getitem(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: see the function's contract.
    match catch_unwind(|| unsafe { lookup(slf, key) }) {
        Ok(Some(value)) if !value.is_null() => value,
        Ok(Some(_)) => {
            // SAFETY: the GIL is held and `key` is live. The fast path only takes int and str
            // keys, never a tuple (which `PyErr_SetObject` would unpack), so this raises
            // `KeyError(key)`, as the general path does.
            unsafe { ffi::PyErr_SetObject(ffi::PyExc_KeyError, key) };
            std::ptr::null_mut()
        }
        Ok(None) => match STORE_GETITEM.get() {
            // SAFETY: the same call, handed unchanged to PyO3's function for this slot.
            Some(general) => unsafe { general(slf, key) },
            None => raise_panic(Box::new("cachehaven: Store slot called before module init")),
        },
        Err(payload) => raise_panic(payload),
    }
}

/// A hit of a `Memoized` call, or None for the general path (nothing was done).
///
/// # Safety
/// The GIL is held, `slf` is a live `Memoized`, `args` a live tuple and `kwargs` NULL or a
/// live dict, all borrowed for the call.
#[inline(always)]
unsafe fn memoized_hit(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> Option<*mut ffi::PyObject> {
    // SAFETY: see the function's contract.
    unsafe {
        if !kwargs.is_null() && ffi::PyDict_Size(kwargs) != 0 {
            return None;
        }
        let py = Python::assume_attached();
        let memo = Borrowed::from_ptr(py, slf).cast_unchecked::<Memoized>();
        let args = Borrowed::from_ptr(py, args).cast_unchecked::<PyTuple>();
        memo.get().hit(&args).map(Bound::into_ptr)
    }
}

/// Calling a `Memoized` function, raw: see the module docs.
///
/// # Safety
/// Called by CPython as the `tp_call` slot of `Memoized`: with the GIL held, `slf` a
/// `Memoized` (the slot belongs to its type), `args` a tuple and `kwargs` NULL or a dict,
/// all borrowed.
unsafe extern "C" fn memoized_call(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: see the function's contract.
    match catch_unwind(|| unsafe { memoized_hit(slf, args, kwargs) }) {
        Ok(Some(value)) => value,
        Ok(None) => match MEMOIZED_CALL.get() {
            // SAFETY: the same call, handed unchanged to PyO3's function for this slot.
            Some(general) => unsafe { general(slf, args, kwargs) },
            None => raise_panic(Box::new("cachehaven: Memoized called before module init")),
        },
        Err(payload) => raise_panic(payload),
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
