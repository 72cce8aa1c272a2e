//! Canonical bytes -> Python value, for the tags that carry the whole value (builtins,
//! datetimes, Decimal, UUID, paths). Type-named tags (enum, dataclass, `__cache_key__`,
//! subclasses, classes, identities) cannot be rebuilt from bytes; the store keeps the original
//! key object for those instead (see `Notes::opaque`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyComplex, PyDict, PyFrozenSet, PyList, PySet, PyString, PyTuple};

use crate::key::{read_varint, tag};

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

fn corrupt() -> PyErr {
    PyValueError::new_err("corrupt canonical key bytes")
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(corrupt)?;
        let s = self.b.get(self.pos..end).ok_or_else(corrupt)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> PyResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> PyResult<usize> {
        let (v, p) = read_varint(self.b, self.pos).ok_or_else(corrupt)?;
        self.pos = p;
        usize::try_from(v).map_err(|_| corrupt())
    }

    fn u64(&mut self) -> PyResult<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    fn i64(&mut self) -> PyResult<i64> {
        Ok(self.u64()? as i64)
    }

    fn str(&mut self) -> PyResult<&'a str> {
        let n = self.varint()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt())
    }

    fn tz(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.byte()? {
            0 => Ok(None),
            _ => {
                let us = self.i64()?;
                let dt = py.import("datetime")?;
                let delta = dt.getattr("timedelta")?.call1((0, 0, us))?;
                Ok(Some(dt.getattr("timezone")?.call1((delta,))?.unbind()))
            }
        }
    }

    fn value<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.byte()?;
        Ok(match t {
            tag::NONE => py.None().into_bound(py),
            tag::FALSE => false.into_pyobject(py)?.to_owned().into_any(),
            tag::TRUE => true.into_pyobject(py)?.to_owned().into_any(),
            tag::INT => self.i64()?.into_pyobject(py)?.into_any(),
            tag::BIGINT => {
                let neg = self.byte()? != 0;
                let n = self.varint()?;
                let mag = PyBytes::new(py, self.take(n)?);
                let v = py
                    .import("builtins")?
                    .getattr("int")?
                    .call_method1("from_bytes", (mag, "big"))?;
                if neg {
                    v.call_method0("__neg__")?
                } else {
                    v
                }
            }
            tag::FLOAT => f64::from_bits(self.u64()?).into_pyobject(py)?.into_any(),
            tag::COMPLEX => {
                let re = f64::from_bits(self.u64()?);
                let im = f64::from_bits(self.u64()?);
                PyComplex::from_doubles(py, re, im).into_any()
            }
            tag::STR => PyString::new(py, self.str()?).into_any(),
            tag::STR_SURROGATES => {
                let n = self.varint()?;
                PyBytes::new(py, self.take(n)?)
                    .call_method1("decode", ("utf-8", "surrogatepass"))?
            }
            tag::BYTES => {
                let n = self.varint()?;
                PyBytes::new(py, self.take(n)?).into_any()
            }
            tag::ELLIPSIS => py.Ellipsis().into_bound(py),
            tag::TUPLE | tag::LIST | tag::SET | tag::FROZENSET => {
                let n = self.varint()?;
                let mut items = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    items.push(self.value(py)?);
                }
                match t {
                    tag::TUPLE => PyTuple::new(py, items)?.into_any(),
                    tag::LIST => PyList::new(py, items)?.into_any(),
                    tag::SET => PySet::new(py, &items)?.into_any(),
                    _ => PyFrozenSet::new(py, &items)?.into_any(),
                }
            }
            tag::DICT => {
                let n = self.varint()?;
                let d = PyDict::new(py);
                for _ in 0..n {
                    let k = self.value(py)?;
                    let v = self.value(py)?;
                    d.set_item(k, v)?;
                }
                d.into_any()
            }
            tag::DATETIME => {
                let b = self.take(11)?;
                let year = u16::from_be_bytes([b[0], b[1]]);
                let micro = u32::from_be_bytes([b[7], b[8], b[9], b[10]]);
                let tz = self.tz(py)?;
                py.import("datetime")?
                    .getattr("datetime")?
                    .call1((year, b[2], b[3], b[4], b[5], b[6], micro, tz))?
            }
            tag::DATE => {
                let b = self.take(4)?;
                let year = u16::from_be_bytes([b[0], b[1]]);
                py.import("datetime")?
                    .getattr("date")?
                    .call1((year, b[2], b[3]))?
            }
            tag::TIME => {
                let b = self.take(7)?;
                let micro = u32::from_be_bytes([b[3], b[4], b[5], b[6]]);
                let tz = self.tz(py)?;
                py.import("datetime")?
                    .getattr("time")?
                    .call1((b[0], b[1], b[2], micro, tz))?
            }
            tag::TIMEDELTA => {
                let (d, s, us) = (self.i64()?, self.i64()?, self.i64()?);
                py.import("datetime")?
                    .getattr("timedelta")?
                    .call1((d, s, us))?
            }
            tag::DECIMAL => {
                let s = self.take_tagged_str()?;
                py.import("decimal")?.getattr("Decimal")?.call1((s,))?
            }
            tag::UUID => {
                let b = PyBytes::new(py, self.take(16)?);
                let kwargs = PyDict::new(py);
                kwargs.set_item("bytes", b)?;
                py.import("uuid")?
                    .getattr("UUID")?
                    .call((), Some(&kwargs))?
            }
            tag::PATH => {
                let windows = self.byte()? != 0;
                let s = self.take_tagged_str()?;
                let cls = if windows {
                    "PureWindowsPath"
                } else {
                    "PurePosixPath"
                };
                py.import("pathlib")?.getattr(cls)?.call1((s,))?
            }
            _ => {
                return Err(PyValueError::new_err(
                    "this key holds a type-named value and cannot be decoded",
                ))
            }
        })
    }

    fn take_tagged_str(&mut self) -> PyResult<&'a str> {
        if self.byte()? != tag::STR {
            return Err(corrupt());
        }
        self.str()
    }
}

/// Decode one value that fills `bytes` exactly.
pub fn decode<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let mut r = Reader { b: bytes, pos: 0 };
    let v = r.value(py)?;
    if r.pos != bytes.len() {
        return Err(corrupt());
    }
    Ok(v)
}

/// `_core.decode(data)`: the value whose canonical bytes are `data` (inverse of `encode`
/// for value-carrying types).
#[pyfunction]
#[pyo3(name = "decode")]
pub fn py_decode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    decode(py, data)
}
