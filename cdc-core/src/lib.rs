//! `cdc-core`: the format-independent heart of cdc-lake.
//!
//! Debezium change events go through four steps:
//! 1. a [source] reads raw Kafka records (the S3 sink layout on any object store);
//! 2. a [decoder](decode) turns them into columnar [`ChangeBatch`](model::ChangeBatch)es, one
//!    Arrow batch of row images per table and schema;
//! 3. [`fold`](fold::fold) reduces a batch to its net effect per primary key, a
//!    [`ChangeSet`](fold::ChangeSet);
//! 4. a [`TableSink`](sink::TableSink) applies the change set and its checkpoint in one atomic
//!    commit.
//!
//! [`pipeline`] runs the four in bounded batches and resumes from the sinks' checkpoints.
//! This crate knows no table format: Delta, Iceberg and Hudi live in their own crates and
//! implement [`sink::TableSink`]; [`sink::MemoryWarehouse`] is the reference implementation.

#![warn(missing_docs)]

pub mod decode;
pub mod error;
pub mod fold;
pub mod glue;
pub mod metrics;
pub mod model;
pub mod parallel;
pub mod pipeline;
pub mod render;
pub mod schema;
pub mod secrets;
pub mod shape;
pub mod sink;
pub mod source;
pub mod storage;
#[cfg(feature = "test-util")]
pub mod testing;

pub use error::{Error, Result};

// The Arrow version every crate of the workspace shares.
pub use arrow_array;
pub use arrow_schema;
