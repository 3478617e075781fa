//! Delta `optimize`: small files bin-packed into files of the target size, and files whose
//! deletion vectors hide many rows rewritten without them, in one commit.
//!
//! The commit removes the files it read and adds the files it wrote, both with `dataChange:
//! false` (streaming readers of the table skip it), and carries the table's checkpoint on, so
//! the sink resumes where it was. It is written as the version after the one it read, like any
//! commit of the sink; when another writer took that version the whole run is done again on
//! the new one, so no change of the other writer is lost and no file it removed comes back.
//! The files it replaced stay for time travel until [`crate::maintenance::vacuum`].

use std::sync::Arc;

use arrow_schema::SchemaRef;
use cdc_core::model::TableId;
use cdc_core::sink::maintenance::{files_to_rewrite, FileToRewrite};
use cdc_core::sink::upsert::{carry_over, locate, ChangedKeys, FilePlan, RetryPolicy, RowRemoval};
use deltalake::kernel::Action;

use crate::error::{DeltaSinkError, Result};
use crate::files::LiveFile;
use crate::schema;
use crate::table::{Loaded, TableLocation};
use crate::warehouse::DeltaWarehouse;
use crate::write::Staged;

/// Which files [`optimize`] rewrites (shared with Iceberg's compaction).
pub use cdc_core::sink::maintenance::RewriteLimits as OptimizeOptions;

/// What [`optimize`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Optimized {
    /// The commit's version (`None`: nothing worth rewriting).
    pub version: Option<u64>,
    /// Files removed and added.
    pub files: (usize, usize),
    /// Live rows rewritten.
    pub rows: u64,
}

/// Rewrites `table`'s small files and files with many deleted rows (see the module docs).
pub async fn optimize(
    warehouse: &DeltaWarehouse,
    table: &TableId,
    options: &OptimizeOptions,
) -> Result<Optimized> {
    warehouse.location(table).optimize(options).await
}

impl TableLocation {
    /// [`optimize`] of this table, redone from a fresh load when another writer commits first.
    pub(crate) async fn optimize(&self, options: &OptimizeOptions) -> Result<Optimized> {
        let retry = RetryPolicy::new(self.config.max_commit_attempts);
        retry
            .run(&self.table, DeltaSinkError::is_conflict, || async {
                let Some(delta) = self.load().await? else {
                    return Err(DeltaSinkError::Layout {
                        table: self.table.to_string(),
                        message: format!("no Delta table at {}", self.location()),
                    });
                };
                let state = self.describe(delta).await?;
                self.optimize_once(state, options).await
            })
            .await
    }

    /// One run on `state`; the commit fails as a conflict when `state` is no longer the latest.
    async fn optimize_once(&self, state: Loaded, options: &OptimizeOptions) -> Result<Optimized> {
        let chosen = choose(state.files.iter(), options);
        if chosen.is_empty() {
            return Ok(Optimized::default());
        }
        let stored: SchemaRef = Arc::new(schema::stored_arrow_schema(&state.logical));
        let keys = Arc::new(ChangedKeys::none(
            &self.table,
            &state.logical,
            &state.key_columns,
        )?);
        let reader = Arc::new(self.files_reader(&state.table, stored.clone())?);
        let mut writer = self.data_writer(&state.table, &stored, None)?;
        let candidates = chosen
            .iter()
            .map(|f| (f.clone(), FilePlan::REWRITE))
            .collect();
        let mut located = locate(reader, keys.clone(), candidates, RowRemoval::Rewrite);
        let mut actions = Vec::new();
        let mut rows = 0;
        while let Some(found) = located.next().await {
            let Some(f) = found? else { continue };
            let mut remove = f.file.remove_action();
            remove.data_change = false;
            actions.push(Action::Remove(remove));
            if let Some(kept) = f.kept.filter(|k| k.num_rows() > 0) {
                rows += kept.num_rows() as u64;
                let kept = carry_over(&self.table, &kept, &stored, &keys.schema())?;
                writer
                    .write(&kept)
                    .await
                    .map_err(self.delta_err("writing optimized files"))?;
            }
        }
        let adds = writer
            .close()
            .await
            .map_err(self.delta_err("closing optimized files"))?;
        let added = adds.len();
        actions.extend(adds.into_iter().map(|mut add| {
            add.data_change = false;
            Action::Add(add)
        }));
        let removed = chosen.len();
        let staged = Staged {
            checkpoint: state.checkpoint.clone(),
            state,
            actions,
            offsets: Default::default(),
            rows_written: rows,
            rows_deleted: 0,
        };
        let (committed, _) = self.commit_optimized(staged).await?;
        Ok(Optimized {
            version: committed.version.parse().ok(),
            files: (removed, added),
            rows,
        })
    }
}

/// The files worth rewriting (see [`files_to_rewrite`]).
fn choose<'a>(
    files: impl Iterator<Item = &'a LiveFile>,
    options: &OptimizeOptions,
) -> Vec<LiveFile> {
    let files = files.map(|f| FileToRewrite {
        file: f.clone(),
        bytes: f.size(),
        rows: f.num_records,
        deleted_rows: f
            .deletion_vector()
            .map_or(0, |dv| dv.cardinality.max(0) as u64),
    });
    files_to_rewrite(files, options)
}
