//! Integration tests of the Iceberg sink: every fixture through the raw-file source into
//! Iceberg, read back by iceberg-rust, pyiceberg (SqlCatalog on our catalog.db) and DuckDB's
//! iceberg extension; crash recovery with orphan files.

#[cfg(feature = "azure")]
mod azure;
mod checkpoint;
mod common;
mod concurrency;
mod crash;
mod evolution;
mod fixtures;
#[cfg(all(feature = "glue", feature = "s3"))]
mod glue;
mod inspect;
mod maintenance;
mod modes;
mod partitioned;
mod promotion;
mod pruning;
#[cfg(any(feature = "s3", feature = "azure"))]
mod remote;
mod rest;
#[cfg(feature = "s3")]
mod s3;
mod shapes;
mod stepwise;
