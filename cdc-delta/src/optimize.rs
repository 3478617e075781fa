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
use cdc_core::sink::upsert::{carry_over, locate, ChangedKeys, FilePlan, RetryPolicy, RowRemoval};
use deltalake::kernel::Action;

use crate::error::{DeltaSinkError, Result};
use crate::files::LiveFile;
use crate::schema;
use crate::table::{Loaded, TableLocation};
use crate::warehouse::DeltaWarehouse;
use crate::write::Staged;

/// Which files [`optimize`] rewrites.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizeOptions {
    /// A file smaller than this is small; small files are packed together (at least two).
    pub small_file_size: u64,
    /// A file whose deletion vector hides more than this fraction of its rows is rewritten
    /// without them.
    pub max_deleted_fraction: f64,
    /// At most this many bytes of files are read in one run (bounds how long a run inside a
    /// stream takes; the next run goes on).
    pub max_bytes: u64,
}

impl OptimizeOptions {
    /// Files under a quarter of `target_file_size` are small; deletion vectors hiding over
    /// 10 % of a file's rows are dropped; up to 1 GiB is read per run.
    pub fn for_target(target_file_size: u64) -> Self {
        OptimizeOptions {
            small_file_size: target_file_size / 4,
            max_deleted_fraction: 0.1,
            max_bytes: 1 << 30,
        }
    }
}

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
        let plan = FilePlan {
            probe: false,
            rewrite_anyway: true,
        };
        let reader = Arc::new(self.files_reader(&state.table, stored.clone())?);
        let mut writer = self.data_writer(&state.table, &stored)?;
        let candidates = chosen.iter().map(|f| (f.clone(), plan)).collect();
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
        let (committed, _) = self.commit_optimized(staged, options).await?;
        Ok(Optimized {
            version: committed.version.parse().ok(),
            files: (removed, added),
            rows,
        })
    }
}

/// The files worth rewriting: every file with many deleted rows, and the small files when
/// there are at least two, in path order, up to `options.max_bytes`.
fn choose<'a>(
    files: impl Iterator<Item = &'a LiveFile>,
    options: &OptimizeOptions,
) -> Vec<LiveFile> {
    let mut small = Vec::new();
    let mut dead = Vec::new();
    for f in files {
        let deleted = f
            .deletion_vector()
            .map_or(0, |dv| dv.cardinality.max(0) as u64);
        let many_deleted = f
            .num_records
            .is_some_and(|n| deleted as f64 > options.max_deleted_fraction * n as f64);
        if many_deleted {
            dead.push(f.clone());
        } else if f.size() < options.small_file_size {
            small.push(f.clone());
        }
    }
    if small.len() < 2 {
        small.clear();
    }
    let mut chosen = Vec::new();
    let mut bytes = 0;
    for f in dead.into_iter().chain(small) {
        if bytes > 0 && bytes + f.size() > options.max_bytes {
            break;
        }
        bytes += f.size();
        chosen.push(f);
    }
    // A lone small file left by the byte limit is not worth a commit.
    if chosen.len() == 1 && chosen[0].deletion_vector().is_none() {
        chosen.clear();
    }
    chosen
}
