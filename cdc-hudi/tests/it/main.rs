//! Integration tests of the Hudi sink: every fixture through the raw-file source into Hudi,
//! read back by hudi-rs and by the Python `hudi` package (snapshot, time travel, incremental);
//! replay; crash recovery; another writer; schema evolution; the file layout, partitions,
//! cleaning, timeline archival and truncate; equality with the reference sink after every batch; S3.

mod archive;
#[cfg(feature = "azure")]
mod azure;
mod clean;
mod cluster;
mod common;
mod concurrency;
mod crash;
mod evolution;
mod fixtures;
#[cfg(all(feature = "glue", feature = "s3"))]
mod glue;
mod layout;
#[cfg(feature = "s3")]
mod s3;
mod shapes;
mod stepwise;
