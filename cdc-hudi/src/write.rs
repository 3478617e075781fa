//! Applying one change set as one instant: find the file groups holding changed keys, rewrite
//! them with updates applied and deleted keys removed, route new keys to small or new file
//! groups, write the base files, then complete the instant.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::schema::{evolution_rewrites_rows, evolve_batch, merge_schemas};
use cdc_core::sink::upsert::{resolve_upserts, ChangedKeys, Touch};
use cdc_core::sink::CommitOutcome;
use cdc_core::storage::{from_storage_columns, to_storage};
use futures::StreamExt;

use crate::error::{HudiSinkError, Result};
use crate::files::{self, BaseFileName, TableStore, HOODIE_DIR};
use crate::index::{int_key_range, partition_paths, record_keys, KeyRanges};
use crate::schema::{self as hschema, FILE_NAME, META_COLUMNS, RECORD_KEY};
use crate::timeline::{
    self, CommitMetadata, Instant, RuntimeStats, State, TableProperties, Timeline, WriteStat,
    COMMIT, REPLACE_COMMIT,
};
use crate::{
    FailPoint, FileGroup, FileVersion, HudiSink, Latest, ARROW_SCHEMA_KEY, AVRO_SCHEMA_KEY,
    CHECKPOINT_KEY, PROPERTIES_FILE,
};

/// A candidate with at most this many changed keys in its key range has its key columns read
/// first; with more it almost surely holds one and is read whole at once.
const PROBE_AT_MOST_KEYS: usize = 16;

/// What every file task of one change set shares.
struct Ctx {
    table: TableId,
    store: TableStore,
    merged: SchemaRef,
    stored: SchemaRef,
    file_schema: SchemaRef,
    key_columns: Vec<String>,
    keys: ChangedKeys,
    changes: ChangeSet,
    partition_fields: Vec<String>,
    hive_style: bool,
    avro_file: String,
    /// The key column when the key is a single integer column.
    int_key: Option<String>,
    instant: String,
}

/// A file group read for this instant.
struct Touched {
    group: FileGroup,
    /// Rows carried over, in the base-file schema (meta columns as they were).
    kept: RecordBatch,
    /// Old rows of upserted keys (logical, merged schema) and the upsert index of each.
    replaced: RecordBatch,
    replaced_upserts: Vec<usize>,
    deleted: u64,
}

/// One base file this instant writes.
struct Output {
    existing: Option<FileGroup>,
    file_id: String,
    partition: String,
    dir: object_store::path::Path,
    /// Rows carried over (base-file schema).
    kept: Option<RecordBatch>,
    /// Updated and inserted rows (stored data columns) and their record keys.
    new_rows: Option<(RecordBatch, Vec<String>)>,
    num_updates: usize,
    num_inserts: usize,
    deleted: u64,
}

impl Output {
    /// Bytes the carried-over rows will roughly take.
    fn estimated_size(&self, avg: u64) -> u64 {
        let kept = self.kept.as_ref().map_or(0, |k| k.num_rows() as u64);
        let carried = match &self.existing {
            Some(g) if g.rows > 0 => g.size * kept / g.rows,
            _ => kept * avg,
        };
        carried + (self.num_updates + self.num_inserts) as u64 * avg
    }
}

/// What rewriting one file group did.
struct Rewritten {
    stat: WriteStat,
    group: FileGroup,
    /// Upserts whose old row was in the group.
    replaced_upserts: Vec<usize>,
    deleted: u64,
    /// Upserts whose key moved to another partition (stored rows), to insert elsewhere.
    moved: Option<RecordBatch>,
}

fn take(batch: &RecordBatch, rows: &[usize]) -> cdc_core::Result<RecordBatch> {
    let indices = UInt32Array::from(rows.iter().map(|&r| r as u32).collect::<Vec<_>>());
    arrow_select::take::take_record_batch(batch, &indices)
        .map_err(|e| cdc_core::Error::arrow("taking rows", e))
}

/// Reads a candidate file group and, if it holds changed keys, writes its new base file at
/// once (its old rows minus deleted and updated keys, plus the updated rows): memory holds only
/// the file groups in flight.
async fn rewrite_group(
    ctx: Arc<Ctx>,
    group: FileGroup,
    read: Read,
    idx: usize,
) -> Result<Option<Rewritten>> {
    let Some(t) = process(ctx.clone(), group, read).await? else {
        return Ok(None);
    };
    let js = t.replaced_upserts.clone();
    let mut stay_rows = None;
    let mut moved = None;
    let mut num_updates = 0;
    if !js.is_empty() {
        let resolved = resolve_group(&ctx.changes, &ctx.keys, &ctx.merged, &js, &t.replaced)?;
        let mine = to_storage(&resolved, &ctx.stored)?;
        let layout = |m: String| HudiSinkError::Layout {
            table: ctx.table.to_string(),
            message: m,
        };
        let keys =
            record_keys(&mine, &ctx.key_columns, ctx.partition_fields.len()).map_err(layout)?;
        let parts =
            partition_paths(&mine, &ctx.partition_fields, ctx.hive_style).map_err(layout)?;
        let (stay, away): (Vec<usize>, Vec<usize>) =
            (0..mine.num_rows()).partition(|&i| parts[i] == t.group.partition);
        num_updates = stay.len();
        if !stay.is_empty() {
            let stay_keys = stay.iter().map(|&i| keys[i].clone()).collect();
            stay_rows = Some((take(&mine, &stay)?, stay_keys));
        }
        if !away.is_empty() {
            moved = Some(take(&mine, &away)?);
        }
    }
    let out = Output {
        file_id: t.group.file_id.clone(),
        partition: t.group.partition.clone(),
        dir: t.group.dir.clone(),
        existing: Some(t.group),
        kept: Some(t.kept),
        new_rows: stay_rows,
        num_updates,
        num_inserts: 0,
        deleted: t.deleted,
    };
    let (stat, group) = write_output(ctx, idx, out).await?;
    Ok(Some(Rewritten {
        stat,
        group,
        replaced_upserts: js,
        deleted: t.deleted,
        moved,
    }))
}

/// Upserts `js` resolved against their old rows (`old` row `i` is the old row of upsert
/// `js[i]`), in the order of `js`. Only those upserts (and their unchanged cells) are sliced
/// out and resolved: work in proportion to the file group, not to the whole change set.
fn resolve_group(
    changes: &ChangeSet,
    keys: &ChangedKeys,
    merged: &SchemaRef,
    js: &[usize],
    old: &RecordBatch,
) -> cdc_core::Result<RecordBatch> {
    let arrow = |e| cdc_core::Error::arrow("slicing the upserts of a file group", e);
    let idx = UInt32Array::from(js.iter().map(|&j| j as u32).collect::<Vec<_>>());
    let upserts = arrow_select::take::take_record_batch(&keys.upserts, &idx).map_err(arrow)?;
    if keys.unchanged.is_empty() {
        return Ok(upserts);
    }
    let mask = keys
        .unchanged
        .columns()
        .iter()
        .map(|m| {
            m.as_ref()
                .map(|m| {
                    arrow_select::take::take(m, &idx, None)
                        .map(|a| arrow_array::cast::AsArray::as_boolean(&a).clone())
                })
                .transpose()
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(arrow)?;
    let ignore =
        arrow_select::take::take(&changes.ignore_table_values, &idx, None).map_err(arrow)?;
    let key_schema = Arc::new(Schema::new(keys.key_fields().to_vec()));
    let sub = ChangeSet {
        table: changes.table.clone(),
        schema: keys.upserts.schema(),
        key_columns: changes.key_columns.clone(),
        truncate: false,
        upserts,
        upsert_unchanged: cdc_core::model::UnchangedMask::new(mask),
        ignore_table_values: arrow_array::cast::AsArray::as_boolean(&ignore).clone(),
        deletes: RecordBatch::new_empty(key_schema),
        checkpoint: Default::default(),
        events: 0,
        max_source_ts_ms: None,
    };
    let key_columns: Vec<String> = keys.key_fields().iter().map(|f| f.name().clone()).collect();
    let sub_keys = ChangedKeys::new(&sub, merged, &key_columns)?;
    let old_row: Vec<Option<usize>> = (0..js.len()).map(Some).collect();
    resolve_upserts(&sub, &sub_keys, old, &old_row)
}

/// Same columns, types and nullability (metadata aside).
fn same_shape(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| {
            x.name() == y.name()
                && x.data_type() == y.data_type()
                && x.is_nullable() == y.is_nullable()
        })
}

/// How a file group is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Look for changed keys (key columns first when `probe`); `None` when it holds none.
    Find { probe: bool },
    /// Apply the changed keys and rewrite it even if it holds none (schema evolution).
    Rewrite,
    /// Carry every row over (a small file group taking inserts).
    Carry,
}

/// Reads a file group for this instant: `None` when it holds no changed key and need not be
/// rewritten.
async fn process(ctx: Arc<Ctx>, group: FileGroup, read: Read) -> Result<Option<Touched>> {
    let path = group.path();
    let location = group.location();
    let err = |message: String| HudiSinkError::BaseFile {
        table: ctx.table.to_string(),
        path: path.clone(),
        message,
    };
    if read == (Read::Find { probe: true }) {
        let key_rows = ctx
            .store
            .read_base_file(&location, &path, group.size, Some(&ctx.key_columns))
            .await?;
        let touches = ctx
            .keys
            .find(&from_storage_columns(&key_rows, &ctx.merged)?)?;
        if touches.iter().all(Option::is_none) {
            return Ok(None);
        }
    }
    let rows = ctx
        .store
        .read_base_file(&location, &path, group.size, None)
        .await?;
    for m in META_COLUMNS {
        if rows.column_by_name(m).is_none() {
            return Err(err(format!("meta column `{m}` is missing")));
        }
    }
    let data = evolve_batch(
        &ctx.table,
        &from_storage_columns(&rows, &ctx.merged)?,
        &ctx.merged,
    )?;
    let touches = if read == Read::Carry {
        vec![None; rows.num_rows()]
    } else {
        ctx.keys.find(&data)?
    };
    let mut keep = Vec::with_capacity(rows.num_rows());
    let mut taken = Vec::new();
    let mut replaced_upserts = Vec::new();
    let mut deleted = 0;
    for (i, t) in touches.iter().enumerate() {
        match t {
            None => keep.push(true),
            Some(Touch::Delete) => {
                keep.push(false);
                deleted += 1;
            }
            Some(Touch::Upsert(j)) => {
                keep.push(false);
                taken.push(i as u32);
                replaced_upserts.push(*j);
            }
        }
    }
    if matches!(read, Read::Find { .. }) && taken.is_empty() && deleted == 0 {
        return Ok(None);
    }
    let keep = BooleanArray::from(keep);
    let kept = if same_shape(&rows.schema(), &ctx.file_schema) {
        // Rebuilt under our schema: the file's footer entries came back as schema metadata.
        arrow_select::filter::filter_record_batch(&rows, &keep)
            .and_then(|b| RecordBatch::try_new(ctx.file_schema.clone(), b.columns().to_vec()))
            .map_err(|e| err(e.to_string()))?
    } else {
        // Written under an older schema: carry the rows over in the new one.
        let kept_data = arrow_select::filter::filter_record_batch(&data, &keep)
            .map_err(|e| err(e.to_string()))?;
        let stored = to_storage(&kept_data, &ctx.stored)?;
        let mut columns: Vec<ArrayRef> = META_COLUMNS
            .iter()
            .map(|m| {
                let col = rows.column_by_name(m).expect("checked");
                arrow_select::filter::filter(col.as_ref(), &keep)
                    .and_then(|c| arrow_cast::cast(&c, &arrow_schema::DataType::Utf8))
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        columns.extend(stored.columns().iter().cloned());
        RecordBatch::try_new(ctx.file_schema.clone(), columns).map_err(|e| err(e.to_string()))?
    };
    let replaced = arrow_select::take::take_record_batch(&data, &UInt32Array::from(taken))
        .map_err(|e| err(e.to_string()))?;
    Ok(Some(Touched {
        group,
        kept,
        replaced,
        replaced_upserts,
        deleted,
    }))
}

impl HudiSink {
    /// Creates `.hoodie/hoodie.properties` for the first change set.
    async fn create(&self, changes: &ChangeSet) -> Result<()> {
        let table = self.table.to_string();
        let column_err = |column: &str, message: String| HudiSinkError::Column {
            table: table.clone(),
            column: column.to_string(),
            message,
        };
        let cfg = &self.config;
        for c in cfg
            .partition_fields
            .iter()
            .chain(cfg.precombine_field.iter())
        {
            if changes.schema.index_of(c).is_err() {
                return Err(column_err(
                    c,
                    "configured as a partition or precombine field but not in the table".into(),
                ));
            }
        }
        for k in changes.key_columns.iter() {
            if k.contains(',') {
                return Err(column_err(
                    k,
                    "a Hudi record key field cannot contain a comma".into(),
                ));
            }
        }
        let stored = hschema::stored_schema(&changes.schema);
        let avro = hschema::avro_schema(&self.table.name, &stored)
            .map_err(|e| column_err(&e.column, e.message))?;
        let props = TableProperties {
            name: self.table.name.clone(),
            key_columns: changes.key_columns.to_vec(),
            partition_fields: cfg.partition_fields.clone(),
            hive_style: cfg.hive_style_partitioning,
            precombine_field: cfg.precombine_field.clone(),
            create_schema: Some(avro),
        };
        self.store
            .put(PROPERTIES_FILE, Bytes::from(props.to_text()), true)
            .await
            .or_else(|e| match e {
                // Created meanwhile by another writer: use theirs.
                HudiSinkError::Store { source, .. }
                    if matches!(*source, object_store::Error::AlreadyExists { .. }) =>
                {
                    Ok(())
                }
                e => Err(e),
            })
    }

    pub(crate) async fn apply_inner(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        if self.load().await?.is_none() {
            self.create(changes).await?;
            self.state = None;
        }
        let mut state = self
            .load()
            .await?
            .cloned()
            .ok_or_else(|| self.layout_err("table vanished while it was created"))?;
        if let Some(l) = &state.latest {
            if !l.checkpoint.is_empty() && changes.checkpoint.is_covered_by(&l.checkpoint) {
                return Ok(CommitOutcome::AlreadyCommitted);
            }
        }
        self.roll_back_unfinished().await?;
        state.unfinished.clear();
        let table = self.table.clone();
        let props = state.props.clone();
        let current = state.latest.as_ref().map(|l| l.logical.clone());
        let merged: SchemaRef = Arc::new(match &current {
            Some(c) => merge_schemas(&table, c, &changes.schema)?,
            None => changes.schema.as_ref().clone(),
        });
        let rewrite_all = current
            .as_ref()
            .is_some_and(|c| **c != *merged && evolution_rewrites_rows(c, &merged));
        let key_columns = props.key_columns.clone();
        let keys = ChangedKeys::new(changes, &merged, &key_columns)?;
        let stored: SchemaRef = Arc::new(hschema::stored_schema(&merged));
        let file_schema: SchemaRef = Arc::new(hschema::file_schema(&stored));
        let column_err = |e: hschema::AvroError| HudiSinkError::Column {
            table: table.to_string(),
            column: e.column,
            message: e.message,
        };
        let avro = hschema::avro_schema(&props.name, &stored).map_err(column_err)?;
        let avro_file = hschema::avro_file_schema(&props.name, &stored).map_err(column_err)?;

        // The instant: planned, then in flight.
        let instant = timeline::next_instant_time(state.timeline.last_time(), chrono::Utc::now());
        let action = if changes.truncate {
            REPLACE_COMMIT
        } else {
            COMMIT
        };
        // The heartbeat first: another writer seeing the instant pending must find it live.
        let heartbeat = crate::heartbeat::Heartbeat::start(
            &self.store,
            &instant,
            &self.config.writer_id,
            std::time::Duration::from_millis(self.config.heartbeat_interval_ms),
        )
        .await?;
        for s in [State::Requested, State::Inflight] {
            let name = timeline::file_name(&instant, action, s);
            self.store
                .put(&files::join(HOODIE_DIR, &name), Bytes::new(), true)
                .await?;
        }

        // The changed record keys, for pruning by key range.
        let int_key = key_columns.len() == 1
            && stored
                .field_with_name(&key_columns[0])
                .is_ok_and(|f| f.data_type().is_integer())
            // The changed keys are taken from the logical columns: only when they are stored
            // as they are, so the numbers equal the footers' ranges.
            && merged.field_with_name(&key_columns[0]).is_ok_and(|f| {
                stored
                    .field_with_name(&key_columns[0])
                    .is_ok_and(|s| s.data_type() == f.data_type())
            });
        let changed = {
            let key_fields: Vec<_> = keys.key_fields().to_vec();
            let key_schema = Arc::new(Schema::new(key_fields.clone()));
            let upsert_keys = keys
                .upserts
                .project(
                    &key_fields
                        .iter()
                        .map(|f| merged.index_of(f.name()).expect("key in schema"))
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| cdc_core::Error::arrow("projecting keys", e))?;
            let delete_keys = RecordBatch::try_new(key_schema.clone(), keys.deletes.clone())
                .map_err(|e| cdc_core::Error::arrow("delete keys", e))?;
            let stored_keys: SchemaRef = Arc::new(hschema::stored_schema(&key_schema));
            // Text keys only when some file group has no numeric range to prune by.
            let need_text = !int_key
                || state
                    .groups
                    .values()
                    .any(|g| g.int_range.is_none() && g.rows > 0);
            let mut all = Vec::new();
            if need_text {
                for b in [upsert_keys, delete_keys] {
                    let b = to_storage(&b, &stored_keys)?;
                    all.extend(
                        record_keys(&b, &key_columns, props.partition_fields.len())
                            .map_err(|m| self.layout_err(m))?,
                    );
                }
            }
            match int_key.then(|| keys.first_key_ints()).flatten() {
                Some(ints) => KeyRanges::new(all).with_ints(ints),
                None => KeyRanges::new(all),
            }
        };

        let live: Vec<FileGroup> = state.groups.values().cloned().collect();
        let mut candidates = Vec::new();
        if !changes.truncate && (!changed.is_empty() || rewrite_all) {
            for g in &live {
                let numeric = g.int_range.and_then(|(a, b)| changed.count_in_ints(a, b));
                let in_range = match (&g.min_key, &g.max_key) {
                    _ if rewrite_all => None,
                    _ if numeric.is_some() => numeric,
                    (Some(a), Some(b)) => Some(changed.count_in(a, b)),
                    _ if g.rows == 0 => Some(0),
                    _ => None,
                };
                if in_range == Some(0) {
                    continue;
                }
                let read = if rewrite_all {
                    Read::Rewrite
                } else {
                    Read::Find {
                        probe: in_range.is_none_or(|n| n <= PROBE_AT_MOST_KEYS),
                    }
                };
                candidates.push((g.clone(), read));
            }
        }
        let ctx = Arc::new(Ctx {
            table: table.clone(),
            store: self.store.clone(),
            merged: merged.clone(),
            stored: stored.clone(),
            file_schema: file_schema.clone(),
            key_columns: key_columns.clone(),
            keys,
            changes: changes.clone(),
            partition_fields: props.partition_fields.clone(),
            hive_style: props.hive_style,
            avro_file,
            int_key: int_key.then(|| key_columns[0].clone()),
            instant: instant.clone(),
        });
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());

        // Pass 1: the file groups holding changed keys, each rewritten as soon as it is read.
        let first_new_idx = candidates.len();
        let n = ctx.keys.upserts.num_rows();
        let mut found = vec![false; n];
        let mut moved: Vec<RecordBatch> = Vec::new();
        let mut written: Vec<(WriteStat, FileGroup)> = Vec::new();
        let mut rows_deleted = 0u64;
        let task_ctx = ctx.clone();
        run_tasks(
            &table,
            candidates
                .into_iter()
                .enumerate()
                .map(|(idx, (g, read))| rewrite_group(task_ctx.clone(), g, read, idx)),
            parallelism,
            |r| {
                if let Some(r) = r {
                    for &j in &r.replaced_upserts {
                        found[j] = true;
                    }
                    rows_deleted += r.deleted;
                    moved.extend(r.moved);
                    written.push((r.stat, r.group));
                }
                Ok(())
            },
        )
        .await?;

        // Pass 2: new keys (and keys that moved partition) fill small file groups of their
        // partition, then new ones.
        let fresh: Vec<usize> = (0..n).filter(|&j| !found[j]).collect();
        let mut inserts = Vec::new();
        if !fresh.is_empty() {
            let empty = RecordBatch::new_empty(merged.clone());
            let resolved = resolve_upserts(changes, &ctx.keys, &empty, &vec![None; n])?;
            inserts.push(to_storage(&take(&resolved, &fresh)?, &stored)?);
        }
        inserts.extend(moved);
        let inserts = arrow_select::concat::concat_batches(&stored, &inserts)
            .map_err(|e| cdc_core::Error::arrow("collecting inserts", e))?;
        let rkeys = record_keys(&inserts, &key_columns, props.partition_fields.len())
            .map_err(|m| self.layout_err(m))?;
        let parts = partition_paths(&inserts, &props.partition_fields, props.hive_style)
            .map_err(|m| self.layout_err(m))?;
        let mut by_partition: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, p) in parts.iter().enumerate() {
            by_partition.entry(p.clone()).or_default().push(i);
        }
        let (total_size, total_rows) = live
            .iter()
            .filter(|g| g.rows > 0)
            .fold((0u64, 0u64), |(s, r), g| (s + g.size, r + g.rows));
        let avg = total_size
            .checked_div(total_rows)
            .map_or(self.config.record_size_estimate, |a| a.max(1));
        let max_size = self.config.max_file_size;
        let small = self.config.small_file_limit;
        let rewritten: std::collections::HashSet<String> =
            written.iter().map(|(_, g)| g.file_id.clone()).collect();
        let mut outputs: Vec<Output> = Vec::new();
        for (partition, rows) in by_partition {
            let mut rest: &[usize] = &rows;
            let fill = |o: &mut Output, rest: &mut &[usize]| -> cdc_core::Result<()> {
                let est = o.estimated_size(avg);
                let cap = (max_size.saturating_sub(est) / avg) as usize;
                let n = cap.min(rest.len());
                if n > 0 {
                    let keys = rest[..n].iter().map(|&i| rkeys[i].clone()).collect();
                    o.new_rows = Some((take(&inserts, &rest[..n])?, keys));
                    o.num_inserts = n;
                }
                *rest = &rest[n..];
                Ok(())
            };
            if !changes.truncate {
                let mut small_groups: Vec<&FileGroup> = live
                    .iter()
                    .filter(|g| {
                        g.partition == partition
                            && g.size < small
                            && !rewritten.contains(&g.file_id)
                    })
                    .collect();
                small_groups.sort_by_key(|g| g.size);
                for g in small_groups {
                    if rest.is_empty() {
                        break;
                    }
                    let t = process(ctx.clone(), g.clone(), Read::Carry)
                        .await?
                        .expect("carried");
                    let mut o = Output {
                        file_id: g.file_id.clone(),
                        partition: g.partition.clone(),
                        dir: g.dir.clone(),
                        existing: Some(t.group),
                        kept: Some(t.kept),
                        new_rows: None,
                        num_updates: 0,
                        num_inserts: 0,
                        deleted: 0,
                    };
                    fill(&mut o, &mut rest)?;
                    if o.num_inserts > 0 {
                        outputs.push(o);
                    }
                }
            }
            let dir = live
                .iter()
                .find(|g| g.partition == partition)
                .map_or_else(|| self.store.path(&partition), |g| g.dir.clone());
            while !rest.is_empty() {
                let mut o = Output {
                    existing: None,
                    file_id: format!("{}-0", uuid::Uuid::new_v4()),
                    partition: partition.clone(),
                    dir: dir.clone(),
                    kept: None,
                    new_rows: None,
                    num_updates: 0,
                    num_inserts: 0,
                    deleted: 0,
                };
                let before = rest.len();
                fill(&mut o, &mut rest)?;
                if rest.len() == before {
                    // A record bigger than a whole file: one per file.
                    let keys = vec![rkeys[rest[0]].clone()];
                    o.new_rows = Some((take(&inserts, &rest[..1])?, keys));
                    o.num_inserts = 1;
                    rest = &rest[1..];
                }
                outputs.push(o);
            }
        }
        run_tasks(
            &table,
            outputs
                .into_iter()
                .enumerate()
                .map(|(k, o)| write_output(task_ctx.clone(), first_new_idx + k, o)),
            parallelism,
            |w| {
                written.push(w);
                Ok(())
            },
        )
        .await?;

        // Partition metadata of new partitions (Spark discovers partitions by it). A
        // non-partitioned table has it at the root (depth 0): Hive's and Athena's
        // `HoodieROTablePathFilter` and Spark's listing need it to pick the latest base files.
        if props.partition_fields.is_empty() {
            if !self.store.exists(files::PARTITION_METADATA).await? {
                let text = format!("#partition metadata\ncommitTime={instant}\npartitionDepth=0\n");
                self.store
                    .put(files::PARTITION_METADATA, Bytes::from(text), false)
                    .await?;
            }
        } else {
            let new: BTreeMap<String, object_store::path::Path> = written
                .iter()
                .filter(|(_, g)| !live.iter().any(|l| l.partition == g.partition))
                .map(|(_, g)| (g.partition.clone(), g.dir.clone()))
                .collect();
            for (p, dir) in new {
                let depth = p.split('/').count();
                let text =
                    format!("#partition metadata\ncommitTime={instant}\npartitionDepth={depth}\n");
                let location = dir.join(files::PARTITION_METADATA);
                object_store::ObjectStoreExt::put(
                    self.store.store.as_ref(),
                    &location,
                    Bytes::from(text).into(),
                )
                .await
                .map_err(|source| HudiSinkError::Store {
                    table: table.to_string(),
                    path: files::join(&p, files::PARTITION_METADATA),
                    context: "writing",
                    source: Box::new(source),
                })?;
            }
        }
        let mut stats: BTreeMap<String, Vec<WriteStat>> = BTreeMap::new();
        let mut new_groups = Vec::new();
        for (stat, group) in written {
            stats.entry(group.partition.clone()).or_default().push(stat);
            new_groups.push(group);
        }
        if self.fail_now(FailPoint::AfterDataFiles) {
            return Err(HudiSinkError::FailPoint {
                table: table.to_string(),
                point: FailPoint::AfterDataFiles,
            });
        }
        if let Some(hook) = &self.config.before_commit {
            (hook.0)().await;
        }
        if let Some(message) = self.conflict(&state, &instant, action, &new_groups).await? {
            // Undo this attempt; `apply` retries on the new table state.
            for g in &new_groups {
                self.store.delete_at(&g.location(), &g.path()).await?;
            }
            for s in [State::Inflight, State::Requested] {
                let name = timeline::file_name(&instant, action, s);
                self.store.delete(&files::join(HOODIE_DIR, &name)).await?;
            }
            heartbeat.stop().await?;
            return Err(HudiSinkError::Conflict {
                table: table.to_string(),
                instant,
                message,
            });
        }

        // Complete the instant.
        let mut checkpoint = state
            .latest
            .as_ref()
            .map(|l| l.checkpoint.clone())
            .unwrap_or_default();
        checkpoint.merge(&changes.checkpoint);
        let replaced_ids: BTreeMap<String, Vec<String>> = if changes.truncate {
            let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for g in &live {
                m.entry(g.partition.clone())
                    .or_default()
                    .push(g.file_id.clone());
            }
            m
        } else {
            BTreeMap::new()
        };
        let meta = CommitMetadata {
            partition_to_write_stats: stats,
            partition_to_replace_file_ids: changes.truncate.then(|| replaced_ids.clone()),
            compacted: false,
            extra_metadata: BTreeMap::from([
                (AVRO_SCHEMA_KEY.to_string(), avro),
                (CHECKPOINT_KEY.to_string(), checkpoint.to_json()),
                (
                    ARROW_SCHEMA_KEY.to_string(),
                    serde_json::to_string(merged.as_ref()).expect("schemas serialise"),
                ),
            ]),
            operation_type: if changes.truncate {
                "INSERT_OVERWRITE_TABLE".into()
            } else {
                "UPSERT".into()
            },
        };
        let body = serde_json::to_vec_pretty(&meta).expect("metadata serialises");
        let completed = timeline::file_name(&instant, action, State::Completed);
        self.store
            .put(
                &files::join(HOODIE_DIR, &completed),
                Bytes::from(body),
                true,
            )
            .await?;
        self.commits += 1;
        if let Err(e) = heartbeat.stop().await {
            // It expires on its own.
            tracing::warn!(table = %table, error = %e, "deleting a heartbeat failed");
        }

        // The new state.
        state.timeline.instants.push(Instant {
            time: instant.clone(),
            action: action.to_string(),
            state: State::Completed,
        });
        if changes.truncate {
            for ids in replaced_ids.values() {
                for id in ids {
                    state.groups.remove(id);
                    state.replaced.insert(id.clone(), instant.clone());
                }
            }
        }
        for g in new_groups {
            state
                .versions
                .entry(g.file_id.clone())
                .or_default()
                .push(FileVersion {
                    location: g.location(),
                    path: g.path(),
                    instant: instant.clone(),
                });
            state.groups.insert(g.file_id.clone(), g);
        }
        state.latest = Some(Latest {
            logical: merged,
            checkpoint,
        });
        self.clean(&mut state).await;
        self.state = Some(state);
        if self.fail_now(FailPoint::AfterCommit) {
            return Err(HudiSinkError::FailPoint {
                table: table.to_string(),
                point: FailPoint::AfterCommit,
            });
        }
        tracing::debug!(table = %table, instant = %instant, upserts = n, rows_deleted, "hudi commit");
        Ok(CommitOutcome::Committed {
            version: instant,
            rows_written: n as u64,
            rows_deleted,
        })
    }

    /// Whether another writer got in the way of instant `instant`: it completed a write after
    /// this attempt loaded the table, or rolled this instant back. (A check, not a lock: two
    /// writers checking at the same moment can both pass; Hudi itself needs a lock provider
    /// for that.)
    async fn conflict(
        &self,
        state: &crate::TableState,
        instant: &str,
        action: &str,
        written: &[FileGroup],
    ) -> Result<Option<String>> {
        let inflight = timeline::file_name(instant, action, State::Inflight);
        if !self
            .store
            .exists(&files::join(HOODIE_DIR, &inflight))
            .await?
        {
            return Ok(Some("another writer rolled this instant back".into()));
        }
        let checks: Vec<_> = written
            .iter()
            .map(|g| {
                let (store, location, path) = (self.store.clone(), g.location(), g.path());
                async move {
                    let there = store.exists_at(&location, &path).await?;
                    Ok::<_, HudiSinkError>((!there).then_some(path))
                }
            })
            .collect();
        let missing: Vec<Result<Option<String>>> = futures::stream::iter(checks)
            .buffer_unordered(16)
            .collect()
            .await;
        for m in missing {
            if let Some(path) = m? {
                return Ok(Some(format!(
                    "base file {path} of this instant vanished (another writer rolled it back)"
                )));
            }
        }
        // Instant files sort by time: list only those after the last one we saw.
        let after = format!("{}.~", state.timeline.last_time().unwrap_or("0"));
        let names = self.store.list_names_after(HOODIE_DIR, &after).await?;
        let newer = Timeline::from_names(names.iter().map(String::as_str));
        let other = newer
            .completed_writes()
            .find(|i| i.time != instant && !state.timeline.is_completed_write(&i.time))
            .map(|i| format!("another writer completed instant {} meanwhile", i.time));
        Ok(other)
    }

    /// Deletes base files no query as of the last `commits_retained` file-changing commits
    /// (or started within `retain_hours`) can read (Hudi's KEEP_LATEST_COMMITS policy).
    /// Failures are logged, never returned: the commit is done, the state still knows every
    /// version not deleted, and the next clean tries again.
    async fn clean(&self, state: &mut crate::TableState) {
        let cfg = &self.config;
        let Some(earliest) = crate::clean::earliest_retained(
            state,
            cfg.commits_retained,
            cfg.retain_hours,
            chrono::Utc::now(),
        ) else {
            return;
        };
        let doomed = crate::clean::doomed(state, &earliest);
        let store = self.store.clone();
        let result = crate::clean::delete_versions(state, doomed, |v| {
            let store = store.clone();
            async move { store.delete_at(&v.location, &v.path).await }
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(table = %self.table, error = %e, "cleaning failed; retried after the next commit");
        }
    }
}

/// Runs `tasks` on the runtime, at most `parallelism` at once, handing each result to `each`
/// as it completes. On the first error (of a task or of `each`) the tasks still running are
/// aborted and awaited before the error is returned, so no base file lands after it (where a
/// rollback would miss it).
async fn run_tasks<T, F>(
    table: &TableId,
    tasks: impl IntoIterator<Item = F>,
    parallelism: usize,
    mut each: impl FnMut(T) -> Result<()>,
) -> Result<()>
where
    F: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut tasks = tasks.into_iter();
    let mut result = Ok(());
    loop {
        while set.len() < parallelism.max(1) {
            match tasks.next() {
                Some(t) => {
                    set.spawn(t);
                }
                None => break,
            }
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let r = joined.map_err(|e| HudiSinkError::Layout {
            table: table.to_string(),
            message: format!("file task failed: {e}"),
        });
        if let Err(e) = r.and_then(|r| r).and_then(&mut each) {
            result = Err(e);
            break;
        }
    }
    if result.is_err() {
        set.shutdown().await;
    }
    result
}

/// Writes one base file: carried-over rows (their meta columns kept, file name updated) and
/// the updated and inserted rows with new meta columns.
#[allow(clippy::too_many_arguments)]
async fn write_output(ctx: Arc<Ctx>, idx: usize, o: Output) -> Result<(WriteStat, FileGroup)> {
    let (instant, file_schema) = (&ctx.instant, &ctx.file_schema);
    let name = BaseFileName {
        file_id: o.file_id.clone(),
        write_token: format!("{idx}-0-0"),
        instant: instant.clone(),
    }
    .name();
    let path = files::join(&o.partition, &name);
    let location = o.dir.clone().join(name.as_str());
    let err = |message: String| HudiSinkError::BaseFile {
        table: ctx.table.to_string(),
        path: path.clone(),
        message,
    };
    let mut parts: Vec<RecordBatch> = Vec::new();
    if let Some(kept) = &o.kept {
        let n = kept.num_rows();
        let file_col = file_schema.index_of(FILE_NAME).expect("meta column");
        let mut columns = kept.columns().to_vec();
        columns[file_col] = Arc::new(StringArray::from(vec![name.as_str(); n]));
        parts.push(
            RecordBatch::try_new(file_schema.clone(), columns).map_err(|e| err(e.to_string()))?,
        );
    }
    if let Some((data, keys)) = &o.new_rows {
        let m = data.num_rows();
        let seqno: Vec<String> = (0..m).map(|r| format!("{instant}_{idx}_{r}")).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![instant.as_str(); m])),
            Arc::new(StringArray::from(seqno)),
            Arc::new(StringArray::from_iter_values(keys)),
            Arc::new(StringArray::from(vec![o.partition.as_str(); m])),
            Arc::new(StringArray::from(vec![name.as_str(); m])),
        ];
        columns.extend(data.columns().iter().cloned());
        parts.push(
            RecordBatch::try_new(file_schema.clone(), columns).map_err(|e| err(e.to_string()))?,
        );
    }
    let batch = arrow_select::concat::concat_batches(file_schema, &parts)
        .map_err(|e| err(e.to_string()))?;
    let rows = batch.num_rows() as u64;
    let record_key_col = batch.column_by_name(RECORD_KEY).expect("meta column");
    let record_key_col = record_key_col
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("utf8 meta column");
    let mut range: Option<(&str, &str)> = None;
    for k in record_key_col.iter().flatten() {
        range = Some(match range {
            None => (k, k),
            Some((lo, hi)) => (lo.min(k), hi.max(k)),
        });
    }
    let (min_key, max_key) = match range {
        Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
        None => (None, None),
    };
    let int_range = ctx
        .int_key
        .as_deref()
        .and_then(|k| batch.column_by_name(k))
        .and_then(int_key_range);
    let mut footer = vec![
        (files::AVRO_SCHEMA.to_string(), ctx.avro_file.clone()),
        ("writer.model.name".to_string(), "avro".to_string()),
    ];
    if let (Some(a), Some(b)) = (&min_key, &max_key) {
        footer.push((files::MIN_RECORD_KEY.to_string(), a.clone()));
        footer.push((files::MAX_RECORD_KEY.to_string(), b.clone()));
    }
    if let Some((a, b)) = int_range {
        footer.push((files::INT_KEY_RANGE.to_string(), format!("{a},{b}")));
    }
    let started = std::time::Instant::now();
    footer.push((files::PARTITION_PATH_KEY.to_string(), o.partition.clone()));
    let size = ctx
        .store
        .write_base_file(&location, &path, batch, footer)
        .await?;
    let millis = started.elapsed().as_millis() as i64;
    let stat = WriteStat {
        file_id: o.file_id.clone(),
        path: Some(path.clone()),
        cdc_stats: None,
        prev_commit: o
            .existing
            .as_ref()
            .map_or_else(|| "null".to_string(), |g| g.instant.clone()),
        num_writes: rows as i64,
        num_deletes: o.deleted as i64,
        num_update_writes: o.num_updates as i64,
        num_inserts: o.num_inserts as i64,
        total_write_bytes: size as i64,
        total_write_errors: 0,
        temp_path: None,
        partition_path: Some(o.partition.clone()),
        file_size_in_bytes: size as i64,
        runtime_stats: Some(RuntimeStats {
            total_scan_time: 0,
            total_upsert_time: if o.existing.is_some() { millis } else { 0 },
            total_create_time: if o.existing.is_some() { 0 } else { millis },
        }),
        ..WriteStat::default()
    };
    let group = FileGroup {
        partition: o.partition,
        dir: o.dir,
        file_id: o.file_id,
        file_name: name,
        instant: instant.clone(),
        size,
        rows,
        min_key,
        max_key,
        int_range,
    };
    Ok((stat, group))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Resolving only a file group's upserts gives the same rows as resolving all of them and
    /// taking the group's (unchanged cells from the old rows, or the default when the table's
    /// value is obsolete).
    #[test]
    fn group_resolution_equals_full_resolution() {
        use arrow_array::{Int32Array, StringArray};
        use arrow_schema::{DataType, Field};
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let upserts = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec!["n1", "n2", "n3", "n4"])),
            ],
        )
        .unwrap();
        let changes = ChangeSet {
            table: TableId::new("public", "t"),
            schema: schema.clone(),
            key_columns: Arc::from(vec!["id".to_string()]),
            truncate: false,
            upserts,
            upsert_unchanged: cdc_core::model::UnchangedMask::new(vec![
                None,
                Some(BooleanArray::from(vec![true, false, true, true])),
            ]),
            ignore_table_values: BooleanArray::from(vec![false, false, false, true]),
            deletes: RecordBatch::new_empty(Arc::new(Schema::new(vec![schema.field(0).clone()]))),
            checkpoint: Default::default(),
            events: 4,
            max_source_ts_ms: None,
        };
        let keys = ChangedKeys::new(&changes, &schema, &["id".to_string()]).unwrap();
        // The group holds the old rows of upserts 3, 0 and 2 (in that order).
        let js = [3, 0, 2];
        let old = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![4, 1, 3])),
                Arc::new(StringArray::from(vec!["old4", "old1", "old3"])),
            ],
        )
        .unwrap();
        let mut old_row = vec![None; 4];
        for (i, &j) in js.iter().enumerate() {
            old_row[j] = Some(i);
        }
        let full = resolve_upserts(&changes, &keys, &old, &old_row).unwrap();
        let expected = take(&full, &js).unwrap();
        let got = resolve_group(&changes, &keys, &schema, &js, &old).unwrap();
        assert_eq!(got, expected);
        let names = got
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(names.value(1), "old1");
        assert_eq!(names.value(2), "old3");
        assert!(names.is_null(0), "obsolete table value: the default");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_task_stops_the_others() {
        let table = TableId::new("public", "t");
        let landed = Arc::new(AtomicBool::new(false));
        let slow_landed = landed.clone();
        let failing = table.clone();
        let tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>> = vec![
            Box::pin(async move {
                Err(HudiSinkError::Layout {
                    table: failing.to_string(),
                    message: "disk full".into(),
                })
            }),
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                // A base file written after the attempt was given up.
                slow_landed.store(true, Ordering::SeqCst);
                Ok(())
            }),
        ];
        let err = run_tasks(&table, tasks, 2, |()| Ok(())).await.unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert!(
            !landed.load(Ordering::SeqCst),
            "a task kept running after the error"
        );
    }
}
