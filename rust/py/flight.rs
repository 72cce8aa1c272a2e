//! Single-flight for threads (`cachehaven._core.Flight`): one computation per key at a time.
//!
//! The first caller of a key (the leader) registers the key and computes; callers that arrive
//! while it runs wait, without the GIL, and get the leader's value or its exception. A call
//! of the same key from the leader's own thread (its computation calling itself) computes
//! directly instead of waiting for itself. `try_run` (prefetching) leads or returns at once.
//!
//! A flight nobody waits for costs one table entry: the leader's thread and the key. The
//! state waiters block on is made by the first waiter, so an uncontended miss allocates no
//! lock and takes none (the table sits in a `GilCell`: the GIL serialises it, as for the
//! store). Every `InMemCache` miss passes here, from Rust (`memo.rs`) or from Python
//! (`BaseCache._flight`, which the Python engines and the prefetch workers use).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::Duration;

use hashbrown::HashTable;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::gilcell::GilCell;
use super::key::Key;

/// How long a waiter sleeps between checks for signals (a Ctrl-C raises in the main thread
/// even while it waits); the leader's result wakes it at once.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The outcome waiters share with the leader: set once, when the computation ends.
struct Outcome {
    result: Mutex<Option<PyResult<Py<PyAny>>>>,
    ready: Condvar,
}

impl Outcome {
    fn lock(&self) -> MutexGuard<'_, Option<PyResult<Py<PyAny>>>> {
        // the mutex guards plain data and no code that can panic runs under it
        self.result.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One computation in progress.
struct Slot {
    key: Box<[u8]>,
    hash: u64,
    leader: ThreadId,
    /// Made by the first waiter; None while nobody waits.
    outcome: Option<Arc<Outcome>>,
}

/// What a caller of a key does.
enum Role {
    Lead,
    /// The leader's own thread calls the key again: compute without the flight.
    Reenter,
    Wait(Arc<Outcome>),
}

/// Single-flight: concurrent callers of one key share one computation.
///
/// `run(key, compute, *args)` returns `compute(*args)`, run at most once at a time per key
/// across threads: a caller that arrives while another thread computes the key waits and
/// gets its value (or its exception raised again). `try_run(key, compute)` computes as the
/// leader unless the key is in flight, and then returns False at once without waiting.
#[pyclass(frozen, module = "cachehaven._core", name = "Flight")]
pub struct Flight {
    table: GilCell<HashTable<Slot>>,
}

impl Flight {
    /// A flight table with nothing in progress.
    pub fn new() -> Self {
        Flight {
            table: GilCell::new(HashTable::new()),
        }
    }

    /// The role of this thread for `key`; registers it as the leader when nobody computes
    /// the key.
    fn join(&self, py: Python<'_>, key: &[u8], hash: u64) -> PyResult<Role> {
        let me = thread::current().id();
        let mut table = self.table.borrow(py)?;
        Ok(match table.find_mut(hash, |s| *s.key == *key) {
            None => {
                let slot = Slot {
                    key: key.into(),
                    hash,
                    leader: me,
                    outcome: None,
                };
                table.insert_unique(hash, slot, |s| s.hash);
                Role::Lead
            }
            Some(s) if s.leader == me => Role::Reenter,
            Some(s) => Role::Wait(Arc::clone(s.outcome.get_or_insert_with(|| {
                Arc::new(Outcome {
                    result: Mutex::new(None),
                    ready: Condvar::new(),
                })
            }))),
        })
    }

    /// Run `compute` for `key` under the flight (see the type's docs). `compute` is called
    /// with no borrow held, so it may use this flight (and any store) again.
    #[inline]
    pub fn run(
        &self,
        py: Python<'_>,
        key: &[u8],
        hash: u64,
        compute: impl FnOnce() -> PyResult<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match self.join(py, key, hash)? {
            Role::Lead => self.lead(py, key, hash, compute),
            Role::Reenter => compute(),
            Role::Wait(outcome) => wait(py, &outcome),
        }
    }

    /// Compute as the leader of `key`, then end the flight and hand the result to waiters.
    fn lead(
        &self,
        py: Python<'_>,
        key: &[u8],
        hash: u64,
        compute: impl FnOnce() -> PyResult<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let landing = Landing {
            flight: self,
            key,
            hash,
        };
        let result = compute();
        std::mem::forget(landing);
        self.land(py, key, hash, &result);
        result
    }

    /// End `key`'s flight: remove it, and give waiters (if any) a copy of `result`.
    fn land(&self, py: Python<'_>, key: &[u8], hash: u64, result: &PyResult<Py<PyAny>>) {
        let slot = match self.table.borrow(py) {
            Ok(mut table) => match table.find_entry(hash, |s| *s.key == *key) {
                Ok(entry) => entry.remove().0,
                Err(_) => return,
            },
            // unreachable: no borrow is held while Python runs (see `GilCell`)
            Err(_) => return,
        };
        if let Some(outcome) = slot.outcome {
            let shared = match result {
                Ok(v) => Ok(v.clone_ref(py)),
                Err(e) => Err(e.clone_ref(py)),
            };
            *outcome.lock() = Some(shared);
            outcome.ready.notify_all();
        }
    }
}

impl Default for Flight {
    fn default() -> Self {
        Flight::new()
    }
}

/// Ends a leader's flight if its computation unwinds (a Rust panic): waiters get a
/// `PanicException` instead of waiting forever. Forgotten on the normal path.
struct Landing<'a> {
    flight: &'a Flight,
    key: &'a [u8],
    hash: u64,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        Python::attach(|py| {
            let err = PanicException::new_err("the computation of this key panicked");
            self.flight.land(py, self.key, self.hash, &Err(err));
        });
    }
}

/// Wait, without the GIL, for the leader's outcome; its value, or its exception raised again.
fn wait(py: Python<'_>, outcome: &Outcome) -> PyResult<Py<PyAny>> {
    loop {
        let ready = py.detach(|| {
            let guard = outcome.lock();
            let (guard, _) = outcome
                .ready
                .wait_timeout_while(guard, SIGNAL_CHECK, |r| r.is_none())
                .unwrap_or_else(PoisonError::into_inner);
            guard.is_some()
        });
        if ready {
            break;
        }
        py.check_signals()?;
    }
    match &*outcome.lock() {
        Some(Ok(v)) => Ok(v.clone_ref(py)),
        Some(Err(e)) => Err(e.clone_ref(py)),
        None => Err(PanicException::new_err("single-flight outcome missing")),
    }
}

#[pymethods]
impl Flight {
    #[new]
    fn py_new() -> Self {
        Flight::new()
    }

    /// `compute(*args)`, run at most once at a time for `key` across threads; callers that
    /// arrive meanwhile wait and share its value or exception.
    #[pyo3(name = "run", signature = (key, compute, *args))]
    fn py_run(
        &self,
        py: Python<'_>,
        key: &Bound<'_, Key>,
        compute: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let k = key.get();
        self.run(py, &k.bytes, k.hash, || Ok(compute.call1(args)?.unbind()))
    }

    /// Run `compute()` as the leader of `key`'s flight, unless one is in progress: then
    /// return False at once, without waiting (a background prefetch must never block
    /// behind a caller's miss, which stores the value anyway). Callers that arrive while it
    /// runs wait for it as for any leader. True when it ran; `compute`'s exception
    /// propagates (and reaches those waiters).
    fn try_run(
        &self,
        py: Python<'_>,
        key: &Bound<'_, Key>,
        compute: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let k = key.get();
        // a flight in progress (another thread's, or this thread's own) is left to finish
        match self.join(py, &k.bytes, k.hash)? {
            Role::Lead => {
                self.lead(py, &k.bytes, k.hash, || Ok(compute.call0()?.unbind()))?;
                Ok(true)
            }
            Role::Reenter | Role::Wait(_) => Ok(false),
        }
    }

    /// How many keys are being computed (for tests).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.table.borrow(py)?.len())
    }
}
