//! Staging one change set as one instant: the instant goes in flight (heartbeat first), the
//! file groups holding changed keys are located and each rewritten as soon as it is read (its
//! old rows minus deleted and updated keys, plus the updated rows; memory holds only the file
//! groups in flight), new keys are routed to small or new file groups ([`crate::inserts`]),
//! and new partitions get their partition metadata. [`crate::commit`] completes the instant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use cdc_core::model::Checkpoint;
use cdc_core::schema::evolution_rewrites_rows;
use cdc_core::sink::upsert::{
    locate_then, lookup_rows, parallelism, resolve, Attempt, ChangedKeys, FilePlan, KeyRanges,
    Located, OrderedTasks, RowRemoval,
};
use cdc_core::storage::to_storage;

use crate::base_file::{carry_meta, take, take_keyed, write_output, Ctx, Output};
use crate::error::{HudiSinkError, Result};
use crate::index::{record_keys, rows_by_partition};
use crate::inserts::{route, Inserts};
use crate::instant::{write_partition_metadata, InFlight, Pending};
use crate::locate::{candidates, int_key, key_ranges, Candidate, HudiFiles};
use crate::schema::{self as hschema};
use crate::table::{FileGroup, TableAt, TableState};
use crate::timeline::{self, WriteStat, COMMIT, REPLACE_COMMIT};

/// What one attempt wrote: an instant in flight with its base files.
pub struct Staged {
    pub(crate) state: TableState,
    pub(crate) pending: Pending,
    pub(crate) written: Vec<(WriteStat, FileGroup)>,
    /// The file groups live before the instant.
    pub(crate) live: Vec<FileGroup>,
    pub(crate) merged: SchemaRef,
    /// The Avro schema of the commit metadata.
    pub(crate) avro: String,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) truncate: bool,
    /// Clustering: the file groups the written ones replace.
    pub(crate) clustered: Vec<FileGroup>,
    pub(crate) rows_written: u64,
    pub(crate) rows_deleted: u64,
}

/// What rewriting one file group did.
struct Rewritten {
    stat: WriteStat,
    group: FileGroup,
    /// Upserts whose old row was in the group.
    found: Vec<usize>,
    deleted: u64,
    /// Upserts whose key moved to another partition (stored rows), to insert elsewhere.
    moved: Option<RecordBatch>,
}

impl TableAt {
    /// Writes the base files of one attempt, its instant in flight.
    pub(crate) async fn stage(&self, a: Attempt<'_, TableState>) -> Result<Staged> {
        let mut state = a.state;
        self.roll_back_unfinished(&mut state).await?;
        let truncate = a.changes.truncate;
        let rewrite_all = a
            .current
            .as_ref()
            .is_some_and(|c| **c != *a.merged && evolution_rewrites_rows(c, &a.merged));
        let (went_in_flight, in_flight) = InFlight::new();
        let (ctx, avro) = self.context(&state, &a.merged, &a.keys, in_flight)?;
        let action = if truncate { REPLACE_COMMIT } else { COMMIT };
        let live: Vec<FileGroup> = state.groups.values().cloned().collect();
        // The instant goes in flight (two round trips on S3) while the touched file groups
        // are read and merged; their new base files wait for it.
        let start = async {
            let started = Pending::start(&self.store, &ctx.instant, action, &self.config).await;
            let _ = went_in_flight.send(Some(started.is_ok()));
            started
        };
        let files = self.write_files(&ctx, &state, &live, rewrite_all, truncate);
        let (pending, written) = futures::join!(start, files);
        let pending = pending?;
        let (written, rows_deleted) = written?;
        write_partition_metadata(&self.store, &state.props, &ctx.instant, &written, &live).await?;
        Ok(Staged {
            state,
            pending,
            written,
            live,
            merged: a.merged,
            avro,
            checkpoint: a.checkpoint,
            truncate,
            clustered: Vec::new(),
            rows_written: a.keys.upserts.num_rows() as u64,
            rows_deleted,
        })
    }

    /// The base files of one attempt: the file groups holding changed keys rewritten (every
    /// group with `rewrite_all`), new keys routed to small or new groups; each written once the
    /// instant is in flight. The files written and the rows deleted.
    async fn write_files(
        &self,
        ctx: &Arc<Ctx>,
        state: &TableState,
        live: &[FileGroup],
        rewrite_all: bool,
        truncate: bool,
    ) -> Result<(Vec<(WriteStat, FileGroup)>, u64)> {
        let int_key = ctx.int_key.is_some();
        let ranges = key_ranges(&ctx.keys, state, int_key)?;
        let groups = match truncate || (ctx.keys.is_empty() && !rewrite_all) {
            true => Vec::new(),
            false => candidates(state, &ranges, int_key, rewrite_all),
        };
        let first_new = groups.len();
        let (mut written, found, moved, rows_deleted) = rewrite_groups(ctx, groups).await?;
        let fresh: Vec<usize> = (found.iter().enumerate())
            .filter_map(|(j, &found)| (!found).then_some(j))
            .collect();
        let inserts = Inserts::new(ctx, new_rows(ctx, &fresh, moved)?)?;
        let rewritten: HashSet<String> = written.iter().map(|(_, g)| g.file_id.clone()).collect();
        let outputs = route(ctx, &self.config, &inserts, live, &rewritten, truncate).await?;
        let writes = outputs
            .into_iter()
            .enumerate()
            .map(|(k, o)| write_output(ctx.clone(), first_new + k, o));
        let mut tasks = OrderedTasks::new(&self.table, writes, parallelism());
        while let Some(w) = tasks.next().await {
            written.push(w?);
        }
        Ok((written, rows_deleted))
    }

    /// The live rows of `state` that `keys` asks for (every live row with `every_row`), for
    /// `UpsertDriver::lookup`. Every file group is probed: the looked-up key is a prefix of
    /// the table's record key, which record-key ranges do not bound.
    pub(crate) async fn lookup(
        &self,
        state: &TableState,
        keys: Arc<ChangedKeys>,
        every_row: bool,
    ) -> Result<RecordBatch> {
        let groups = candidates(state, &KeyRanges::default(), false, every_row);
        let reader = Arc::new(HudiFiles {
            store: self.store.clone(),
        });
        lookup_rows(reader, keys, groups, every_row).await
    }

    /// What the base-file tasks of an attempt share, and the commit's Avro schema.
    pub(crate) fn context(
        &self,
        state: &TableState,
        merged: &SchemaRef,
        keys: &Arc<ChangedKeys>,
        in_flight: InFlight,
    ) -> Result<(Arc<Ctx>, String)> {
        let props = &state.props;
        let stored: SchemaRef = Arc::new(hschema::stored_schema(merged));
        let column_err = |e: hschema::AvroError| HudiSinkError::Column {
            table: self.table.to_string(),
            column: e.column,
            message: e.message,
        };
        let avro = hschema::avro_schema(&props.name, &stored).map_err(column_err)?;
        let avro_file = hschema::avro_file_schema(&props.name, &stored).map_err(column_err)?;
        let int_key = int_key(&props.key_columns, merged, &stored);
        let ctx = Ctx {
            table: self.table.clone(),
            store: self.store.clone(),
            keys: keys.clone(),
            merged: merged.clone(),
            file_schema: Arc::new(hschema::file_schema(&stored)),
            stored,
            key_columns: props.key_columns.clone(),
            partition_fields: props.partition_fields.clone(),
            hive_style: props.hive_style,
            avro_file,
            int_key: int_key.then(|| props.key_columns[0].clone()),
            instant: timeline::next_instant_time(state.timeline.last_time(), chrono::Utc::now()),
            in_flight,
        };
        Ok((Arc::new(ctx), avro))
    }
}

/// The groups written, which upserts had an old row (by upsert row: a set of a million rows
/// hashed was a tenth of a big commit's serial time), the moved rows, the rows deleted.
type Pass1 = (
    Vec<(WriteStat, FileGroup)>,
    Vec<bool>,
    Vec<RecordBatch>,
    u64,
);

/// Pass 1: the file groups holding changed keys, each rewritten as soon as it is read, one
/// task per core.
async fn rewrite_groups(ctx: &Arc<Ctx>, groups: Vec<(Candidate, FilePlan)>) -> Result<Pass1> {
    let reader = Arc::new(HudiFiles {
        store: ctx.store.clone(),
    });
    let task_ctx = ctx.clone();
    let then = move |f: Located<Candidate>| rewrite_group(task_ctx.clone(), f);
    let mut tasks = locate_then(reader, ctx.keys.clone(), groups, RowRemoval::Rewrite, then);
    let mut found = vec![false; ctx.keys.upserts.num_rows()];
    let (mut written, mut moved, mut deleted) = (Vec::new(), Vec::new(), 0);
    while let Some(r) = tasks.next().await {
        let Some(r) = r? else { continue };
        r.found.iter().for_each(|&j| found[j] = true);
        deleted += r.deleted;
        moved.extend(r.moved);
        written.push((r.stat, r.group));
    }
    Ok((written, found, moved, deleted))
}

/// Writes the next base file of a file group holding changed keys: its kept rows, and its
/// upserts resolved against their old rows (only the group's own upserts: work in proportion
/// to the group, not to the change set). Upserts whose partition changed go elsewhere.
async fn rewrite_group(ctx: Arc<Ctx>, f: Located<Candidate>) -> Result<Rewritten> {
    let group = f.file.group;
    let kept = f.kept.as_ref().expect("file groups are rewritten");
    let mut out = Output::next_of(group.clone(), carry_meta(&ctx, &group.path(), kept)?);
    out.deleted = f.deleted;
    let mut moved = None;
    if !f.upserts.is_empty() {
        let old_of: HashMap<usize, usize> = f
            .old_upserts
            .iter()
            .enumerate()
            .map(|(i, &j)| (j, i))
            .collect();
        let resolved = resolve(&ctx.keys, Some(&f.upserts), &f.old, |j| {
            old_of.get(&j).copied()
        })?;
        let mine = to_storage(&resolved, &ctx.stored)?;
        let layout = |m: String| HudiSinkError::Layout {
            table: ctx.table.to_string(),
            message: m,
        };
        let keys =
            record_keys(&mine, &ctx.key_columns, ctx.partition_fields.len()).map_err(layout)?;
        let parts =
            rows_by_partition(&mine, &ctx.partition_fields, ctx.hive_style).map_err(layout)?;
        let (mut stay, mut away) = (Vec::new(), Vec::new());
        for (partition, rows) in parts {
            match partition == group.partition {
                true => stay = rows,
                false => away.extend(rows),
            }
        }
        away.sort_unstable();
        out.num_updates = stay.len();
        if !stay.is_empty() {
            out.new_rows = Some(take_keyed(&mine, &keys, &stay)?);
        }
        if !away.is_empty() {
            moved = Some(take(&mine, &away)?);
        }
    }
    let (stat, group) = write_output(ctx, f.file.idx, out).await?;
    Ok(Rewritten {
        stat,
        group,
        found: f.upserts,
        deleted: f.deleted,
        moved,
    })
}

/// The rows of new keys (upserts `fresh`, no old row) and of keys that moved partition, stored.
fn new_rows(ctx: &Ctx, fresh: &[usize], moved: Vec<RecordBatch>) -> Result<RecordBatch> {
    let mut rows = Vec::with_capacity(moved.len() + 1);
    if !fresh.is_empty() {
        let empty = RecordBatch::new_empty(ctx.merged.clone());
        let resolved = resolve(&ctx.keys, Some(fresh), &empty, |_| None)?;
        rows.push(to_storage(&resolved, &ctx.stored)?);
    }
    rows.extend(moved);
    Ok(arrow_select::concat::concat_batches(&ctx.stored, &rows)
        .map_err(|e| cdc_core::Error::arrow("collecting inserts", e))?)
}
