//! Folding: many change events of one table into their net effect per primary key.
//!
//! Events are taken in capture order (Kafka offset within a partition; partitions merged by the
//! database's commit order). Per key the last event wins: an upsert of the final row image, or a
//! delete. A truncate drops everything before it and tells the sink to empty the table first.
//! A primary-key change arrives from Debezium as a delete of the old key and a create of the
//! new one, and folds as such. Unchanged cells (TOAST placeholders, columns a row's schema did not
//! have) take the value of an earlier event of the same key in the batch when there is one;
//! otherwise they stay marked for the sink to resolve from the table.
//!
//! ```
//! # use cdc_core::fold::fold;
//! # use cdc_core::model::TableId;
//! // `batches` come from the decoder; see the crate's integration tests for a full example.
//! let set = fold(&TableId::new("public", "t"), None, None, Vec::new());
//! assert!(set.is_err()); // nothing to fold
//! ```

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::model::{ChangeBatch, Checkpoint, FirstOffsets, Op, TableId, UnchangedMask};
use crate::parallel::{map_pieces, PARALLEL_ROWS};
use crate::schema::{conform_batch_dropping, merge_schemas};
use crate::sink::TableSchema;

mod order;

pub use order::capture_order;
pub(crate) use order::{CaptureOrder, Events};

/// The net effect of a batch of events on one table: what a sink applies in one commit.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    /// Table.
    pub table: TableId,
    /// Schema of `upserts` (the table's schema merged with every event's schema).
    pub schema: SchemaRef,
    /// Primary-key columns.
    pub key_columns: Arc<[String]>,
    /// Empty the table before applying the rest.
    pub truncate: bool,
    /// Final row images to insert or replace, one per key.
    pub upserts: RecordBatch,
    /// Cells of `upserts` the source did not send: keep the table's value for keys that exist
    /// (unless `ignore_table_values` says that value is obsolete), else the column default.
    pub upsert_unchanged: UnchangedMask,
    /// Per upsert: `true` when the table's current row for the key (if any) is obsolete because
    /// the key was deleted or the table truncated earlier in the batch: its unchanged cells take
    /// the column default, never the table's value. The old row is still replaced, like any
    /// upsert's. (No flag says a key is absent from the table: Debezium delivers at least once,
    /// so even an insert can arrive again after a connector restart.)
    pub ignore_table_values: BooleanArray,
    /// Keys to delete (only the key columns), disjoint from the upserts' keys.
    pub deletes: RecordBatch,
    /// Positions of every event folded in: the checkpoint to commit with this change set.
    pub checkpoint: Checkpoint,
    /// The first position of each partition folded in: a table whose checkpoint is past one
    /// already holds part of this change set (empty: not checked).
    pub first_offsets: FirstOffsets,
    /// Number of events folded.
    pub events: usize,
    /// Latest `source.ts_ms` among the events, for lag reporting.
    pub max_source_ts_ms: Option<i64>,
    /// An SCD type 2 table's events, still to be merged with the versions the table holds
    /// (inside the commit attempt, see [`crate::shape::history`]); the set's rows are empty
    /// until then.
    pub history: Option<Arc<crate::shape::history::PendingHistory>>,
}

impl ChangeSet {
    /// An error when `committed` (the table's checkpoint) already holds part of this change set
    /// (see [`Error::StaleBatch`]).
    pub fn check_not_stale(&self, committed: &Checkpoint) -> Result<()> {
        match committed.overlap(&self.first_offsets) {
            None => Ok(()),
            Some((topic, partition, first, next)) => Err(Error::StaleBatch {
                table: self.table.to_string(),
                topic: topic.to_string(),
                partition,
                first,
                committed: next,
            }),
        }
    }

    /// True when applying it changes no row (it may still advance the checkpoint).
    pub fn is_noop(&self) -> bool {
        !self.truncate
            && self.upserts.num_rows() == 0
            && self.deletes.num_rows() == 0
            && self.history.is_none()
    }

    /// Indices of the key columns in [`ChangeSet::schema`].
    pub fn key_indices(&self) -> Result<Vec<usize>> {
        key_indices(&self.table, &self.schema, &self.key_columns)
    }
}

/// Indices of `keys` in `schema`, or an error naming the missing one.
pub fn key_indices(table: &TableId, schema: &Schema, keys: &[String]) -> Result<Vec<usize>> {
    keys.iter()
        .map(|k| {
            schema.index_of(k).map_err(|_| Error::MissingKey {
                table: table.to_string(),
                message: format!("key column `{k}` is not in the schema"),
            })
        })
        .collect()
}

/// A row converter over the key columns of `schema`, for hashing and comparing keys.
pub fn key_converter(table: &TableId, schema: &Schema, keys: &[usize]) -> Result<RowConverter> {
    RowConverter::new(
        keys.iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )
    .map_err(|e| Error::arrow(format!("key encoding of {table}"), e))
}

/// The encoded keys of `batch` (columns `keys`).
pub fn encode_keys(
    table: &TableId,
    converter: &RowConverter,
    batch: &RecordBatch,
    keys: &[usize],
) -> Result<Rows> {
    let cols: Vec<ArrayRef> = keys.iter().map(|&i| batch.column(i).clone()).collect();
    converter
        .convert_columns(&cols)
        .map_err(|e| Error::arrow(format!("encoding keys of {table}"), e))
}

/// What is known of one key while folding: 32 bytes, a million of them in the fold's map (rows
/// are `u32`, as the take of the final images has them anyway).
struct KeyState {
    /// Row of the last event.
    row: u32,
    /// Final op is a delete.
    deleted: bool,
    /// The table's row for this key is obsolete (deleted or truncated in this batch).
    table_row_obsolete: bool,
    /// The key first appeared after a truncate in this batch: the table cannot hold it.
    after_truncate: bool,
    /// Per column, the row its value comes from (only when an earlier event filled an
    /// unchanged cell).
    sources: Option<Box<[u32]>>,
    /// Position in capture order of the key's first event, so output is deterministic.
    first_seen: u32,
}

/// Folds `batches` of one table into a [`ChangeSet`].
///
/// `table_schema` is the table's current schema (if it exists) so the set's schema covers it;
/// `known_keys` the table's key, used when the events carry none.
pub fn fold(
    table: &TableId,
    table_schema: Option<&Schema>,
    known_keys: Option<&[String]>,
    batches: Vec<ChangeBatch>,
) -> Result<ChangeSet> {
    fold_in_shards(table, table_schema, known_keys, batches, None)
}

/// [`fold`], its events walked in `shards` hash shards (by default: on every core when the
/// batch is big and holds no truncate or null key).
fn fold_in_shards(
    table: &TableId,
    table_schema: Option<&Schema>,
    known_keys: Option<&[String]>,
    batches: Vec<ChangeBatch>,
    shards: Option<usize>,
) -> Result<ChangeSet> {
    if batches.is_empty() {
        return Err(Error::sink(table, "nothing to fold"));
    }
    let key_columns = fold_key_columns(table, &batches, known_keys)?;
    let all = Conformed::new(table, table_schema, batches)?;
    let keys = key_indices(table, &all.schema, &key_columns)?;
    let converter = key_converter(table, &all.schema, &keys)?;
    let key_rows = encode_keys(table, &converter, &all.rows, &keys)?;
    let capture = CaptureOrder::of(&all.events);
    let shards = shards.unwrap_or_else(|| walk_shards(&all, &keys, &capture));
    // A truncate clears every key: in shards it would clear only its own shard's.
    debug_assert!(
        shards == 1 || !capture.truncates,
        "a truncate walked in shards"
    );
    let walks = walk(&all, &keys, &key_rows, &capture.order, shards)?;
    let folded = Folded::of(&walks, capture.order.len());
    folded.into_change_set(table, all, key_columns, &keys, capture)
}

/// How many hash shards the walk of the events of `all` (in `capture` order) takes: one per
/// core for a big batch, each on its thread; one when a truncate, which clears every key, or a
/// null key, whose error must be the first in capture order, needs the whole batch in one walk.
fn walk_shards(all: &Conformed, keys: &[usize], capture: &CaptureOrder) -> usize {
    let sharded = capture.order.len() >= PARALLEL_ROWS
        && !capture.truncates
        && keys.iter().all(|&k| all.rows.column(k).null_count() == 0);
    match sharded {
        true => crate::sink::upsert::parallelism(),
        false => 1,
    }
}

/// Walks the events of `order` (rows of `all`, keys `key_rows`) into every key's final state,
/// in `shards` walks side by side, each taking the keys of one hash shard (a key's events stay
/// in capture order in its walk).
fn walk<'k>(
    all: &Conformed,
    keys: &[usize],
    key_rows: &'k Rows,
    order: &[usize],
    shards: usize,
) -> Result<Vec<Walk<'k>>> {
    map_pieces(shards, shards > 1, |shard| {
        let mut walk = Walk::with_capacity(order.len() / shards);
        for (at, &row) in order.iter().enumerate() {
            let key = key_rows.row(row).data();
            if shards == 1 || key_shard(key, shards) == shard {
                walk.event(all, keys, key, row, at)?;
            }
        }
        Ok(walk)
    })
    .into_iter()
    .collect()
}

/// The shard of `key` among `shards`: from a hash seeded apart from the walk's maps, whose
/// buckets would otherwise see only one shard's share of hash values.
fn key_shard(key: &[u8], shards: usize) -> usize {
    use std::hash::BuildHasher;
    const SEED: u64 = 0x5eed_0fcd_c1a4_e000;
    let hash = foldhash::fast::FixedState::with_seed(SEED).hash_one(key);
    ((hash >> 32) as usize) % shards
}

/// The schema and key a table holding `holds` has once `batch` is folded onto it (as [`fold`]
/// gives them), without folding: what the decoder must expect of the table's later records.
pub fn folded_schema(
    table: &TableId,
    holds: Option<&TableSchema>,
    batch: &ChangeBatch,
) -> Result<TableSchema> {
    let incoming = batch.rows.schema();
    let schema = match holds {
        Some(h) => Arc::new(merge_schemas(table, &h.schema, &incoming)?),
        None => incoming,
    };
    let key_columns = match (batch.key_columns.is_empty(), holds) {
        (false, _) | (true, None) => batch.key_columns.to_vec(),
        (true, Some(h)) => h.key_columns.clone(),
    };
    Ok(TableSchema {
        schema,
        key_columns,
    })
}

/// The key of the change set: the events', else the table's.
pub(crate) fn fold_key_columns(
    table: &TableId,
    batches: &[ChangeBatch],
    known_keys: Option<&[String]>,
) -> Result<Arc<[String]>> {
    batches
        .iter()
        .find(|b| !b.key_columns.is_empty())
        .map(|b| b.key_columns.clone())
        .or_else(|| known_keys.filter(|k| !k.is_empty()).map(Arc::from))
        .ok_or_else(|| Error::MissingKey {
            table: table.to_string(),
            message: "the events carry no key (no key record stored, no key schema) and none was \
                      configured; store Kafka keys (store.kafka.keys=true) or give the key columns"
                .into(),
        })
}

/// Every event of the batches in one schema (the table's merged with every batch's).
pub(crate) struct Conformed {
    pub(crate) schema: SchemaRef,
    pub(crate) rows: RecordBatch,
    pub(crate) unchanged: UnchangedMask,
    pub(crate) events: Events,
}

impl Conformed {
    /// An error locating event `row` when one of its key columns `keys` is null.
    pub(crate) fn check_key(&self, keys: &[usize], row: usize) -> Result<()> {
        let Some(&k) = keys.iter().find(|&&k| self.rows.column(k).is_null(row)) else {
            return Ok(());
        };
        let p = &self.events[row].position;
        Err(Error::Decode {
            location: crate::error::RecordLocation {
                topic: p.topic.to_string(),
                partition: p.partition,
                offset: p.offset,
            },
            field: Some(self.schema.field(k).name().clone()),
            message: "primary-key column is null".into(),
        })
    }

    pub(crate) fn new(
        table: &TableId,
        table_schema: Option<&Schema>,
        batches: Vec<ChangeBatch>,
    ) -> Result<Self> {
        let mut schema = match table_schema {
            Some(s) => s.clone(),
            None => batches[0].rows.schema().as_ref().clone(),
        };
        for b in &batches {
            schema = merge_schemas(table, &schema, &b.rows.schema())?;
        }
        let schema: SchemaRef = Arc::new(schema);
        let mut rows = Vec::with_capacity(batches.len());
        let mut masks = Vec::with_capacity(batches.len());
        let mut events = Events::default();
        // A column a batch lacks was added after its events (a later batch has it: they keep
        // the table's value) or dropped before them (no later batch has it: null).
        let mut later: Vec<HashSet<String>> = vec![HashSet::new(); batches.len()];
        for i in (0..batches.len().saturating_sub(1)).rev() {
            let mut names = later[i + 1].clone();
            names.extend(
                batches[i + 1]
                    .rows
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone()),
            );
            later[i] = names;
        }
        for (b, later) in batches.into_iter().zip(later) {
            let dropped = |c: &str| !later.contains(c);
            let (batch, mask) =
                conform_batch_dropping(table, &b.rows, &b.unchanged, &schema, &dropped)?;
            rows.push(batch);
            masks.push((mask, b.events.len()));
            events.push(b.events);
        }
        let all = concat_batches(table, &schema, &rows)?;
        let unchanged = concat_masks(schema.fields().len(), &masks)?;
        Ok(Conformed {
            schema,
            rows: all,
            unchanged,
            events,
        })
    }
}

/// The state of every key (of one shard) after the events walked so far, in capture order.
struct Walk<'k> {
    states: foldhash::HashMap<&'k [u8], KeyState>,
    truncate: bool,
    max_ts: Option<i64>,
}

impl<'k> Walk<'k> {
    fn with_capacity(keys: usize) -> Self {
        Walk {
            states: HashMap::with_capacity_and_hasher(keys, Default::default()),
            truncate: false,
            max_ts: None,
        }
    }

    /// Takes event `row` (of key `key`, at `at` in capture order) into account.
    fn event(
        &mut self,
        all: &Conformed,
        keys: &[usize],
        key: &'k [u8],
        row: usize,
        at: usize,
    ) -> Result<()> {
        let meta = &all.events[row];
        self.max_ts = self.max_ts.max(meta.source_ts_ms);
        if meta.op == Op::Truncate {
            self.states.clear();
            self.truncate = true;
            return Ok(());
        }
        all.check_key(keys, row)?;
        let deleted = meta.op == Op::Delete;
        match self.states.entry(key) {
            Entry::Vacant(v) => {
                v.insert(KeyState {
                    row: row as u32,
                    deleted,
                    table_row_obsolete: self.truncate,
                    after_truncate: self.truncate,
                    sources: None,
                    first_seen: at as u32,
                });
            }
            Entry::Occupied(mut o) => o.get_mut().replace(row, deleted, &all.unchanged),
        }
        Ok(())
    }
}

/// Every key's final state, from the walks of all shards, in order of first appearance.
struct Folded<'w> {
    /// The row of each upserted key's final image.
    upsert_rows: Vec<u32>,
    /// Upserts whose image takes cells from earlier rows: the upsert, the row of each column.
    upsert_sources: Vec<(usize, &'w [u32])>,
    /// Per upsert: the table's row for the key is obsolete.
    obsolete: Vec<bool>,
    /// The row of each deleted key the table may hold.
    delete_rows: Vec<u32>,
    truncate: bool,
    max_ts: Option<i64>,
}

/// What [`Folded`] needs of a key's state, at the place of its first appearance.
#[derive(Debug, Clone, Copy, Default)]
struct Placed {
    row: u32,
    present: bool,
    deleted: bool,
    obsolete: bool,
    after_truncate: bool,
}

impl<'w> Folded<'w> {
    /// `walks` of a batch of `events` events.
    fn of(walks: &'w [Walk<'_>], events: usize) -> Self {
        // `first_seen` is a position in capture order, so each state goes straight to its
        // place (a sort of a million states was a quarter of the fold); what is needed of it
        // is copied there, as the map is read in its own order, rather than pointed to and
        // read from all over the map afterwards.
        let mut placed = vec![Placed::default(); events];
        let mut sourced: Vec<(u32, &[u32])> = Vec::new();
        for s in walks.iter().flat_map(|w| w.states.values()) {
            placed[s.first_seen as usize] = Placed {
                row: s.row,
                present: true,
                deleted: s.deleted,
                obsolete: s.table_row_obsolete,
                after_truncate: s.after_truncate,
            };
            if let Some(src) = &s.sources {
                sourced.push((s.first_seen, src));
            }
        }
        sourced.sort_unstable_by_key(|&(at, _)| at);
        let mut sourced = sourced.into_iter().peekable();
        let mut folded = Folded {
            upsert_rows: Vec::with_capacity(events),
            upsert_sources: Vec::new(),
            obsolete: Vec::with_capacity(events),
            delete_rows: Vec::new(),
            truncate: walks.iter().any(|w| w.truncate),
            max_ts: walks.iter().filter_map(|w| w.max_ts).max(),
        };
        for (at, p) in placed.iter().enumerate().filter(|(_, p)| p.present) {
            let src = sourced.next_if(|&(s, _)| s as usize == at);
            match (p.deleted, src) {
                // After a truncate the table holds no key: nothing to delete.
                (true, _) if p.after_truncate => {}
                (true, _) => folded.delete_rows.push(p.row),
                (false, src) => {
                    if let Some((_, src)) = src {
                        folded.upsert_sources.push((folded.upsert_rows.len(), src));
                    }
                    folded.upsert_rows.push(p.row);
                    folded.obsolete.push(p.obsolete);
                }
            }
        }
        folded
    }

    /// The net effect: the final image of every key not deleted, the deleted keys.
    fn into_change_set(
        self,
        table: &TableId,
        all: Conformed,
        key_columns: Arc<[String]>,
        keys: &[usize],
        capture: CaptureOrder,
    ) -> Result<ChangeSet> {
        let (upsert_batch, upsert_unchanged) =
            final_images(table, &all, &self.upsert_rows, &self.upsert_sources)?;
        let key_batch = all
            .rows
            .project(keys)
            .map_err(|e| Error::arrow(format!("projecting keys of {table}"), e))?;
        let deletes =
            arrow_select::take::take_record_batch(&key_batch, &UInt32Array::from(self.delete_rows))
                .map_err(|e| Error::arrow(format!("building deletes of {table}"), e))?;
        let events = all.events.len();
        if events >= PARALLEL_ROWS {
            // Each event's metadata holds shared strings: freeing a million took ~1 % of a run.
            crate::parallel::drop_aside(all.events);
        }
        Ok(ChangeSet {
            table: table.clone(),
            schema: all.schema,
            key_columns,
            truncate: self.truncate,
            upserts: upsert_batch,
            upsert_unchanged,
            ignore_table_values: BooleanArray::from(self.obsolete),
            deletes,
            checkpoint: capture.checkpoint,
            first_offsets: capture.first_offsets,
            events,
            max_source_ts_ms: self.max_ts,
            history: None,
        })
    }
}

impl KeyState {
    /// A later event of the same key: its row replaces the key's, its unchanged cells taken
    /// from the previous image when both are upserts.
    fn replace(&mut self, row: usize, deleted: bool, unchanged: &UnchangedMask) {
        let at = row as u32;
        if self.deleted && !deleted {
            // Deleted earlier in this batch: whatever the table held is gone.
            self.table_row_obsolete = true;
        }
        let mut sources = None;
        if !deleted && !self.deleted && !unchanged.is_empty() {
            let n_cols = unchanged.num_columns();
            for c in 0..n_cols {
                if unchanged.is_unchanged(c, row) {
                    let src = sources.get_or_insert_with(|| vec![at; n_cols]);
                    src[c] = self.sources.as_ref().map_or(self.row, |s| s[c]);
                }
            }
        }
        self.row = at;
        self.deleted = deleted;
        self.sources = sources.map(Vec::into_boxed_slice);
    }
}

/// The final image of every upserted key, rows `rows` (cells filled from earlier images of the
/// same key where the last event did not send them: `sources`, by upsert) and their remaining
/// unchanged cells.
fn final_images(
    table: &TableId,
    all: &Conformed,
    rows: &[u32],
    sources: &[(usize, &[u32])],
) -> Result<(RecordBatch, UnchangedMask)> {
    let n_cols = all.schema.fields().len();
    let parallel = rows.len() >= PARALLEL_ROWS;
    let taken = map_pieces(n_cols, parallel, |c| -> Result<_> {
        let mut idx = rows.to_vec();
        for &(upsert, src) in sources {
            idx[upsert] = src[c];
        }
        let idx = UInt32Array::from(idx);
        let column = take(table, all.rows.column(c), &idx)?;
        let mask = match all.unchanged.column(c) {
            Some(m) => Some(
                take(table, &(Arc::new(m.clone()) as ArrayRef), &idx)?
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .expect("boolean")
                    .clone(),
            ),
            None => None,
        };
        Ok((column, mask))
    });
    let (columns, out_masks): (Vec<_>, Vec<_>) = taken.into_iter().collect::<Result<_>>()?;
    let batch = RecordBatch::try_new_with_options(
        all.schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| Error::arrow(format!("building upserts of {table}"), e))?;
    Ok((batch, UnchangedMask::new(out_masks)))
}

/// `batches` (all of `schema`) as one, their columns copied on every core.
fn concat_batches(
    table: &TableId,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let columns = match batches {
        [one] => one.columns().to_vec(),
        _ => map_pieces(schema.fields().len(), rows >= PARALLEL_ROWS, |c| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow_select::concat::concat(&parts)
        })
        .into_iter()
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::arrow(format!("concatenating changes of {table}"), e))?,
    };
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| Error::arrow(format!("concatenating changes of {table}"), e))
}

fn take(table: &TableId, array: &ArrayRef, idx: &UInt32Array) -> Result<ArrayRef> {
    arrow_select::take::take(array, idx, None)
        .map_err(|e| Error::arrow(format!("folding {table}"), e))
}

fn concat_masks(n_cols: usize, masks: &[(UnchangedMask, usize)]) -> Result<UnchangedMask> {
    let mut out = Vec::with_capacity(n_cols);
    for c in 0..n_cols {
        if masks.iter().all(|(m, _)| m.column(c).is_none()) {
            out.push(None);
            continue;
        }
        let parts: Vec<BooleanArray> = masks
            .iter()
            .map(|(m, len)| {
                m.column(c)
                    .cloned()
                    .unwrap_or_else(|| BooleanArray::from(vec![false; *len]))
            })
            .collect();
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a as &dyn Array).collect();
        let merged = crate::model::concat_arrays("unchanged masks", &refs)?;
        out.push(Some(
            merged
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("boolean")
                .clone(),
        ));
    }
    Ok(UnchangedMask::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventMeta;
    use crate::model::{DbPosition, SourcePosition};
    use crate::sink::MemTable;
    use arrow_array::{Int32Array, StringArray};
    use arrow_schema::{DataType, Field};

    fn batch(
        ops: &[(Op, i32, Option<&str>)],
        first_offset: i64,
        unchanged: Option<Vec<bool>>,
    ) -> ChangeBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(
                    ops.iter().map(|o| o.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    ops.iter().map(|o| o.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        ChangeBatch {
            table: TableId::new("s", "t"),
            key_columns: Arc::from(vec!["id".to_string()]),
            rows,
            events: ops
                .iter()
                .enumerate()
                .map(|(i, o)| EventMeta {
                    op: o.0,
                    position: SourcePosition {
                        topic: "x.s.t".into(),
                        partition: 0,
                        offset: first_offset + i as i64,
                        db: DbPosition::Unknown,
                    },
                    source_ts_ms: None,
                    tx_id: None,
                    tombstone_of_delete: false,
                })
                .collect(),
            unchanged: UnchangedMask::new(vec![None, unchanged.map(BooleanArray::from)]),
        }
    }

    fn names(t: &MemTable) -> Vec<(i32, Option<String>)> {
        let rows = t.sorted_rows().unwrap();
        let ids = rows
            .column(0)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        let names = rows
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        (0..rows.num_rows())
            .map(|i| {
                (
                    ids.value(i),
                    names.is_valid(i).then(|| names.value(i).to_string()),
                )
            })
            .collect()
    }

    fn apply(t: Option<MemTable>, b: ChangeBatch) -> MemTable {
        let set = fold(
            &TableId::new("s", "t"),
            t.as_ref().map(|t| t.schema.as_ref()),
            None,
            vec![b],
        )
        .unwrap();
        let mut t = t.unwrap_or_else(|| MemTable::create(&set));
        t.apply(&set).unwrap();
        t
    }

    /// A table holding (1, "a") and (2, "b"), committed at offsets 0 and 1.
    fn two_rows() -> MemTable {
        let rows = [(Op::Create, 1, Some("a")), (Op::Create, 2, Some("b"))];
        apply(None, batch(&rows, 0, None))
    }

    #[test]
    fn a_key_state_takes_32_bytes() {
        assert_eq!(std::mem::size_of::<KeyState>(), 32);
    }

    #[test]
    fn a_big_batch_walked_in_hash_shards_folds_as_in_one_walk() {
        // Keys coming back in every order of creates, updates (some with an unchanged name)
        // and deletes, over more events than a walk is sharded from.
        let n = 3 * PARALLEL_ROWS;
        let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let ops: Vec<(Op, i32, Option<&str>)> = (0..n)
            .map(|i| {
                let key = ((i * 7919) % 4001) as i32;
                match (i * 31) % 10 {
                    0..=5 => (Op::Update, key, Some(names[i].as_str())),
                    6 | 7 => (Op::Create, key, Some(names[i].as_str())),
                    _ => (Op::Delete, key, None),
                }
            })
            .collect();
        let unchanged = (0..n).map(|i| i % 5 == 0 && ops[i].0 != Op::Delete);
        let b = batch(&ops, 0, Some(unchanged.collect()));
        let table = TableId::new("s", "t");
        let folds: Vec<ChangeSet> = [1, 2, 3]
            .into_iter()
            .map(|shards| fold_in_shards(&table, None, None, vec![b.clone()], Some(shards)))
            .collect::<Result<_>>()
            .unwrap();
        let one = &folds[0];
        // What the walk has to get right is there to get wrong.
        assert!(one.upserts.num_rows() > 1000 && one.deletes.num_rows() > 100);
        assert!(one.ignore_table_values.true_count() > 100);
        assert!(one.upsert_unchanged.column(1).unwrap().true_count() > 10);
        assert_eq!(one.upserts.num_rows() + one.deletes.num_rows(), 4001);
        for sharded in &folds[1..] {
            assert_eq!(sharded.upserts, one.upserts);
            assert_eq!(sharded.upsert_unchanged, one.upsert_unchanged);
            assert_eq!(sharded.ignore_table_values, one.ignore_table_values);
            assert_eq!(sharded.deletes, one.deletes);
            assert_eq!(sharded.checkpoint, one.checkpoint);
        }
    }

    #[test]
    fn delete_reinsert_delete_removes_the_existing_row() {
        let t = two_rows();
        let t = apply(
            Some(t),
            batch(
                &[
                    (Op::Delete, 1, None),
                    (Op::Create, 1, Some("c")),
                    (Op::Delete, 1, None),
                ],
                2,
                None,
            ),
        );
        assert_eq!(names(&t), vec![(2, Some("b".into()))]);
    }

    #[test]
    fn unchanged_cells_come_from_the_batch_then_the_table_but_not_after_a_delete() {
        let t = two_rows();
        let t = apply(
            Some(t),
            batch(
                &[
                    (Op::Update, 1, None), // unchanged: keeps "a" from the table
                    (Op::Update, 2, Some("b2")),
                    (Op::Update, 2, None), // unchanged: "b2" from the batch
                    (Op::Delete, 3, None),
                    (Op::Create, 3, None), // unchanged after delete: default (null)
                ],
                2,
                Some(vec![true, false, true, false, true]),
            ),
        );
        assert_eq!(
            names(&t),
            vec![(1, Some("a".into())), (2, Some("b2".into())), (3, None)]
        );
    }

    #[test]
    fn truncate_drops_earlier_events_and_rows() {
        let t = apply(None, batch(&[(Op::Create, 1, Some("a"))], 0, None));
        let t = apply(
            Some(t),
            batch(
                &[
                    (Op::Create, 2, Some("b")),
                    (Op::Truncate, 0, None),
                    (Op::Create, 3, Some("c")),
                ],
                1,
                None,
            ),
        );
        assert_eq!(names(&t), vec![(3, Some("c".into()))]);
    }
}
