//! `cdc-hudi`: cdc-lake's [`TableSink`](cdc_core::sink::TableSink) for Apache Hudi copy-on-write tables (table version 6,
//! timeline layout 1: what Hudi 0.14, Athena, EMR/Spark and hudi-rs read).
//!
//! Hudi is written natively here (the `hudi` crate only reads). Each folded [`ChangeSet`](cdc_core::fold::ChangeSet)
//! becomes ONE instant `t`: `t.commit.requested`, `t.inflight`, the new base files, then
//! `t.commit` with the JSON commit metadata (write stats per base file, operation `UPSERT`,
//! `extraMetadata.schema` = the Avro schema, plus the table's whole source checkpoint and its
//! Arrow schema under `cdc-lake.*` keys). A truncate is a `replacecommit` that replaces every
//! file group. Readers see an instant only once its completed file exists, so a crash at any
//! point leaves the previous commit; the next writer deletes the crashed instant's files and
//! pending instant files (rollback).
//!
//! Upserts go to the file group that holds the key, deletes remove it there, and only those
//! file groups are rewritten (a new base file of the same file id). The file groups are found
//! by the record-key range in each base file's footer, then by reading only the key columns of
//! the candidates. New keys fill small file groups first, then new ones (see
//! [`HudiSinkConfig::max_file_size`]). Rows that are carried over keep their
//! `_hoodie_commit_time`, so Hudi incremental queries return exactly the rows each commit
//! changed.
//!
//! ```no_run
//! # async fn run() -> cdc_core::Result<()> {
//! use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
//! let warehouse = HudiWarehouse::new("/data/lake", HudiSinkConfig::default())?;
//! // hand `warehouse` to cdc_core::pipeline::Pipeline::new(config, &warehouse)
//! # Ok(()) }
//! ```
//!
//! Partitioned tables ([`HudiSinkConfig::partition_fields`], Hive-style directories by
//! default) write `.hoodie_partition_metadata` in each partition; a key whose partition value
//! changes moves to a file group of its new partition. After each commit the cleaner deletes
//! base-file versions that no query as of the last [`HudiSinkConfig::commits_retained`]
//! commits that changed files can read (Hudi's KEEP_LATEST_COMMITS; checkpoint-only commits do
//! not count), nor a query started within [`HudiSinkConfig::retain_hours`].
//!
//! # Limits
//!
//! - One writer per table is the safe setup, and **one writer id
//!   ([`HudiSinkConfig::writer_id`]) per concurrently running writer**. Each pending instant
//!   has a heartbeat (`.hoodie/.heartbeat/<instant>`); a writer rolls back
//!   only pending instants of its own id (its crashed predecessor) or whose heartbeat expired,
//!   and meets another id's live instant with a conflict (retried up to
//!   [`HudiSinkConfig::max_commit_attempts`] times), never a deletion. Two writers sharing an
//!   id would roll back each other's live instants. Before completing an instant the sink
//!   checks that its `.inflight` and base files are still there and that no other writer
//!   completed an instant meanwhile, and if not undoes its attempt and redoes the change set
//!   on the new table state; but that is a check, not a lock (Hudi's own writers need a lock
//!   provider for concurrent writes).
//! - Base files carry the record-key range but no bloom filter, so a Spark/Java Hudi writer
//!   joining the table must use the SIMPLE or GLOBAL_SIMPLE index (readers need neither).
//! - No metadata table, and cleaning deletes old versions without writing `clean` instants.
//! - The timeline is archived ([`HudiSinkConfig::archive_max_commits`]) as hudi-rs reads an
//!   archive (one file per instant under `.hoodie/archived/`), not as the Avro log files of
//!   Hudi's Java archiver: snapshot and time-travel reads inside the retention are
//!   unaffected, but Spark's incremental queries cannot start before the active timeline.
//! - Column names must be valid Avro names (the table schema is Avro).

#![warn(missing_docs)]

mod archive;
mod base_file;
mod clean;
mod clean_instant;
pub mod cluster;
mod commit;
mod config;
mod driver;
mod encode;
mod error;
mod files;
#[cfg(feature = "glue")]
mod glue;
mod heartbeat;
mod index;
mod inserts;
mod instant;
mod locate;
mod lock;
mod schema;
mod table;
mod timeline;
mod warehouse;
mod write;

pub use archive::ARCHIVE_DIR;
pub use config::HudiSinkConfig;
pub use driver::HudiDriver;
pub use error::{HudiSinkError, Result};
pub use files::BaseFileName;
pub use schema::{stored_schema, META_COLUMNS};
pub use table::{
    FileGroup, TableState, ARROW_SCHEMA_KEY, AVRO_SCHEMA_KEY, CHECKPOINT_KEY, PROPERTIES_FILE,
};
pub use timeline::{CommitMetadata, Timeline, WriteStat};
pub use warehouse::{HudiSink, HudiWarehouse};
pub use write::Staged;
