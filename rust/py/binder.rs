//! Binding a call's arguments to the function's parameters, and encoding the bound call.
//!
//! The signature is analysed once (in Python, with `inspect`) and handed over as a list of
//! parameters. Binding follows Python's rules: positionals fill positional parameters,
//! keywords fill by name, the rest go to `*args` / `**kwargs`, and defaults fill what is
//! missing, so `f(1)`, `f(x=1)` and `f(1, y=2)` (2 being the default) give one key. A call
//! that does not bind is reported as such, and the caller runs the function directly so
//! Python raises its own `TypeError`.
//!
//! The encoded call is exactly `call_key(func, inputs)` for the bound `inputs` dict: the
//! parameters are written in the order of their encoded names, which is the order the dict
//! encoding sorts entries in, so no sorting happens per call.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use smallvec::SmallVec;

use super::encode::{encode, encode_pairs, encode_simple, EncodeError, Exclude, Notes};
use super::key::Key;
use crate::key::{tag, KeyBuf};

const POSITIONAL_ONLY: u8 = 0;
const POSITIONAL_OR_KEYWORD: u8 = 1;
const VAR_POSITIONAL: u8 = 2;
const KEYWORD_ONLY: u8 = 3;
const VAR_KEYWORD: u8 = 4;

struct Param {
    name: Py<PyString>,
    name_str: String,
    kind: u8,
    default: Option<Py<PyAny>>,
    /// Canonical bytes of the name (a dict key).
    enc_name: Vec<u8>,
    /// Exclusion subtree for this parameter's value (`None`: nothing excluded inside).
    exclude: Option<Exclude>,
    /// The whole parameter is excluded from the key.
    excluded: bool,
}

/// The analysed signature of one memoized function.
#[pyclass(frozen, module = "cachehaven._core", name = "Binder")]
pub struct Binder {
    func_name: String,
    params: Vec<Param>,
    /// Indices of included parameters, in encoded-name order.
    order: Vec<usize>,
    /// version + func identity + dict header: the same for every call.
    prefix: Vec<u8>,
    n_positional: usize,
    var_pos: Option<usize>,
    var_kw: Option<usize>,
    self_index: Option<usize>,
    token_fn: Option<Py<PyAny>>,
    /// Every parameter is positional (no `*args`/`**kwargs`/keyword-only), so a call with
    /// exactly that many positional arguments and no keywords binds trivially.
    all_positional: bool,
}

/// A call bound to parameter slots (borrowing the call's objects).
pub struct Bound_<'py> {
    slots: SmallVec<[Option<Bound<'py, PyAny>>; 8]>,
    extra_pos: SmallVec<[Bound<'py, PyAny>; 4]>,
    extra_kw: SmallVec<[(Bound<'py, PyAny>, Bound<'py, PyAny>); 4]>,
}

impl Binder {
    /// `keyed_inputs`, changing `inputs` in place unless `copy`.
    pub fn key_self<'py>(
        &self,
        inputs: &Bound<'py, PyDict>,
        copy: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let Some(i) = self.self_index else {
            return Ok(inputs.clone());
        };
        let py = inputs.py();
        let name = self.params[i].name.bind(py);
        let Some(obj) = inputs.get_item(name)? else {
            return Ok(inputs.clone());
        };
        let out = if copy { inputs.copy()? } else { inputs.clone() };
        out.set_item(name, self.self_key(py, &obj)?)?;
        Ok(out)
    }

    /// The bound inputs of a call known to bind (see `inputs`).
    pub fn bound_inputs<'py>(
        &self,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.inputs(args.py(), args, kwargs)?
            .ok_or_else(|| PyTypeError::new_err("unbound call"))
    }

    /// The function identity.
    pub fn func_name(&self) -> &str {
        &self.func_name
    }

    fn find_kw(&self, k: &Bound<'_, PyAny>) -> Option<usize> {
        // interned names usually match by pointer; fall back to string equality
        for (i, p) in self.params.iter().enumerate() {
            if k.is(p.name.bind(k.py())) {
                return Some(i);
            }
        }
        let s = k.cast::<PyString>().ok()?.to_str().ok()?;
        self.params.iter().position(|p| p.name_str == s)
    }

    /// Bind a call. `None`: the call does not fit the signature.
    pub fn bind<'py>(
        &self,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> Option<Bound_<'py>> {
        let mut slots: SmallVec<[Option<Bound<'py, PyAny>>; 8]> = SmallVec::new();
        slots.resize(self.params.len(), None);
        let mut extra_pos = SmallVec::new();
        for (i, a) in args.iter().enumerate() {
            if i < self.n_positional {
                slots[i] = Some(a);
            } else if self.var_pos.is_some() {
                extra_pos.push(a);
            } else {
                return None;
            }
        }
        let mut extra_kw = SmallVec::new();
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                match self.find_kw(&k) {
                    Some(i)
                        if matches!(self.params[i].kind, POSITIONAL_OR_KEYWORD | KEYWORD_ONLY) =>
                    {
                        if slots[i].is_some() {
                            return None; // multiple values for one argument
                        }
                        slots[i] = Some(v);
                    }
                    _ if self.var_kw.is_some() => extra_kw.push((k, v)),
                    _ => return None,
                }
            }
        }
        let py = args.py();
        for (i, p) in self.params.iter().enumerate() {
            if slots[i].is_none() && !matches!(p.kind, VAR_POSITIONAL | VAR_KEYWORD) {
                slots[i] = Some(p.default.as_ref()?.bind(py).clone());
            }
        }
        Some(Bound_ {
            slots,
            extra_pos,
            extra_kw,
        })
    }

    fn encode_param(
        &self,
        i: usize,
        b: &Bound_<'_>,
        buf: &mut KeyBuf,
        notes: &mut Notes,
    ) -> Result<(), EncodeError> {
        let p = &self.params[i];
        let ex = p.exclude.as_ref();
        match p.kind {
            VAR_POSITIONAL => {
                buf.seq_header(tag::TUPLE, b.extra_pos.len());
                for item in &b.extra_pos {
                    encode(item, buf, 1, None, notes)?;
                }
                Ok(())
            }
            VAR_KEYWORD => encode_pairs(b.extra_kw.iter().cloned(), buf, 0, ex, notes),
            _ => {
                let v = b.slots[i].as_ref().expect("bound parameters are filled");
                self.encode_value(i, v, buf, notes)
            }
        }
    }

    /// Encode the value of the ordinary parameter `i`.
    #[inline]
    fn encode_value(
        &self,
        i: usize,
        v: &Bound<'_, PyAny>,
        buf: &mut KeyBuf,
        notes: &mut Notes,
    ) -> Result<(), EncodeError> {
        let mark = buf.len();
        match encode(v, buf, 1, self.params[i].exclude.as_ref(), notes) {
            Err(EncodeError::Unsupported { path, .. })
                if path.is_empty() && Some(i) == self.self_index =>
            {
                // `self` with no value key: keyed by identity (see keys.py)
                buf.truncate(mark);
                self.encode_identity(v, buf, notes)
            }
            other => other,
        }
    }

    fn name_error(&self, py: Python<'_>, i: usize, e: EncodeError) -> PyErr {
        let name = &self.params[i].name_str;
        e.into_pyerr(
            py,
            name,
            &format!("argument '{name}' of {}", self.func_name),
        )
    }

    fn encode_identity(
        &self,
        v: &Bound<'_, PyAny>,
        buf: &mut KeyBuf,
        notes: &mut Notes,
    ) -> Result<(), EncodeError> {
        let Some(token_fn) = self.token_fn.as_ref() else {
            return Err(EncodeError::Unsupported {
                path: Vec::new(),
                type_name: super::encode::type_name(&v.get_type()),
            });
        };
        let token = token_fn.bind(v.py()).call1((v,))?;
        let token = token.cast::<PyBytes>().map_err(PyErr::from)?;
        notes.opaque = true;
        buf.named(tag::INSTANCE, &super::encode::type_name(&v.get_type()));
        buf.bytes(token.as_bytes());
        Ok(())
    }

    /// Encode a bound call into `buf`.
    pub fn encode_bound(
        &self,
        py: Python<'_>,
        b: &Bound_<'_>,
        buf: &mut KeyBuf,
    ) -> PyResult<Notes> {
        let mut notes = Notes::default();
        buf.extend(&self.prefix);
        for &i in &self.order {
            buf.extend(&self.params[i].enc_name);
            self.encode_param(i, b, buf, &mut notes)
                .map_err(|e| self.name_error(py, i, e))?;
        }
        Ok(notes)
    }

    /// Bind and encode a call. `Ok(false)`: the call does not bind.
    #[inline]
    pub fn encode_call(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        buf: &mut KeyBuf,
    ) -> PyResult<bool> {
        if self.fits_positionally(args) && kwargs.is_none_or(|k| k.is_empty()) {
            // the common case: no binding work, arguments encoded straight from the tuple
            let mut notes = Notes::default();
            return self.encode_positional(args, buf, |i, v, buf| {
                self.encode_value(i, v, buf, &mut notes)
                    .map(|()| true)
                    .map_err(|e| self.name_error(py, i, e))
            });
        }
        match self.bind(args, kwargs) {
            Some(b) => {
                self.encode_bound(py, &b, buf)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Binder {
    /// Every parameter is positional and `args` gives exactly one value each.
    #[inline(always)]
    fn fits_positionally(&self, args: &Bound<'_, PyTuple>) -> bool {
        self.all_positional && args.len() == self.params.len()
    }

    /// Encode a call that [fits positionally](Binder::fits_positionally), each argument by
    /// `value` (which returns Ok(false) to give up: then so does this).
    #[inline(always)]
    fn encode_positional<E>(
        &self,
        args: &Bound<'_, PyTuple>,
        buf: &mut KeyBuf,
        mut value: impl FnMut(usize, &Bound<'_, PyAny>, &mut KeyBuf) -> Result<bool, E>,
    ) -> Result<bool, E> {
        buf.extend(&self.prefix);
        for &i in &self.order {
            buf.extend(&self.params[i].enc_name);
            // SAFETY: `i` indexes `params`, whose length is `args.len()` (the call fits
            // positionally), and the tuple is alive for the borrow.
            let v = unsafe { args.get_borrowed_item_unchecked(i) };
            if !value(i, &v, buf)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// [`Binder::encode_call`] when the call fits positionally, with no keywords, and every
    /// argument is an exact int or str (see [`encode_simple`]); false, for the general path,
    /// otherwise. Never raises and makes no `PyErr`, for the raw memoized call
    /// (`rawcall.rs`). A simple value's encoding is what `encode_value` writes for it (no
    /// exclusion applies inside an int or a str).
    #[inline(always)]
    pub fn encode_simple_call(&self, args: &Bound<'_, PyTuple>, buf: &mut KeyBuf) -> bool {
        if !self.fits_positionally(args) {
            return false;
        }
        let Ok(done) = self.encode_positional(args, buf, |_, v, buf| {
            Ok::<bool, std::convert::Infallible>(encode_simple(v, buf))
        });
        done
    }
}

/// Copy `value` without the excluded dict keys (only dicts are descended into).
fn strip<'py>(value: &Bound<'py, PyAny>, ex: Option<&Exclude>) -> PyResult<Bound<'py, PyAny>> {
    let Some(ex) = ex.filter(|e| !e.children.is_empty()) else {
        return Ok(value.clone());
    };
    let Ok(d) = value.cast::<PyDict>() else {
        return Ok(value.clone());
    };
    let out = PyDict::new(value.py());
    for (k, v) in d.iter() {
        match ex.child_for(&k) {
            Some(s) if s.all => {}
            sub => out.set_item(&k, strip(&v, sub)?)?,
        }
    }
    Ok(out.into_any())
}

/// `_core.strip_inputs(inputs, exclude)`: a copy of the `inputs` dict without the excluded
/// names and dotted paths (nested dicts are copied, never changed in place). The same
/// stripping memoized calls apply, for the manual API and `CacheEntry`.
#[pyfunction]
pub fn strip_inputs<'py>(
    inputs: &Bound<'py, PyDict>,
    exclude: Vec<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let tree = Exclude::from_paths(exclude.iter().map(|s| s.as_str()));
    let out = PyDict::new(inputs.py());
    for (k, v) in inputs.iter() {
        match tree.child_for(&k) {
            Some(s) if s.all => {}
            sub => out.set_item(&k, strip(&v, sub)?)?,
        }
    }
    Ok(out)
}

#[pymethods]
impl Binder {
    /// `Binder(func_name, params, exclude=(), self_index=None, token_fn=None)`.
    ///
    /// `params`: `(name, kind, default)` per parameter in signature order, `kind` being the
    /// int value of `inspect.Parameter.kind` and `default` the default value or the
    /// `no_default` object given as `empty`.
    #[new]
    #[pyo3(signature = (func_name, params, empty, exclude = Vec::new(), self_index = None, token_fn = None))]
    fn new(
        py: Python<'_>,
        func_name: String,
        params: &Bound<'_, PyList>,
        empty: &Bound<'_, PyAny>,
        exclude: Vec<String>,
        self_index: Option<usize>,
        token_fn: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let tree = Exclude::from_paths(exclude.iter().map(|s| s.as_str()));
        let mut ps: Vec<Param> = Vec::with_capacity(params.len());
        for item in params.iter() {
            let (name, kind, default): (Bound<'_, PyString>, u8, Bound<'_, PyAny>) =
                item.extract()?;
            if kind > VAR_KEYWORD {
                return Err(PyValueError::new_err(format!("bad parameter kind {kind}")));
            }
            let name_str = name.to_str()?.to_string();
            let mut enc = KeyBuf::new();
            enc.str(&name_str);
            let sub = tree.child(&name_str).cloned();
            let excluded = sub.as_ref().map(|s| s.all).unwrap_or(false);
            ps.push(Param {
                name: PyString::intern(py, &name_str).unbind(),
                name_str,
                kind,
                default: if default.is(empty) {
                    None
                } else {
                    Some(default.unbind())
                },
                enc_name: enc.into_vec(),
                exclude: sub,
                excluded,
            });
        }
        let var_kw = ps.iter().position(|p| p.kind == VAR_KEYWORD);
        // exclude paths naming no parameter: keys of **kwargs if there is one, else an error
        let mut stray: Vec<String> = Vec::new();
        for (name, node) in &tree.children {
            if !ps.iter().any(|p| &p.name_str == name) {
                match var_kw {
                    Some(k) => {
                        let ex = ps[k].exclude.get_or_insert_with(Exclude::default);
                        ex.children.insert(name.clone(), node.clone());
                    }
                    None => stray.push(name.clone()),
                }
            }
        }
        if !stray.is_empty() {
            stray.sort();
            let names: Vec<&str> = ps.iter().map(|p| p.name_str.as_str()).collect();
            return Err(PyValueError::new_err(format!(
                "exclude names {} of {func_name}, which has no such parameter (its parameters: {})",
                stray
                    .iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                names.join(", ")
            )));
        }
        let mut order: Vec<usize> = (0..ps.len()).filter(|&i| !ps[i].excluded).collect();
        order.sort_by(|&a, &b| ps[a].enc_name.cmp(&ps[b].enc_name));
        let mut prefix = KeyBuf::new();
        prefix.call_header();
        prefix.str(&func_name);
        prefix.seq_header(tag::DICT, order.len());
        let n_positional = ps
            .iter()
            .take_while(|p| matches!(p.kind, POSITIONAL_ONLY | POSITIONAL_OR_KEYWORD))
            .count();
        if let Some(i) = self_index {
            if i >= ps.len() {
                return Err(PyValueError::new_err("self_index out of range"));
            }
        }
        let all_positional = ps
            .iter()
            .all(|p| matches!(p.kind, POSITIONAL_ONLY | POSITIONAL_OR_KEYWORD));
        Ok(Binder {
            all_positional,
            func_name,
            var_pos: ps.iter().position(|p| p.kind == VAR_POSITIONAL),
            var_kw,
            params: ps,
            order,
            prefix: prefix.into_vec(),
            n_positional,
            self_index,
            token_fn,
        })
    }

    /// The name of the method's `self`/`cls` parameter, or None for a plain function.
    #[getter]
    fn self_name(&self) -> Option<&str> {
        self.self_index.map(|i| self.params[i].name_str.as_str())
    }

    /// The function identity this binder keys calls under.
    #[getter(func_name)]
    fn py_func_name(&self) -> &str {
        &self.func_name
    }

    /// The key of `f(*args, **kwargs)`, or `None` if the call does not fit the signature.
    #[pyo3(signature = (*args, **kwargs))]
    fn key(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Option<Key>> {
        let mut buf = KeyBuf::new();
        Ok(if self.encode_call(py, args, kwargs, &mut buf)? {
            Some(Key::from_buf(&buf))
        } else {
            None
        })
    }

    /// The bound inputs of `f(*args, **kwargs)` (parameter name -> value, defaults applied,
    /// exclusions removed), as stored in `CacheEntry.inputs`; `None` if the call does not bind.
    fn inputs<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(b) = self.bind(args, kwargs) else {
            return Ok(None);
        };
        let out = PyDict::new(py);
        for (i, p) in self.params.iter().enumerate() {
            if p.excluded {
                continue;
            }
            let ex = p.exclude.as_ref();
            let v: Bound<'py, PyAny> = match p.kind {
                VAR_POSITIONAL => PyTuple::new(py, b.extra_pos.iter())?.into_any(),
                VAR_KEYWORD => {
                    let d = PyDict::new(py);
                    for (k, v) in &b.extra_kw {
                        d.set_item(k, v)?;
                    }
                    d.into_any()
                }
                _ => b.slots[i]
                    .clone()
                    .ok_or_else(|| PyTypeError::new_err("unbound parameter"))?,
            };
            out.set_item(p.name.bind(py), strip(&v, ex)?)?;
        }
        Ok(Some(out))
    }

    /// `inputs` (bound inputs of this function) as entries store them: a method's `self`
    /// replaced by its `self_key`, so that an entry never keeps the instance alive and its
    /// key can still be recomputed. A new dict when something was replaced; `inputs` itself
    /// for a plain function or when `self` is not among them.
    fn keyed_inputs<'py>(&self, inputs: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
        self.key_self(inputs, true)
    }

    /// Key and inputs together (one binding): `(Key, inputs)` or `None`.
    fn key_and_inputs<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<(Key, Bound<'py, PyDict>)>> {
        let mut buf = KeyBuf::new();
        if !self.encode_call(py, args, kwargs, &mut buf)? {
            return Ok(None);
        }
        Ok(Some((
            Key::from_buf(&buf),
            self.bound_inputs(args, kwargs)?,
        )))
    }

    /// `key_and_inputs` of `f(*head, [item], *rest, **kwargs)` for each item of a batch (how
    /// `batch_memoize` keys an item): a list of `(Key, inputs)`, or `None` as soon as one call
    /// does not bind.
    fn key_and_inputs_many<'py>(
        &self,
        py: Python<'py>,
        head: &Bound<'py, PyTuple>,
        items: &Bound<'py, PyList>,
        rest: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let out = PyList::empty(py);
        let at = head.len();
        let mut args: Vec<Bound<'py, PyAny>> = head.iter().collect();
        args.push(py.None().into_bound(py));
        args.extend(rest.iter());
        // a snapshot: the items are read while Python code (a `__cache_key__`) may run
        let items: Vec<Bound<'py, PyAny>> = items.iter().collect();
        for item in items {
            args[at] = PyList::new(py, [item])?.into_any();
            let call = PyTuple::new(py, &args)?;
            match self.key_and_inputs(py, &call, kwargs)? {
                Some(bound) => out.append(bound)?,
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// The stand-in stored for a method's `self` in entries: its canonical bytes, exactly as
    /// keys encode it, under a readable label.
    fn self_key(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<super::key::RawKey> {
        let i = self.self_index.ok_or_else(|| {
            PyValueError::new_err(format!("{} has no self parameter", self.func_name))
        })?;
        let mut buf = KeyBuf::new();
        let mut notes = Notes::default();
        self.encode_value(i, obj, &mut buf, &mut notes)
            .map_err(|e| self.name_error(py, i, e))?;
        let label = if obj.is_instance_of::<pyo3::types::PyType>() {
            format!(
                "<class {}>",
                super::encode::type_name(obj.cast::<pyo3::types::PyType>()?)
            )
        } else {
            format!("<{} instance>", super::encode::type_name(&obj.get_type()))
        };
        Ok(super::key::RawKey::new_raw(buf.as_slice(), label))
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        for p in &self.params {
            if let Some(d) = &p.default {
                visit.call(d)?;
            }
        }
        if let Some(t) = &self.token_fn {
            visit.call(t)?;
        }
        Ok(())
    }
}
