//! cachehaven's native core: canonical keys, digests, the in-memory store and its eviction
//! policies. The pure-Rust modules build and test without Python; `py` (behind the `python`
//! feature) is the only one that knows PyO3.

pub mod hash;
pub mod key;
pub mod policy;
pub mod store;

#[cfg(feature = "python")]
pub mod py;
