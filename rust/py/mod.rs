//! The Python bindings (`cachehaven._core`): the only module that knows PyO3. It registers
//! the classes and functions; the logic lives in the sibling modules.

pub mod binder;
pub mod copy;
pub mod decode;
pub mod encode;
pub mod errors;
pub mod event;
pub mod flight;
pub mod gilcell;
pub mod keep;
pub mod key;
pub mod memo;
pub mod rawcall;
pub mod record;
pub mod store;

use pyo3::prelude::*;

/// The native core of cachehaven.
#[pymodule]
mod _core {
    #[pymodule_export]
    use super::binder::{strip_inputs, Binder};
    #[pymodule_export]
    use super::copy::fresh_copy;
    #[pymodule_export]
    use super::decode::py_decode;
    #[pymodule_export]
    use super::encode::py_encode;
    #[pymodule_export]
    use super::event::Event;
    #[pymodule_export]
    use super::flight::Flight;
    #[pymodule_export]
    use super::keep::keep_forever;
    #[pymodule_export]
    use super::key::{blake3_int, call_key, md5_int, Key, RawKey};
    #[pymodule_export]
    use super::memo::{is_enabled, set_enabled, BoundMemoized, Memoized};
    #[pymodule_export]
    use super::record::{
        py_record_decode, py_record_encode, py_record_encode_results, py_record_value,
    };
    #[pymodule_export]
    use super::store::{py_estimate_size, KeyedValue, PyStore};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("FORMAT_VERSION", crate::key::FORMAT_VERSION)?;
        m.add("MAX_DEPTH", super::encode::MAX_DEPTH)?;
        m.add(
            "POLICIES",
            pyo3::types::PyTuple::new(m.py(), crate::policy::NAMES)?,
        )?;
        super::rawcall::install(m.py())?;
        Ok(())
    }
}
