//! Finding the rows a change set touches: (data file, row position) of every changed key.
//!
//! Candidate data files are pruned with their manifest lower/upper bounds of the first key
//! column (integer and string keys); candidates are read for their key columns only, rows
//! already removed by earlier position deletes are skipped, and only files that hold an
//! upserted key with unchanged (TOAST) cells are read whole, for the old values of those rows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_row::RowConverter;
use arrow_schema::{Schema, SchemaRef};
use cdc_core::fold::key_converter;
use cdc_core::model::TableId;
use cdc_core::schema::{cast_column, evolve_batch};
use cdc_core::sink::upsert::{ChangedKeys, SortedInts, SortedStrings, Touch};
use cdc_core::storage::from_storage;
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, PrimitiveLiteral, TableMetadata};

use crate::error::{IcebergSinkError, Result};
use crate::files::{may_reference, read_parquet, Positions};
use crate::rewrite::RollingWriter;
use crate::table::{FileCache, LiveFile, Loaded, CHECKPOINT_SUMMARY};
use futures::StreamExt;

/// What a change set does to the table's existing rows.
#[derive(Debug, Default)]
pub(crate) struct Located {
    /// Rows to delete by position.
    pub positions: Positions,
    /// Old rows of upserted keys (merged logical schema), when unchanged cells need them.
    pub old: Option<RecordBatch>,
    /// Per upsert: its old row in `old`.
    pub old_row: Vec<Option<usize>>,
    /// Rows removed by deletes.
    pub deleted: u64,
}

/// Sorted values of the first key column, for pruning files by their manifest bounds. Integer
/// keys are pruned in every file; string keys only in files this sink wrote (added by a
/// snapshot carrying its checkpoint), whose string bounds are exact: another writer's
/// truncated bounds are not always widened to hold every value. Other key types read every
/// file's key columns.
pub(crate) struct KeyRanges {
    field_id: Option<i32>,
    sorted: SortedKeys,
}

enum SortedKeys {
    Ints(SortedInts),
    Strings {
        sorted: SortedStrings,
        /// Snapshots this sink committed: their files' string bounds are exact.
        own_snapshots: HashSet<i64>,
    },
    Unknown,
}

impl KeyRanges {
    pub fn new(keys: &ChangedKeys, field_id: Option<i32>, metadata: &TableMetadata) -> Self {
        let sorted = match (keys.first_key_ints(), keys.first_key_strings()) {
            (Some(ints), _) => SortedKeys::Ints(ints),
            (None, Some(sorted)) => SortedKeys::Strings {
                sorted,
                own_snapshots: metadata
                    .snapshots()
                    .filter(|s| {
                        s.summary()
                            .additional_properties
                            .contains_key(CHECKPOINT_SUMMARY)
                    })
                    .map(|s| s.snapshot_id())
                    .collect(),
            },
            (None, None) => SortedKeys::Unknown,
        };
        KeyRanges { field_id, sorted }
    }

    /// How many changed keys fall in the file's key range; `None` when unknown.
    pub fn keys_in_range(&self, file: &LiveFile) -> Option<usize> {
        let id = self.field_id?;
        let df = &file.entry.data_file;
        let lower = df.lower_bounds().get(&id)?.literal();
        let upper = df.upper_bounds().get(&id)?.literal();
        match (&self.sorted, lower, upper) {
            (SortedKeys::Ints(sorted), _, _) => {
                let as_i64 = |d: &PrimitiveLiteral| match d {
                    PrimitiveLiteral::Int(v) => Some(i64::from(*v)),
                    PrimitiveLiteral::Long(v) => Some(*v),
                    _ => None,
                };
                Some(sorted.count_in(as_i64(lower)?, as_i64(upper)?))
            }
            (
                SortedKeys::Strings {
                    sorted,
                    own_snapshots,
                },
                PrimitiveLiteral::String(min),
                PrimitiveLiteral::String(max),
            ) if file
                .entry
                .snapshot_id
                .is_some_and(|s| own_snapshots.contains(&s)) =>
            {
                Some(sorted.count_in(min, max))
            }
            _ => None,
        }
    }
}

/// A stored batch (a projection, possibly of an older schema) in logical types: each column it
/// has converted to the merged logical type of the same name.
pub(crate) fn logical(batch: &RecordBatch, merged: &SchemaRef) -> cdc_core::Result<RecordBatch> {
    let fields: Vec<_> = merged
        .fields()
        .iter()
        .filter(|f| batch.schema().index_of(f.name()).is_ok())
        .cloned()
        .collect();
    let logical = Arc::new(Schema::new(fields));
    from_storage(batch, &logical)
}

/// Keys removed by equality-delete files, each with the highest data sequence number of a
/// file deleting it: a data row is gone when its key is here with a sequence number above the
/// row's file.
pub(crate) struct EqualityIndex {
    table: TableId,
    key_schema: SchemaRef,
    converter: RowConverter,
    seqs: HashMap<Box<[u8]>, i64>,
}

impl EqualityIndex {
    /// The index of the table's equality-delete files, `None` when it has none.
    pub async fn load(
        table: &TableId,
        io: &FileIO,
        loaded: &Loaded,
        merged: &SchemaRef,
    ) -> Result<Option<Self>> {
        let files: Vec<&LiveFile> = loaded
            .delete_files
            .iter()
            .filter(|f| f.content() == DataContentType::EqualityDeletes)
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let name = table.to_string();
        let key_schema: SchemaRef = Arc::new(Schema::new(
            loaded
                .key_columns
                .iter()
                .map(|k| {
                    merged
                        .field_with_name(k)
                        .cloned()
                        .map_err(|e| cdc_core::Error::arrow(format!("key column `{k}`"), e))
                })
                .collect::<cdc_core::Result<Vec<_>>>()?,
        ));
        let indices: Vec<usize> = (0..key_schema.fields().len()).collect();
        let converter = key_converter(table, &key_schema, &indices)?;
        let mut index = EqualityIndex {
            table: table.clone(),
            key_schema,
            converter,
            seqs: HashMap::new(),
        };
        for file in files {
            let ids = file.entry.data_file.equality_ids().unwrap_or_default();
            let schema = loaded.metadata.current_schema();
            let columns: Vec<String> = ids
                .iter()
                .filter_map(|id| schema.name_by_field_id(*id).map(str::to_string))
                .collect();
            if columns != loaded.key_columns {
                return Err(crate::error::IcebergSinkError::Layout {
                    table: name,
                    message: format!(
                        "equality-delete file `{}` deletes by {columns:?}, not by the key {:?}",
                        file.path(),
                        loaded.key_columns
                    ),
                });
            }
            let rows = read_parquet(&name, io, file.path(), Some(&columns)).await?;
            let encoded = index.encode(&logical(&rows, merged)?)?;
            for row in encoded.iter() {
                let seq = index
                    .seqs
                    .entry(Box::from(row.data()))
                    .or_insert(file.seq());
                *seq = (*seq).max(file.seq());
            }
        }
        Ok(Some(index))
    }

    fn encode(&self, rows: &RecordBatch) -> Result<arrow_row::Rows> {
        let cols = self
            .key_schema
            .fields()
            .iter()
            .map(|f| {
                let col =
                    rows.column_by_name(f.name())
                        .ok_or_else(|| cdc_core::Error::MissingKey {
                            table: self.table.to_string(),
                            message: format!("rows lack key column `{}`", f.name()),
                        })?;
                cast_column(&self.table, f, col)
            })
            .collect::<cdc_core::Result<Vec<_>>>()?;
        Ok(self
            .converter
            .convert_columns(&cols)
            .map_err(|e| cdc_core::Error::arrow("encoding keys", e))?)
    }

    /// Marks rows of a data file with sequence number `seq` that equality deletes removed.
    pub fn apply(&self, rows: &RecordBatch, seq: i64, live: &mut [bool]) -> Result<()> {
        let encoded = self.encode(rows)?;
        for (i, row) in encoded.iter().enumerate() {
            if self.seqs.get(row.data()).is_some_and(|&d| d > seq) {
                live[i] = false;
            }
        }
        Ok(())
    }
}

/// Positions deleted so far, for the data files in `wanted`.
pub(crate) async fn existing_deletes(
    table: &str,
    io: &FileIO,
    loaded: &Loaded,
    wanted: &[&LiveFile],
    cache: &mut FileCache,
) -> Result<HashMap<String, Vec<i64>>> {
    let paths: HashSet<&str> = wanted.iter().map(|f| f.path()).collect();
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for d in &loaded.delete_files {
        if d.content() != DataContentType::PositionDeletes
            || !paths.iter().any(|p| may_reference(&d.entry.data_file, p))
        {
            continue;
        }
        let deletes = cache.deletes(table, io, &d.entry.data_file).await?;
        for (path, positions) in deletes.iter() {
            if paths.contains(path.as_str()) {
                out.entry(path.clone()).or_default().extend(positions);
            }
        }
    }
    Ok(out)
}

/// Rows of a file that are still live, as a keep-mask.
pub(crate) fn live_mask(rows: usize, deleted: Option<&Vec<i64>>) -> Vec<bool> {
    let mut live = vec![true; rows];
    for &p in deleted.into_iter().flatten() {
        if let Some(slot) = usize::try_from(p).ok().and_then(|p| live.get_mut(p)) {
            *slot = false;
        }
    }
    live
}

/// What every probe task of one change set shares.
struct ProbeContext {
    table: TableId,
    io: FileIO,
    keys: Arc<ChangedKeys>,
    merged: SchemaRef,
    key_columns: Vec<String>,
    deleted: HashMap<String, Vec<i64>>,
    equality: Option<EqualityIndex>,
    need_old: bool,
}

/// What one candidate file holds of the change set.
struct Probe {
    path: String,
    positions: Vec<i64>,
    deleted: u64,
    /// Old rows of upserted keys, with the upsert index of each.
    old: Option<(RecordBatch, Vec<usize>)>,
}

/// Reads one candidate's key columns (and, when unchanged cells need them, the old rows of
/// upserted keys).
async fn probe(ctx: Arc<ProbeContext>, file: LiveFile) -> Result<Option<Probe>> {
    let name = ctx.table.to_string();
    let key_rows = logical(
        &read_parquet(&name, &ctx.io, file.path(), Some(&ctx.key_columns)).await?,
        &ctx.merged,
    )?;
    let touches = ctx.keys.find(&key_rows)?;
    let mut live = live_mask(touches.len(), ctx.deleted.get(file.path()));
    if let Some(eq) = &ctx.equality {
        eq.apply(&key_rows, file.seq(), &mut live)?;
    }
    let mut positions = Vec::new();
    let mut upserted: Vec<(u32, usize)> = Vec::new();
    let mut deleted = 0;
    for (i, t) in touches.iter().enumerate() {
        if !live[i] {
            continue;
        }
        match t {
            None => {}
            Some(Touch::Delete) => {
                positions.push(i as i64);
                deleted += 1;
            }
            Some(Touch::Upsert(j)) => {
                positions.push(i as i64);
                upserted.push((i as u32, *j));
            }
        }
    }
    if positions.is_empty() {
        return Ok(None);
    }
    let old = if ctx.need_old && !upserted.is_empty() {
        let rows = read_parquet(&name, &ctx.io, file.path(), None).await?;
        let rows = evolve_batch(&ctx.table, &logical(&rows, &ctx.merged)?, &ctx.merged)?;
        let take = UInt32Array::from(upserted.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        let taken = arrow_select::take::take_record_batch(&rows, &take)
            .map_err(|e| cdc_core::Error::arrow("collecting old rows", e))?;
        Some((taken, upserted.iter().map(|(_, j)| *j).collect()))
    } else {
        None
    };
    Ok(Some(Probe {
        path: file.path().to_string(),
        positions,
        deleted,
        old,
    }))
}

/// Finds the (file, position) of every changed key in the live rows of `loaded`. Candidate
/// files are probed concurrently, one task per core.
pub(crate) async fn locate(
    table: &TableId,
    io: &FileIO,
    loaded: &Loaded,
    keys: &Arc<ChangedKeys>,
    merged: &SchemaRef,
    need_old: bool,
    cache: &mut FileCache,
) -> Result<Located> {
    let name = table.to_string();
    let mut located = Located {
        old_row: vec![None; keys.upserts.num_rows()],
        ..Located::default()
    };
    if keys.is_empty() {
        return Ok(located);
    }
    let key_field_id = keys
        .key_fields()
        .first()
        .and_then(|f| loaded.metadata.current_schema().field_id_by_name(f.name()));
    let ranges = KeyRanges::new(keys, key_field_id, &loaded.metadata);
    let candidates: Vec<&LiveFile> = loaded
        .data_files
        .iter()
        .filter(|f| ranges.keys_in_range(f) != Some(0))
        .collect();
    if candidates.is_empty() {
        return Ok(located);
    }
    let ctx = Arc::new(ProbeContext {
        table: table.clone(),
        io: io.clone(),
        keys: keys.clone(),
        merged: merged.clone(),
        key_columns: keys.key_fields().iter().map(|f| f.name().clone()).collect(),
        deleted: existing_deletes(&name, io, loaded, &candidates, cache).await?,
        equality: EqualityIndex::load(table, io, loaded, merged).await?,
        need_old,
    });
    let owned: Vec<LiveFile> = candidates.into_iter().cloned().collect();
    let tasks = owned.into_iter().map(|file: LiveFile| {
        let (table, path) = (name.clone(), file.path().to_string());
        let task = tokio::spawn(probe(ctx.clone(), file));
        async move {
            task.await.map_err(|e| IcebergSinkError::File {
                table,
                path,
                message: format!("probe task failed: {e}"),
            })?
        }
    });
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut probes = futures::stream::iter(tasks).buffered(parallel);
    let mut old_parts: Vec<RecordBatch> = Vec::new();
    let mut old_count = 0usize;
    while let Some(found) = probes.next().await {
        let Some(found) = found? else { continue };
        located.deleted += found.deleted;
        if let Some((rows, upserts)) = found.old {
            for (k, j) in upserts.iter().enumerate() {
                located.old_row[*j] = Some(old_count + k);
            }
            old_count += rows.num_rows();
            old_parts.push(rows);
        }
        located.positions.insert(found.path, found.positions);
    }
    if need_old {
        located.old = Some(
            arrow_select::concat::concat_batches(merged, &old_parts)
                .map_err(|e| cdc_core::Error::arrow("collecting old rows", e))?,
        );
    }
    Ok(located)
}

/// Every live row of the table (merged logical schema) minus the rows the change set touches,
/// handed to `out` one data file at a time, and the old rows of upserted keys: for commits
/// that rewrite the whole table (a new column with a non-null default, compaction).
pub(crate) async fn read_all_live(
    table: &TableId,
    io: &FileIO,
    loaded: &Loaded,
    keys: Option<&ChangedKeys>,
    merged: &SchemaRef,
    cache: &mut FileCache,
    out: &mut RollingWriter<'_>,
) -> Result<Located> {
    let name = table.to_string();
    let mut located = Located {
        old_row: vec![None; keys.map_or(0, |k| k.upserts.num_rows())],
        ..Located::default()
    };
    let files: Vec<&LiveFile> = loaded.data_files.iter().collect();
    let deleted = existing_deletes(&name, io, loaded, &files, cache).await?;
    let equality = EqualityIndex::load(table, io, loaded, merged).await?;
    let mut old_parts = Vec::new();
    let mut old_count = 0usize;
    for file in files {
        let rows = read_parquet(&name, io, file.path(), None).await?;
        let rows = evolve_batch(table, &logical(&rows, merged)?, merged)?;
        let mut keep = live_mask(rows.num_rows(), deleted.get(file.path()));
        if let Some(eq) = &equality {
            eq.apply(&rows, file.seq(), &mut keep)?;
        }
        if let Some(keys) = keys {
            let mut taken = Vec::new();
            for (i, t) in keys.find(&rows)?.into_iter().enumerate() {
                if !keep[i] {
                    continue;
                }
                match t {
                    None => {}
                    Some(Touch::Delete) => {
                        keep[i] = false;
                        located.deleted += 1;
                    }
                    Some(Touch::Upsert(j)) => {
                        keep[i] = false;
                        located.old_row[j] = Some(old_count + taken.len());
                        taken.push(i as u32);
                    }
                }
            }
            old_count += taken.len();
            old_parts.push(
                arrow_select::take::take_record_batch(&rows, &UInt32Array::from(taken))
                    .map_err(|e| cdc_core::Error::arrow("collecting old rows", e))?,
            );
        }
        let kept = arrow_select::filter::filter_record_batch(&rows, &BooleanArray::from(keep))
            .map_err(|e| cdc_core::Error::arrow("dropping deleted rows", e))?;
        drop(rows);
        out.push(kept).await?;
    }
    located.old = Some(
        arrow_select::concat::concat_batches(merged, &old_parts)
            .map_err(|e| cdc_core::Error::arrow("collecting old rows", e))?,
    );
    Ok(located)
}

/// Copy-on-write: the rows of every data file `positions` names, minus those positions and the
/// rows earlier position deletes removed, and the files themselves (to remove).
pub(crate) async fn read_kept(
    table: &TableId,
    io: &FileIO,
    loaded: &Loaded,
    positions: &Positions,
    merged: &SchemaRef,
    cache: &mut FileCache,
) -> Result<(RecordBatch, Vec<LiveFile>)> {
    let name = table.to_string();
    let files: Vec<&LiveFile> = loaded
        .data_files
        .iter()
        .filter(|f| positions.contains_key(f.path()))
        .collect();
    let deleted = existing_deletes(&name, io, loaded, &files, cache).await?;
    let equality = EqualityIndex::load(table, io, loaded, merged).await?;
    let mut parts = Vec::new();
    for file in &files {
        let rows = read_parquet(&name, io, file.path(), None).await?;
        let rows = evolve_batch(table, &logical(&rows, merged)?, merged)?;
        let mut keep = live_mask(rows.num_rows(), deleted.get(file.path()));
        if let Some(eq) = &equality {
            eq.apply(&rows, file.seq(), &mut keep)?;
        }
        for &p in positions.get(file.path()).into_iter().flatten() {
            if let Some(slot) = usize::try_from(p).ok().and_then(|p| keep.get_mut(p)) {
                *slot = false;
            }
        }
        parts.push(
            arrow_select::filter::filter_record_batch(&rows, &BooleanArray::from(keep))
                .map_err(|e| cdc_core::Error::arrow("dropping changed rows", e))?,
        );
    }
    let kept = arrow_select::concat::concat_batches(merged, &parts)
        .map_err(|e| cdc_core::Error::arrow("collecting kept rows", e))?;
    Ok((kept, files.into_iter().cloned().collect()))
}
