//! Small-file clustering: the small file groups of a partition (under `small_file_size`, at
//! least two) are rewritten into new file groups of up to `max_file_size`, in one
//! `replacecommit` (operation `CLUSTER`) whose `partitionToReplaceFileIds` names the groups it
//! replaces, as Hudi's clustering writes it. Records keep their `_hoodie_commit_time` and
//! sequence numbers (incremental queries still see each change once, at its commit); the
//! table's checkpoint is carried on.
//!
//! Like a sink's commit it is one instant: its heartbeat and the commit lock keep other
//! writers out, and when another writer completed an instant since the table was read the
//! instant is undone and clustering redone on the new state. The replaced groups' files stay
//! until the cleaner retires them (as file versions of an older commit).
//!
//! The sink's inserts already fill small file groups first, so clustering matters for groups
//! that deletes and moves made small.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{locate, ChangedKeys, FilePlan, RetryPolicy, RowRemoval};

use crate::base_file::{carry_meta, write_output, Output};
use crate::error::{HudiSinkError, Result};
use crate::instant::{InFlight, Pending};
use crate::locate::{Candidate, HudiFiles};
use crate::table::{FileGroup, TableAt, TableState};
use crate::timeline::{WriteStat, REPLACE_COMMIT};
use crate::warehouse::HudiWarehouse;
use crate::write::Staged;

/// Which file groups [`cluster`] rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// A file group whose base file is smaller than this is small.
    pub small_file_size: u64,
    /// At most this many bytes of base files are read in one run.
    pub max_bytes: u64,
}

impl Default for ClusterOptions {
    /// Groups under 32 MiB are small; 1 GiB a run.
    fn default() -> Self {
        ClusterOptions {
            small_file_size: 32 << 20,
            max_bytes: 1 << 30,
        }
    }
}

/// What [`cluster`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clustered {
    /// The replacecommit's instant.
    pub instant: String,
    /// File groups replaced and written.
    pub groups: (usize, usize),
    /// Records rewritten.
    pub rows: u64,
}

/// Clusters the small file groups of `table` (see the module docs); `None` when no partition
/// has two.
pub async fn cluster(
    warehouse: &HudiWarehouse,
    table: &TableId,
    options: &ClusterOptions,
) -> Result<Option<Clustered>> {
    let at = warehouse.table_at(table);
    at.cluster(&warehouse.retry_policy(), options).await
}

impl TableAt {
    /// [`cluster`] of this table, redone from a fresh read when another writer gets in.
    pub(crate) async fn cluster(
        &self,
        retry: &RetryPolicy,
        options: &ClusterOptions,
    ) -> Result<Option<Clustered>> {
        retry
            .run(&self.table, HudiSinkError::is_conflict, || async {
                let Some(state) = self.read_state().await? else {
                    return Ok(None);
                };
                self.cluster_once(state, options).await
            })
            .await
    }

    async fn cluster_once(
        &self,
        mut state: TableState,
        options: &ClusterOptions,
    ) -> Result<Option<Clustered>> {
        self.roll_back_unfinished(&mut state).await?;
        let chosen = choose(&state, options);
        let Some(latest) = state.latest.clone().filter(|_| !chosen.is_empty()) else {
            return Ok(None);
        };
        let merged = latest.logical.clone();
        let keys = Arc::new(ChangedKeys::none(
            &self.table,
            &merged,
            &state.props.key_columns,
        )?);
        let (ctx, avro) = self.context(&state, &merged, &keys, InFlight::open())?;
        let pending =
            Pending::start(&self.store, &ctx.instant, REPLACE_COMMIT, &self.config).await?;
        let written = match self.write_clusters(&ctx, &keys, &chosen).await {
            Ok(w) => w,
            Err(e) => {
                pending.undo(&self.store, &[]).await?;
                return Err(e);
            }
        };
        let rows = written
            .iter()
            .map(|(s, _)| s.num_writes.max(0) as u64)
            .sum::<u64>();
        let new_groups = written.len();
        let staged = Staged {
            live: state.groups.values().cloned().collect(),
            state,
            pending,
            written,
            merged,
            avro,
            checkpoint: latest.checkpoint,
            truncate: false,
            clustered: chosen.clone(),
            rows_written: rows,
            rows_deleted: 0,
        };
        let (committed, _) = self.complete(staged).await?;
        Ok(Some(Clustered {
            instant: committed.version,
            groups: (chosen.len(), new_groups),
            rows,
        }))
    }

    /// Reads `chosen` and writes their records into new file groups, one partition at a time,
    /// rolling over at `max_file_size`.
    async fn write_clusters(
        &self,
        ctx: &Arc<crate::base_file::Ctx>,
        keys: &Arc<ChangedKeys>,
        chosen: &[FileGroup],
    ) -> Result<Vec<(WriteStat, FileGroup)>> {
        let candidates = (chosen.iter().enumerate())
            .map(|(idx, g)| {
                (
                    Candidate {
                        idx,
                        group: g.clone(),
                    },
                    FilePlan::REWRITE,
                )
            })
            .collect();
        let reader = Arc::new(HudiFiles {
            store: self.store.clone(),
        });
        let mut located = locate(reader, keys.clone(), candidates, RowRemoval::Rewrite);
        let mut by_partition: BTreeMap<String, (FileGroup, Vec<RecordBatch>, u64)> =
            BTreeMap::new();
        while let Some(found) = located.next().await {
            let Some(f) = found? else { continue };
            let group = f.file.group;
            let Some(kept) = f.kept.filter(|k| k.num_rows() > 0) else {
                continue;
            };
            let rows = carry_meta(ctx, &group.path(), &kept)?;
            let entry = (by_partition.entry(group.partition.clone()))
                .or_insert_with(|| (group.clone(), Vec::new(), 0));
            entry.2 += group.size * rows.num_rows() as u64 / group.rows.max(1);
            entry.1.push(rows);
        }
        let mut written = Vec::new();
        for (partition, (sample, parts, bytes)) in by_partition {
            let rows = arrow_select::concat::concat_batches(&ctx.file_schema, &parts)
                .map_err(|e| cdc_core::Error::arrow("collecting clustered rows", e))?;
            let files = bytes.div_ceil(self.config.max_file_size).max(1) as usize;
            let per_file = rows.num_rows().div_ceil(files);
            for start in (0..rows.num_rows()).step_by(per_file.max(1)) {
                let len = per_file.min(rows.num_rows() - start);
                let mut out = Output::new_group(&partition, &sample.dir);
                out.kept = Some(rows.slice(start, len));
                written.push(write_output(ctx.clone(), written.len(), out).await?);
            }
        }
        Ok(written)
    }
}

/// The small file groups of partitions with at least two, up to `options.max_bytes`.
fn choose(state: &TableState, options: &ClusterOptions) -> Vec<FileGroup> {
    let mut small: BTreeMap<&str, Vec<&FileGroup>> = BTreeMap::new();
    for g in state.groups.values() {
        if g.size < options.small_file_size {
            small.entry(g.partition.as_str()).or_default().push(g);
        }
    }
    let mut chosen = Vec::new();
    let mut bytes = 0;
    for groups in small.into_values().filter(|g| g.len() >= 2) {
        let size: u64 = groups.iter().map(|g| g.size).sum();
        if bytes > 0 && bytes + size > options.max_bytes {
            break;
        }
        bytes += size;
        chosen.extend(groups.into_iter().cloned());
    }
    chosen
}
