//! The Hudi format's driver of cdc-core's upsert engine: what loading, staging and committing
//! one change set mean for a Hudi copy-on-write table.

use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::maintenance::Every;
use cdc_core::sink::upsert::{
    Attempt, ChangedKeys, CommitControl, Committed, TableView, UpsertDriver,
};

use crate::error::{HudiSinkError, Result};
use crate::table::{FileGroup, TableAt, TableState};
use crate::write::Staged;

/// The Hudi format's driver of the upsert engine (see the crate docs).
#[derive(Debug)]
pub struct HudiDriver {
    at: TableAt,
    /// Cached between commits; dropped after any error so the next call reloads.
    state: Option<TableState>,
    control: CommitControl,
    /// The sink's own clustering.
    clustering: Every,
}

impl HudiDriver {
    pub(crate) fn new(at: TableAt, control: CommitControl) -> Self {
        HudiDriver {
            clustering: Every::new(at.config.cluster_every as u64),
            at,
            state: None,
            control,
        }
    }

    /// Clusters small file groups every [`cluster_every`](crate::HudiSinkConfig::cluster_every)
    /// commits. The commit before stands: a failure is logged and the next run tries again.
    async fn cluster_on_schedule(&mut self) {
        if !self.clustering.due() {
            return;
        }
        let retry = self.control.retry().clone();
        let options = crate::cluster::ClusterOptions::default();
        let table = self.at.table.clone();
        match self.at.cluster(&retry, &options).await {
            Ok(Some(c)) => {
                // Our own instant moved the table past the state we hold.
                self.state = None;
                tracing::info!(%table, groups = ?c.groups, rows = c.rows, "clustered");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%table, error = %e, "clustering failed; retried later"),
        }
    }

    async fn load(&mut self) -> Result<Option<&mut TableState>> {
        if self.state.is_none() {
            self.state = self.at.read_state().await?;
            // A restart registers what a commit before a crash may not have.
            #[cfg(feature = "glue")]
            if let Some(state) = &self.state {
                self.at.register_in_glue(state).await?;
            }
        }
        Ok(self.state.as_mut())
    }

    /// The live file groups (loads the table if needed), for tests and tools.
    pub async fn file_groups(&mut self) -> cdc_core::Result<Vec<FileGroup>> {
        Ok(match self.load().await? {
            Some(s) => s.groups.values().cloned().collect(),
            None => Vec::new(),
        })
    }
}

#[async_trait]
impl UpsertDriver for HudiDriver {
    type State = TableState;
    type Staged = Staged;
    type Error = HudiSinkError;

    fn table(&self) -> &TableId {
        &self.at.table
    }

    fn control(&mut self) -> &mut CommitControl {
        &mut self.control
    }

    async fn load_table(&mut self) -> Result<Option<TableState>> {
        Ok(self.load().await?.cloned())
    }

    async fn create_table(&mut self, changes: &ChangeSet) -> Result<TableState> {
        self.at.create(changes).await?;
        self.state = None;
        self.load_table()
            .await?
            .ok_or_else(|| self.at.layout_err("table vanished while it was created"))
    }

    fn view(&self, state: &TableState) -> Result<TableView> {
        Ok(TableView {
            schema: state.latest.as_ref().map(|l| l.logical.clone()),
            key_columns: state.props.key_columns.clone(),
            checkpoint: state
                .latest
                .as_ref()
                .map(|l| l.checkpoint.clone())
                .unwrap_or_default(),
        })
    }

    async fn stage(&mut self, attempt: Attempt<'_, TableState>) -> Result<Staged> {
        self.at.stage(attempt).await
    }

    async fn lookup(
        &mut self,
        state: &TableState,
        keys: Arc<ChangedKeys>,
        every_row: bool,
    ) -> Result<RecordBatch> {
        self.at.lookup(state, keys, every_row).await
    }

    async fn commit(&mut self, staged: Staged) -> Result<Committed> {
        let (committed, state) = self.at.complete(staged).await?;
        // The commit stands whatever Glue answers: a failed registration is an error here and
        // is made good by the next commit or load.
        #[cfg(feature = "glue")]
        let registered = self.at.register_in_glue(&state).await;
        self.state = Some(state);
        #[cfg(feature = "glue")]
        registered?;
        self.cluster_on_schedule().await;
        Ok(committed)
    }

    fn is_conflict(error: &HudiSinkError) -> bool {
        error.is_conflict()
    }

    fn reset(&mut self) {
        self.state = None;
    }
}
