//! The Delta format's driver of cdc-core's upsert engine: what loading, staging and committing
//! one change set mean for a Delta table.
//!
//! The loaded table is kept between commits: the next attempt only checks that no other writer
//! committed since (one `HEAD` of the next log entry), and a commit of ours changes the kept
//! file index by its own actions, so a commit costs what the batch costs, not what the table's
//! history costs.

use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{
    Attempt, ChangedKeys, CommitControl, Committed, TableView, UpsertDriver,
};
use deltalake::DeltaTable;

use crate::error::{DeltaSinkError, Result};
use crate::optimize::OptimizeOptions;
use crate::table::{Loaded, TableLocation};
use crate::write::Staged;
use cdc_core::sink::maintenance::Every;

/// The Delta format's driver of the upsert engine (see the crate docs).
#[derive(Debug)]
pub struct DeltaDriver {
    at: TableLocation,
    control: CommitControl,
    /// The table as of our last load or commit; `None` after an error.
    cached: Option<Loaded>,
    /// The sink's own optimize and vacuum.
    optimize: Every,
    vacuum: Every,
}

impl DeltaDriver {
    pub(crate) fn new(at: TableLocation, control: CommitControl) -> Self {
        DeltaDriver {
            optimize: Every::new(at.config.optimize_every),
            vacuum: Every::new(at.config.vacuum_every),
            at,
            control,
            cached: None,
        }
    }

    /// Optimize and vacuum after every `optimize_every` / `vacuum_every` commits of this sink.
    /// The commit before stands whatever they do: a failure is a warning, and the next run
    /// goes on from where the table is.
    async fn maintain_on_schedule(&mut self) {
        let config = self.at.config.clone();
        let table = &self.at.table;
        if self.optimize.due() {
            let mut options = OptimizeOptions::for_target(config.target_file_size);
            options.max_bytes = config.optimize_max_bytes;
            match self.at.optimize(&options).await {
                Ok(done) if done.version.is_some() => {
                    // Our own commit moved the table past the version we hold.
                    self.cached = None;
                    tracing::info!(%table, files = ?done.files, rows = done.rows, "optimized");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%table, error = %e, "optimize failed; retried later"),
            }
        }
        if self.vacuum.due() {
            match crate::maintenance::vacuum_at(&self.at, None, std::time::SystemTime::now()).await
            {
                Ok(v) => tracing::info!(%table, files = v.files.len(), "vacuumed"),
                Err(e) => tracing::warn!(%table, error = %e, "vacuum failed; retried later"),
            }
        }
    }

    /// The table at its latest version, or `None` when there is no table yet.
    pub async fn load(&self) -> Result<Option<DeltaTable>> {
        self.at.load().await
    }
}

#[async_trait]
impl UpsertDriver for DeltaDriver {
    type State = Loaded;
    type Staged = Staged;
    type Error = DeltaSinkError;

    fn table(&self) -> &TableId {
        &self.at.table
    }

    fn control(&mut self) -> &mut CommitControl {
        &mut self.control
    }

    async fn load_table(&mut self) -> Result<Option<Loaded>> {
        if let Some(cached) = &self.cached {
            if !self
                .at
                .has_commit(&cached.table, cached.version + 1)
                .await?
            {
                return Ok(Some(cached.clone()));
            }
            // Another writer committed: its commits may change the files, schema or
            // checkpoint, so the table is loaded again.
        }
        let Some(table) = self.at.load().await? else {
            return Ok(None);
        };
        let loaded = self.at.describe(table).await?;
        // A restart registers what a commit before a crash may not have.
        #[cfg(feature = "glue")]
        self.at.register_in_glue(&loaded).await?;
        self.cached = Some(loaded.clone());
        Ok(Some(loaded))
    }

    async fn create_table(&mut self, changes: &ChangeSet) -> Result<Loaded> {
        let table = self.at.create(changes).await?;
        self.at.describe(table).await
    }

    fn view(&self, state: &Loaded) -> Result<TableView> {
        Ok(TableView {
            schema: Some(state.logical.clone()),
            key_columns: state.key_columns.clone(),
            checkpoint: state.checkpoint.clone(),
        })
    }

    async fn stage(&mut self, attempt: Attempt<'_, Loaded>) -> Result<Staged> {
        self.at.stage_files(attempt).await
    }

    async fn lookup(
        &mut self,
        state: &Loaded,
        keys: Arc<ChangedKeys>,
        every_row: bool,
    ) -> Result<RecordBatch> {
        self.at.lookup(state, keys, every_row).await
    }

    async fn commit(&mut self, staged: Staged) -> Result<Committed> {
        // Dropped first, so that the commit changes the only copy of the file index.
        self.cached = None;
        let (committed, loaded) = self.at.commit_staged(staged).await?;
        // The commit stands whatever Glue answers: a failed registration is an error here and
        // is made good by the next commit or load.
        #[cfg(feature = "glue")]
        let registered = self.at.register_in_glue(&loaded).await;
        self.cached = Some(loaded);
        #[cfg(feature = "glue")]
        registered?;
        self.maintain_on_schedule().await;
        Ok(committed)
    }

    fn reset(&mut self) {
        self.cached = None;
    }

    fn is_conflict(error: &DeltaSinkError) -> bool {
        error.is_conflict()
    }
}
