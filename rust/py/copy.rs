//! `_core.fresh_copy`: a copy of plain data in which every mutable container is new.
//!
//! The near cache of the file backends (`backends/_near.py`) keeps a private copy of each
//! decoded value and gives every hit its own copy, so a caller mutating a result can never
//! change what the next caller gets. For plain data (what the JSON records decode to) that
//! copy only has to rebuild the dicts, lists and sets: strings, numbers, bytes and tuples or
//! frozensets of them are immutable and can be shared. This does that in one pass, without
//! the pickle round trip used for other values.
//!
//! With `max_bytes`, the value is checked first: only exact builtin types (no subclasses),
//! no dict, list or set reached twice (so no cycles, and no sharing a copy would undo), at most
//! `MAX_DEPTH` levels, and an estimated size within the limit. The hit path then copies the
//! kept value without these checks, since it was checked when it was kept.

use std::collections::HashSet;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyComplex, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple,
};

use super::encode::{type_name, MAX_DEPTH};

/// Estimated bytes of one object besides its contents (what the size limit counts).
const OBJECT_BYTES: usize = 16;

/// What a checked copy tracks.
struct Check {
    /// Addresses of the containers met so far.
    seen: HashSet<usize>,
    /// Estimated bytes left under the limit.
    left: usize,
}

impl Check {
    /// Count `bytes` against the limit.
    fn charge(&mut self, bytes: usize) -> PyResult<()> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| {
            PyValueError::new_err("fresh_copy: the value is larger than max_bytes")
        })?;
        Ok(())
    }

    /// Count a mutable container and refuse one met before (shared, or containing itself):
    /// a copy would not share it, so it would not be what a full read returns.
    fn enter(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.seen.insert(obj.as_ptr() as usize) {
            return Err(PyValueError::new_err(
                "fresh_copy: the value contains the same container twice",
            ));
        }
        self.charge(OBJECT_BYTES)
    }
}

/// An immutable scalar (shared by copies). With a check, its size is counted.
fn scalar(obj: &Bound<'_, PyAny>, check: Option<&mut Check>) -> PyResult<bool> {
    let bytes = if let Ok(s) = obj.cast_exact::<PyString>() {
        s.len()?
    } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
        b.as_bytes().len()
    } else if let Ok(i) = obj.cast_exact::<PyInt>() {
        if i.extract::<i64>().is_ok() {
            0
        } else {
            i.call_method0("bit_length")?.extract::<usize>()? / 8
        }
    } else if obj.is_none()
        || obj.is_exact_instance_of::<PyBool>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_exact_instance_of::<PyComplex>()
        || obj.is(obj.py().Ellipsis())
    {
        0
    } else {
        return Ok(false);
    };
    if let Some(c) = check {
        c.charge(OBJECT_BYTES + bytes)?;
    }
    Ok(true)
}

/// The copy of `obj`: `obj` itself when nothing in it is mutable.
fn copy<'py>(
    obj: &Bound<'py, PyAny>,
    depth: usize,
    mut check: Option<&mut Check>,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(c) = check.as_deref_mut() {
        if depth > MAX_DEPTH {
            return Err(PyValueError::new_err(format!(
                "fresh_copy: the value is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        if scalar(obj, Some(c))? {
            return Ok(obj.clone());
        }
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        if let Some(c) = check.as_deref_mut() {
            c.enter(obj)?;
        }
        // The new dict is referenced by nothing else while it is filled in, so iterating it
        // cannot meet a change of size; replacing the value of a present key is allowed.
        let new = d.copy()?;
        for (k, v) in new.iter() {
            if let Some(c) = check.as_deref_mut() {
                copy(&k, depth + 1, Some(c))?; // keys are hashable: checked, never rebuilt
            }
            let fresh = copy(&v, depth + 1, check.as_deref_mut())?;
            if !fresh.is(&v) {
                new.set_item(k, fresh)?;
            }
        }
        return Ok(new.into_any());
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        if let Some(c) = check.as_deref_mut() {
            c.enter(obj)?;
        }
        let new = l.get_slice(0, l.len());
        for i in 0..new.len() {
            let v = new.get_item(i)?;
            let fresh = copy(&v, depth + 1, check.as_deref_mut())?;
            if !fresh.is(&v) {
                new.set_item(i, fresh)?;
            }
        }
        return Ok(new.into_any());
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        if let Some(c) = check.as_deref_mut() {
            c.charge(OBJECT_BYTES)?; // immutable: may be shared (a cycle needs a mutable link)
        }
        let mut items: Vec<Bound<'py, PyAny>> = Vec::with_capacity(t.len());
        let mut changed = false;
        for v in t.iter() {
            let fresh = copy(&v, depth + 1, check.as_deref_mut())?;
            changed |= !fresh.is(&v);
            items.push(fresh);
        }
        return Ok(if changed {
            PyTuple::new(obj.py(), items)?.into_any()
        } else {
            obj.clone()
        });
    }
    let is_set = obj.is_exact_instance_of::<PySet>();
    if is_set || obj.is_exact_instance_of::<PyFrozenSet>() {
        // members are hashable, so immutable: a set needs a new set, a frozenset nothing
        if let Some(c) = check.as_deref_mut() {
            if is_set {
                c.enter(obj)?;
            } else {
                c.charge(OBJECT_BYTES)?;
            }
            for v in obj.try_iter()? {
                copy(&v?, depth + 1, Some(c))?;
            }
        }
        return Ok(if is_set {
            PySet::new(obj.py(), obj.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.into_any()
        } else {
            obj.clone()
        });
    }
    if check.is_some() {
        return Err(PyTypeError::new_err(format!(
            "fresh_copy: a value of type '{}' is not plain data",
            type_name(&obj.get_type())
        )));
    }
    Ok(obj.clone()) // a scalar of a value checked when it was kept
}

/// `_core.fresh_copy(value, max_bytes=None)`: a copy of the plain-data `value` whose dicts,
/// lists and sets are all new (everything else is immutable and shared).
///
/// With `max_bytes`, `value` is checked first: TypeError if it holds anything but exact
/// None, bool, int, float, complex, str, bytes, `...`, tuple, list, dict, set and frozenset;
/// ValueError if it holds a dict, list or set twice, nests deeper than `MAX_DEPTH`, or its
/// estimated size (16 bytes an object plus str and bytes contents) exceeds `max_bytes`.
/// Without it, `value` must be one that passed the check (the near cache's kept copies).
#[pyfunction]
#[pyo3(signature = (value, max_bytes = None))]
pub fn fresh_copy<'py>(
    value: &Bound<'py, PyAny>,
    max_bytes: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    match max_bytes {
        Some(limit) => {
            let mut check = Check {
                seen: HashSet::new(),
                left: limit,
            };
            copy(value, 0, Some(&mut check))
        }
        None => copy(value, 0, None),
    }
}
