//! `cdc-delta`: cdc-lake's [`TableSink`] for Delta Lake.
//!
//! Each folded [`ChangeSet`] becomes ONE Delta commit holding:
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

mod config;
mod dv;
mod error;
mod locate;
pub mod schema;
mod table;
mod write;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{
    Attempt, CommitControl, Committed, RetryPolicy, TableView, UpsertDriver, UpsertSink,
};
use cdc_core::sink::{TableSink, Warehouse};
use url::Url;

pub use config::DeltaSinkConfig;
pub use error::{DeltaSinkError, Result};
pub use table::Loaded;
pub use write::Staged;

/// Table property holding the primary-key columns (JSON list).
pub const KEY_COLUMNS_PROPERTY: &str = "cdc-lake.keyColumns";
/// `commitInfo` field holding the table's whole checkpoint after the commit.
pub const CHECKPOINT_COMMIT_INFO: &str = "cdc-lake.checkpoint";

/// The Delta `txn` application id of a topic-partition.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("cdc-lake:{topic}:{partition}")
}

/// Delta tables under one root: table `<schema>.<table>` at `<root>/<schema>/<table>/`.
#[derive(Debug, Clone)]
pub struct DeltaWarehouse {
    root: Url,
    config: Arc<DeltaSinkConfig>,
    conflicts: Arc<AtomicU64>,
}

impl DeltaWarehouse {
    /// A warehouse at `root` (local path, `file://` or `s3://` URL).
    pub fn new(root: &str, config: DeltaSinkConfig) -> cdc_core::Result<Self> {
        config.validate().map_err(cdc_core::Error::Config)?;
        let mut root = deltalake::ensure_table_uri(root)
            .map_err(|e| cdc_core::Error::Config(format!("bad Delta warehouse `{root}`: {e}")))?;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(DeltaWarehouse {
            root,
            config: Arc::new(config),
            conflicts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The URL of one table.
    pub fn table_url(&self, table: &TableId) -> Url {
        self.root
            .join(&format!("{}/{}/", table.namespace, table.name))
            .expect("table names join onto the root")
    }

    /// Commit conflicts with other writers that its sinks resolved by retrying.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The sink of one table (concrete type, for tests and tools).
    pub fn sink(&self, table: &TableId) -> DeltaSink {
        let retry =
            RetryPolicy::new(self.config.max_commit_attempts).counting_in(self.conflicts.clone());
        UpsertSink::new(DeltaDriver {
            table: table.clone(),
            url: self.table_url(table),
            config: self.config.clone(),
            control: CommitControl::new(retry, self.config.test_hooks.clone()),
        })
    }
}

#[async_trait]
impl Warehouse for DeltaWarehouse {
    async fn open(&self, table: &TableId) -> cdc_core::Result<Box<dyn TableSink>> {
        Ok(Box::new(self.sink(table)))
    }
}

/// The Delta sink of one table.
pub type DeltaSink = UpsertSink<DeltaDriver>;

/// The Delta format's driver of the upsert engine (see the crate docs).
#[derive(Debug)]
pub struct DeltaDriver {
    table: TableId,
    url: Url,
    config: Arc<DeltaSinkConfig>,
    control: CommitControl,
}

impl DeltaDriver {
    fn location(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.to_string()
    }
}

#[async_trait]
impl UpsertDriver for DeltaDriver {
    type State = Loaded;
    type Staged = Staged;
    type Error = DeltaSinkError;

    fn table(&self) -> &TableId {
        &self.table
    }

    fn control(&mut self) -> &mut CommitControl {
        &mut self.control
    }

    async fn load_table(&mut self) -> Result<Option<Loaded>> {
        match self.load().await? {
            Some(table) => Ok(Some(self.describe(table).await?)),
            None => Ok(None),
        }
    }

    async fn create_table(&mut self, changes: &ChangeSet) -> Result<Loaded> {
        let table = self.create(changes).await?;
        self.describe(table).await
    }

    fn view(&self, state: &Loaded) -> Result<TableView> {
        Ok(TableView {
            schema: Some(state.logical.clone()),
            key_columns: state.key_columns.clone(),
            checkpoint: state.checkpoint.clone(),
        })
    }

    async fn stage(&mut self, attempt: Attempt<'_, Loaded>) -> Result<Staged> {
        self.stage_files(attempt).await
    }

    async fn commit(&mut self, staged: Staged) -> Result<Committed> {
        self.commit_staged(staged).await
    }

    fn is_conflict(error: &DeltaSinkError) -> bool {
        error.is_conflict()
    }
}
