//! `cdc-delta`: cdc-lake's [`TableSink`](cdc_core::sink::TableSink) for Delta Lake.
//!
//! Each folded [`ChangeSet`](cdc_core::fold::ChangeSet) becomes ONE Delta commit holding:
//! - `remove` actions for the data files that hold a changed or deleted key (found by the key
//!   column's min/max statistics, then by reading only the key column), and `add` actions for
//!   their rewritten rows plus the upserted rows;
//! - `txn` actions, one per source topic-partition (`appId` = `cdc-lake:<topic>:<partition>`,
//!   `version` = next Kafka offset), and the whole checkpoint in `commitInfo`
//!   (`cdc-lake.checkpoint`), so a restart resumes exactly where the table is;
//! - a `metaData` action when the schema evolved (new columns, widened types).
//!
//! Files whose key range cannot hold a changed key are never read; files that could but do not
//! are read for their key column only and never rewritten. The commit is a `MERGE` operation to
//! delta-rs's conflict checker, so a concurrent writer that changed data makes it fail; the sink
//! then reloads the table and redoes the change set on the new version.
//!
//! ```no_run
//! # async fn run() -> cdc_core::Result<()> {
//! use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};
//! let warehouse = DeltaWarehouse::new("/data/lake", DeltaSinkConfig::default())?;
//! // hand `warehouse` to cdc_core::pipeline::Pipeline::new(config, &warehouse)
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod commit;
mod config;
mod driver;
mod dv;
mod error;
mod files;
#[cfg(feature = "glue")]
mod glue;
mod locate;
pub mod maintenance;
pub mod optimize;
pub mod schema;
mod table;
mod warehouse;
mod write;

pub use config::DeltaSinkConfig;
pub use driver::DeltaDriver;
pub use error::{DeltaSinkError, Result};
pub use table::{app_id, Loaded, CHECKPOINT_COMMIT_INFO, KEY_COLUMNS_PROPERTY};
pub use warehouse::{DeltaSink, DeltaWarehouse};
pub use write::Staged;
