//! `cdc-iceberg`: cdc-lake's [`TableSink`](cdc_core::sink::TableSink) for Apache Iceberg (format v2, merge-on-read).
//!
//! Each folded [`ChangeSet`](cdc_core::fold::ChangeSet) becomes ONE Iceberg snapshot holding:
//! - a position-delete file (`file_path`, `pos`, sorted) naming the row of every changed or
//!   deleted key, found by pruning data files with their manifest bounds of the key column and
//!   reading only the key columns of the candidates;
//! - a data file with the upserted rows (unchanged TOAST cells filled from the old rows);
//! - a data manifest and a delete manifest for them, the parent's manifests carried over, a
//!   manifest list, and the table's whole checkpoint in the snapshot summary
//!   (`cdc-lake.checkpoint`), so a restart resumes exactly where the table is and a replay is
//!   a no-op;
//! - the evolved schema when the source's schema grew (field ids kept; see [`schema`]).
//!
//! Other write modes ([`WriteMode`]): copy-on-write rewrites the touched data files instead of
//! writing delete files; equality deletes write the changed keys without looking for their
//! rows. Partitioned tables ([`IcebergSinkConfig::partition_by`]) get one position-delete file
//! per partition of the data files it names. [`maintenance`] compacts delete files away,
//! expires snapshots and lists orphan files.
//!
//! A truncate is a snapshot that removes every data and delete file. Widened types (int→long,
//! float→double, decimal precision) are promoted by readers at read time, so old files stay;
//! only a new column with a non-null default rewrites the table's live rows in the same
//! snapshot (module `promote`).
//!
//! The catalog is a SQLite file in the Iceberg JDBC layout ([`catalog`]), so pyiceberg's
//! `SqlCatalog` and Java's `JdbcCatalog` open the same tables; the snapshot becomes visible when
//! the catalog's `metadata_location` is swapped from the metadata file the attempt read to the
//! new one. Or it is an Iceberg REST catalog ([`rest`], [`IcebergSinkConfig::rest`]): the
//! commit sends the snapshot as updates with requirements on what the attempt read. Either way,
//! if another writer committed first, the attempt is redone on the new metadata.
//!
//! ```no_run
//! # async fn run() -> cdc_core::Result<()> {
//! use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};
//! let warehouse = IcebergWarehouse::new("/data/lake", IcebergSinkConfig::default())?;
//! // hand `warehouse` to cdc_core::pipeline::Pipeline::new(config, &warehouse);
//! // pyiceberg: SqlCatalog("cdc_lake", uri="sqlite:////data/lake/catalog.db").load_table("public.customers")
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod catalog;
mod commit;
pub mod compact;
mod config;
mod discard;
mod driver;
mod error;
mod files;
#[cfg(feature = "glue")]
mod glue;
mod locate;
pub mod maintenance;
pub mod partition;
mod promote;
pub mod rest;
mod rewrite;
pub mod schema;
pub(crate) mod storage;
mod table;
mod table_catalog;
mod warehouse;
mod write;

pub use config::{IcebergSinkConfig, RestCatalogConfig, Secret, WriteMode, DEFAULT_CATALOG_NAME};
pub use driver::{IcebergDriver, IcebergSink};
pub use error::{IcebergSinkError, Result};
pub use table::{Loaded, CHECKPOINT_SUMMARY};
pub use warehouse::IcebergWarehouse;
pub use write::Snapshot;
