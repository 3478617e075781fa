//! Shared code of the runnable examples: the upsert benchmark of every format
//! ([`mod@bench`], driven by `examples/bench/upsert.sh`).

#![warn(missing_docs)]

pub mod bench;
