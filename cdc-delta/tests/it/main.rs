//! Integration tests of the Delta sink: every fixture through the raw-file source into Delta,
//! read back by delta-rs (DataFusion) and by DuckDB's delta extension; crash recovery; S3.

#[cfg(feature = "azure")]
mod azure;
mod common;
mod concurrency;
mod crash;
mod deletion_vectors;
mod fixtures;
#[cfg(all(feature = "glue", feature = "s3"))]
mod glue;
mod maintenance;
mod optimize;
#[cfg(feature = "s3")]
mod s3;
mod shapes;
mod stepwise;
