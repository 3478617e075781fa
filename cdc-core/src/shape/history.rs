//! SCD type 2 history: one row per version of each source row.
//!
//! A batch's events wait in a [`PendingHistory`] on their change set. Inside the commit
//! attempt, the engine looks up every version the table holds of the batch's keys
//! ([`PendingHistory::lookup_set`]) and [`PendingHistory::resolve`] merges the two timelines:
//!
//! - every version (old or new) and every delete of a key is a point on the key's timeline,
//!   ordered by its [sequence](super::sequence);
//! - a version is valid from its own point to the next point, and current when no point
//!   follows; a delete only ends the version before it;
//! - a point the table already holds (same sequence) is not added again, so a replay changes
//!   nothing, and a late event lands between the versions it belongs between;
//! - cells the source did not send (unchanged TOAST values) take the previous version's;
//! - the change set writes the new versions and the old versions whose end moved.
//!
//! A delete that ends no version (its key's earlier changes may come later) is kept as a
//! marker row (see [`PendingHistory::resolve`]). A delete without an ordering value (its image
//! lacks the ordering column, or a tombstone of its own) ends the key's latest version at the
//! time it arrives, and nothing when the key has none. A truncate ends every key's version at
//! its point (its lookup reads the whole table).
//!
//! Limit: a version's unsent cells are filled when it is written, from the version before it
//! then; a version that arrives later and lands before it does not change them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{Schema, SchemaRef};

use super::{micros, order_values, sequence, shape_columns, shape_key, OrderBy, TableShape};
use crate::error::{Error, Result};
use crate::fold::{
    encode_keys, fold_key_columns, key_converter, CaptureOrder, ChangeSet, Conformed, Events,
};
use crate::model::{ChangeBatch, DbPosition, Op, TableId, UnchangedMask};
use crate::schema::{cast_column, default_column, evolve_batch};
use crate::sink::TableSchema;

/// A batch's events, waiting for the table's versions of their keys.
#[derive(Debug)]
pub struct PendingHistory {
    source_key: Vec<String>,
    /// Row images in the source schema (the change set's schema without the shape's columns).
    rows: RecordBatch,
    unchanged: UnchangedMask,
    events: Events,
    /// Per event: its sequence (`None`: a delete without an ordering value).
    seqs: Vec<Option<String>>,
    /// Event indices in capture order.
    order: Vec<usize>,
}

/// The change set of `batches` for an SCD type 2 table that holds `holds` (its source view, see
/// [`super::source_view`]): no rows yet, its events pending (see the [module docs](self)).
pub fn pending(
    table: &TableId,
    holds: Option<&TableSchema>,
    batches: Vec<ChangeBatch>,
    order_by: &OrderBy,
) -> Result<ChangeSet> {
    if batches.is_empty() {
        return Err(Error::sink(table, "nothing to fold"));
    }
    let known = holds.map(|h| h.key_columns.as_slice());
    let source_key = fold_key_columns(table, &batches, known)?.to_vec();
    let all = Conformed::new(table, holds.map(|h| h.schema.as_ref()), batches)?;
    let name = table.to_string();
    let values = order_values(order_by, &name, &all.rows, &all.events)?;
    let mut seqs = Vec::with_capacity(all.events.len());
    let CaptureOrder {
        order,
        checkpoint,
        first_offsets,
        ..
    } = CaptureOrder::of(&all.events);
    let mut max_ts = None;
    let key_idx = crate::fold::key_indices(table, &all.schema, &source_key)?;
    for (i, (e, v)) in all.events.iter().zip(&values).enumerate() {
        if e.op != Op::Truncate {
            all.check_key(&key_idx, i)?;
        }
        max_ts = max_ts.max(e.source_ts_ms);
        // A delete without a database position (a tombstone of its own) cannot be placed by
        // the sequence of the events that have one: it ends what is current when it arrives.
        let positionless_delete = e.op == Op::Delete && e.position.db == DbPosition::Unknown;
        let unordered = (*order_by != OrderBy::Capture && v.is_none()) || positionless_delete;
        seqs.push((!unordered).then(|| sequence(e, *v)));
    }
    let mut fields: Vec<_> = all.schema.fields().iter().cloned().collect();
    fields.extend(shape_columns(TableShape::Scd2).into_iter().map(Arc::new));
    let schema: SchemaRef = Arc::new(Schema::new_with_metadata(
        fields,
        all.schema.metadata().clone(),
    ));
    let key_columns = shape_key(TableShape::Scd2, &source_key);
    let key_schema = Arc::new(Schema::new(
        key_columns
            .iter()
            .map(|k| {
                Ok(schema
                    .field_with_name(k)
                    .map_err(|e| Error::arrow("scd2 key", e))?
                    .clone())
            })
            .collect::<Result<Vec<_>>>()?,
    ));
    let events = all.events.len();
    let history = PendingHistory {
        source_key,
        rows: all.rows,
        unchanged: all.unchanged,
        events: all.events,
        seqs,
        order,
    };
    Ok(ChangeSet {
        table: table.clone(),
        schema: schema.clone(),
        key_columns: Arc::from(key_columns),
        truncate: false,
        upserts: RecordBatch::new_empty(schema.clone()),
        upsert_unchanged: UnchangedMask::none(schema.fields().len()),
        ignore_table_values: BooleanArray::from(Vec::<bool>::new()),
        deletes: RecordBatch::new_empty(key_schema),
        checkpoint,
        first_offsets,
        events,
        max_source_ts_ms: max_ts,
        history: Some(Arc::new(history)),
    })
}

/// One point of a key's timeline.
struct Point {
    seq: String,
    /// Source time, µs.
    ts: Option<i64>,
    kind: PointKind,
}

enum PointKind {
    /// A version the table holds: its row in the looked-up rows, and its current end.
    Held {
        row: usize,
        to_seq: Option<String>,
        current: bool,
    },
    /// A new version: the event's row.
    New(usize),
    /// A delete: the event's row, or `None` for one the held versions imply.
    Delete(Option<usize>),
    /// A delete the table holds as a marker row (a delete that ended no version when it
    /// came; its row in the looked-up rows).
    Marker(usize),
}

/// What the walk of a timeline has seen last.
enum Last {
    Nothing,
    /// A version, and where its cells come from.
    Version(Vec<Pick>),
    Ended,
}

/// Where an output cell comes from: 0 the table's rows, 1 the events' rows, 2 the default.
type Pick = (usize, usize);

impl PendingHistory {
    /// The source's key columns (a prefix of the table's key).
    pub fn source_key(&self) -> &[String] {
        &self.source_key
    }

    /// The batch's keys, indexed to find the versions the table holds of them (the located
    /// old rows of [`PendingHistory::lookup_set`]).
    pub fn lookup_keys(
        &self,
        changes: &ChangeSet,
        merged: &SchemaRef,
    ) -> Result<crate::sink::upsert::ChangedKeys> {
        let lookup = self.lookup_set(changes, merged)?;
        crate::sink::upsert::ChangedKeys::new(&lookup, &lookup.schema, &self.source_key)
    }

    /// A change set that upserts every key of the batch with all other cells unchanged, in
    /// the table's schema `merged` with every other column nullable (its schema is what its
    /// keys are indexed in): its located old rows are the key's versions.
    pub fn lookup_set(&self, changes: &ChangeSet, merged: &SchemaRef) -> Result<ChangeSet> {
        let table = &changes.table;
        let merged: SchemaRef = Arc::new(Schema::new_with_metadata(
            merged
                .fields()
                .iter()
                .map(|f| match self.source_key.contains(f.name()) {
                    true => f.as_ref().clone(),
                    false => f.as_ref().clone().with_nullable(true),
                })
                .collect::<Vec<_>>(),
            merged.metadata().clone(),
        ));
        let merged = &merged;
        let keys = self.key_indices(table)?;
        let converter = key_converter(table, &self.rows.schema(), &keys)?;
        let encoded = encode_keys(table, &converter, &self.rows, &keys)?;
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<u32> = (0..self.rows.num_rows())
            .filter(|&i| self.events[i].op != Op::Truncate)
            .filter(|&i| seen.insert(encoded.row(i).data().to_vec()))
            .map(|i| i as u32)
            .collect();
        let take = arrow_array::UInt32Array::from(distinct);
        let n = take.len();
        let mut columns = Vec::with_capacity(merged.fields().len());
        let mut masks = Vec::with_capacity(merged.fields().len());
        for field in merged.fields() {
            match self.source_key.contains(field.name()) {
                true => {
                    let col = self.rows.column_by_name(field.name()).expect("key column");
                    let taken = arrow_select::take::take(col.as_ref(), &take, None)
                        .map_err(|e| Error::arrow(format!("keys of {table}"), e))?;
                    columns.push(cast_column(table, field, &taken)?);
                    masks.push(None);
                }
                false => {
                    columns.push(new_null_array(field.data_type(), n));
                    masks.push(Some(BooleanArray::from(vec![true; n])));
                }
            }
        }
        let upserts = RecordBatch::try_new_with_options(
            merged.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .map_err(|e| Error::arrow(format!("keys of {table}"), e))?;
        Ok(ChangeSet {
            schema: merged.clone(),
            key_columns: Arc::from(self.source_key.clone()),
            upserts,
            upsert_unchanged: UnchangedMask::new(masks),
            ignore_table_values: BooleanArray::from(vec![false; n]),
            history: None,
            ..changes.clone()
        })
    }

    /// The change set to commit, given `versions`: every row the table holds of the batch's
    /// keys (any schema the table had; see the [module docs](self)).
    pub fn resolve(&self, changes: &ChangeSet, versions: &RecordBatch) -> Result<ChangeSet> {
        let table = &changes.table;
        let schema = &changes.schema;
        // The table's rows, in any schema it had, in the change set's.
        let held = evolve_batch(table, versions, schema)?;
        let n_source = self.rows.num_columns();
        let keys = self.key_indices(table)?;
        let converter = key_converter(table, &self.rows.schema(), &keys)?;
        let new_keys = encode_keys(table, &converter, &self.rows, &keys)?;
        // The source columns come first in both, so the key indices are the same.
        let held_keys = encode_keys(table, &converter, &held, &keys)?;
        let mut timelines: HashMap<Vec<u8>, Vec<Point>> = HashMap::new();
        let ends = HeldEnds::read(table, &held)?;
        for r in 0..held.num_rows() {
            let points = timelines
                .entry(held_keys.row(r).data().to_vec())
                .or_default();
            let seq = ends.from_seq.value(r).to_string();
            let to_seq = ends
                .to_seq
                .is_valid(r)
                .then(|| ends.to_seq.value(r).to_string());
            let kind = match to_seq.as_ref() == Some(&seq) {
                true => PointKind::Marker(r),
                false => PointKind::Held {
                    row: r,
                    to_seq,
                    current: ends.current.is_valid(r) && ends.current.value(r),
                },
            };
            points.push(Point {
                seq,
                ts: ends.from_ts.is_valid(r).then(|| ends.from_ts.value(r)),
                kind,
            });
        }
        for points in timelines.values_mut() {
            add_held_deletes(points, &ends);
        }
        for &i in &self.order {
            match self.events[i].op {
                // Every key the table or the batch has so far.
                Op::Truncate => timelines.values_mut().for_each(|t| self.add_event(t, i)),
                _ => {
                    let key = new_keys.row(i).data().to_vec();
                    self.add_event(timelines.entry(key).or_default(), i);
                }
            }
        }
        let mut out = Output::default();
        let mut order: Vec<(Vec<u8>, Vec<Point>)> = timelines.into_iter().collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, mut points) in order {
            points.sort_by(|a, b| a.seq.cmp(&b.seq));
            self.walk(&points, n_source, &mut out);
        }
        let deletes = out.deletes(table, &held, &changes.deletes)?;
        let upserts = out.build(table, schema, &held, &self.rows, n_source)?;
        let n = upserts.num_rows();
        Ok(ChangeSet {
            upserts,
            deletes,
            upsert_unchanged: UnchangedMask::none(schema.fields().len()),
            ignore_table_values: BooleanArray::from(vec![false; n]),
            history: None,
            ..changes.clone()
        })
    }

    /// Whether the batch holds a truncate: the lookup must then return every row, since a
    /// truncate ends every current version.
    pub fn ends_every_version(&self) -> bool {
        self.events.iter().any(|e| e.op == Op::Truncate)
    }

    fn key_indices(&self, table: &TableId) -> Result<Vec<usize>> {
        crate::fold::key_indices(table, &self.rows.schema(), &self.source_key)
    }

    /// Event `i` on its key's timeline, unless the table holds it already.
    fn add_event(&self, points: &mut Vec<Point>, i: usize) {
        let e = &self.events[i];
        if e.tombstone_of_delete {
            return;
        }
        let seq = match &self.seqs[i] {
            Some(s) => s.clone(),
            // A delete (or truncate) without an ordering value: right after the key's latest
            // point when it arrives, marked with its own position so that the same change sent
            // again is known; with no point yet it ends nothing and is dropped.
            None => {
                let own = format!("~{}", sequence(e, None));
                if points.iter().any(|p| p.seq.ends_with(&own)) {
                    return;
                }
                match points.iter().map(|p| p.seq.as_str()).max() {
                    Some(latest) => format!("{latest}{own}"),
                    None => return,
                }
            }
        };
        if points.iter().any(|p| p.seq == seq) {
            return;
        }
        let kind = match e.op {
            Op::Delete => PointKind::Delete(Some(i)),
            Op::Truncate => PointKind::Delete(None),
            _ => PointKind::New(i),
        };
        points.push(Point {
            seq,
            ts: micros(e.source_ts_ms),
            kind,
        });
    }

    /// One key's timeline, in order: the rows to write. A delete that ends no version is
    /// written as a marker row (valid from and to its own point, never current, the delete's
    /// image), so that a version that arrives later, from before it, still ends there; the
    /// marker goes once a version ends at it.
    fn walk(&self, points: &[Point], n_source: usize, out: &mut Output) {
        let mut last = Last::Nothing;
        for (k, p) in points.iter().enumerate() {
            let next = points.get(k + 1);
            let to_seq = next.map(|n| n.seq.clone());
            let to_ts = next.and_then(|n| n.ts);
            let ends_version = matches!(last, Last::Version(_));
            match &p.kind {
                // Ends nothing yet: a marker, unless a delete came just before.
                PointKind::Delete(Some(i)) if matches!(last, Last::Nothing) => {
                    out.push(vec![(1, *i); n_source], p, Some(p.seq.clone()), p.ts);
                    last = Last::Ended;
                }
                PointKind::Delete(_) => last = Last::Ended,
                PointKind::Marker(row) => {
                    if ends_version {
                        out.deletes.push(*row);
                    }
                    last = Last::Ended;
                }
                PointKind::Held {
                    row,
                    to_seq: held_to,
                    current,
                } => {
                    let picks = vec![(0, *row); n_source];
                    if *held_to != to_seq || *current != next.is_none() {
                        out.push(picks.clone(), p, to_seq, to_ts);
                    }
                    last = Last::Version(picks);
                }
                PointKind::New(i) => {
                    let previous = match &last {
                        Last::Version(picks) => Some(picks),
                        _ => None,
                    };
                    let picks: Vec<Pick> = (0..n_source)
                        .map(|c| match self.unchanged.is_unchanged(c, *i) {
                            false => (1, *i),
                            true => previous.map_or((2, 0), |prev| prev[c]),
                        })
                        .collect();
                    out.push(picks.clone(), p, to_seq, to_ts);
                    last = Last::Version(picks);
                }
            }
        }
    }
}

/// The deletes a key's held versions imply: an end that starts no held version.
fn add_held_deletes(points: &mut Vec<Point>, ends: &HeldEnds) {
    let starts: std::collections::HashSet<String> = points.iter().map(|p| p.seq.clone()).collect();
    let mut deletes = Vec::new();
    for p in points.iter() {
        if let PointKind::Held {
            row,
            to_seq: Some(to),
            ..
        } = &p.kind
        {
            if !starts.contains(to) {
                deletes.push(Point {
                    seq: to.clone(),
                    ts: ends.to_ts.is_valid(*row).then(|| ends.to_ts.value(*row)),
                    kind: PointKind::Delete(None),
                });
            }
        }
    }
    points.extend(deletes);
}

/// The shape's columns of the looked-up versions.
struct HeldEnds {
    from_seq: StringArray,
    from_ts: TimestampMicrosecondArray,
    to_seq: StringArray,
    to_ts: TimestampMicrosecondArray,
    current: BooleanArray,
}

impl HeldEnds {
    fn read(table: &TableId, held: &RecordBatch) -> Result<Self> {
        let col = |name: &str| {
            held.column_by_name(name)
                .cloned()
                .ok_or_else(|| Error::sink(table, format!("the scd2 table has no column `{name}`")))
        };
        let text = |name: &str| -> Result<StringArray> {
            Ok(downcast::<StringArray>(&col(name)?).clone())
        };
        let time = |name: &str| -> Result<TimestampMicrosecondArray> {
            Ok(downcast::<TimestampMicrosecondArray>(&col(name)?).clone())
        };
        Ok(HeldEnds {
            from_seq: text(super::VALID_FROM_SEQ)?,
            from_ts: time(super::VALID_FROM)?,
            to_seq: text(super::VALID_TO_SEQ)?,
            to_ts: time(super::VALID_TO)?,
            current: downcast::<BooleanArray>(&col(super::IS_CURRENT)?).clone(),
        })
    }
}

fn downcast<T: 'static>(a: &ArrayRef) -> &T {
    a.as_any()
        .downcast_ref::<T>()
        .expect("conformed to the shape's types")
}

/// The rows a resolve writes, column by column.
#[derive(Default)]
struct Output {
    /// Per row, per source column.
    picks: Vec<Vec<Pick>>,
    from_seq: Vec<String>,
    from_ts: Vec<Option<i64>>,
    to_seq: Vec<Option<String>>,
    to_ts: Vec<Option<i64>>,
    /// Held marker rows to delete.
    deletes: Vec<usize>,
}

impl Output {
    fn push(&mut self, picks: Vec<Pick>, p: &Point, to_seq: Option<String>, to_ts: Option<i64>) {
        self.picks.push(picks);
        self.from_seq.push(p.seq.clone());
        self.from_ts.push(p.ts);
        self.to_ts.push(to_ts.filter(|_| to_seq.is_some()));
        self.to_seq.push(to_seq);
    }

    /// The keys of the held rows to delete, as `like` (the change set's deletes) has them.
    fn deletes(
        &self,
        table: &TableId,
        held: &RecordBatch,
        like: &RecordBatch,
    ) -> Result<RecordBatch> {
        let rows =
            arrow_array::UInt32Array::from_iter_values(self.deletes.iter().map(|&r| r as u32));
        let columns = like
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let col = held
                    .column_by_name(f.name())
                    .expect("key column of the history");
                arrow_select::take::take(col.as_ref(), &rows, None)
                    .map_err(|e| Error::arrow(format!("markers of {table}"), e))
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new_with_options(
            like.schema(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(self.deletes.len())),
        )
        .map_err(|e| Error::arrow(format!("markers of {table}"), e))
    }

    fn build(
        self,
        table: &TableId,
        schema: &SchemaRef,
        held: &RecordBatch,
        rows: &RecordBatch,
        n_source: usize,
    ) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for c in 0..n_source {
            let field = schema.field(c);
            let fresh = cast_column(table, field, rows.column(c))?;
            let default = default_column(table, &schema.fields()[c], 1)?;
            let sources: [&dyn Array; 3] =
                [held.column(c).as_ref(), fresh.as_ref(), default.as_ref()];
            let picks: Vec<Pick> = self.picks.iter().map(|p| p[c]).collect();
            columns.push(
                arrow_select::interleave::interleave(&sources, &picks)
                    .map_err(|e| Error::arrow(format!("versions of {table}"), e))?,
            );
        }
        let time = |v: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
        };
        // A marker (valid to its own start) is never current.
        let current: Vec<bool> = self.to_seq.iter().map(Option::is_none).collect();
        columns.push(Arc::new(StringArray::from(self.from_seq)));
        columns.push(time(self.from_ts));
        columns.push(Arc::new(StringArray::from(self.to_seq)));
        columns.push(time(self.to_ts));
        columns.push(Arc::new(BooleanArray::from(current)));
        RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(self.picks.len())),
        )
        .map_err(|e| Error::arrow(format!("versions of {table}"), e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::model::EventMeta;
    use crate::model::SourcePosition;
    use crate::sink::MemTable;

    /// One event: op, key, ordering value, Kafka partition and offset, LSN.
    type Ev = (Op, i64, Option<i64>, i32, i64, u64);

    fn batch(events: &[Ev]) -> ChangeBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.1))),
                Arc::new(Int64Array::from_iter(events.iter().map(|e| e.2))),
            ],
        )
        .unwrap();
        let meta = events
            .iter()
            .map(|&(op, _, _, partition, offset, lsn)| EventMeta {
                op,
                position: SourcePosition {
                    topic: Arc::from("db.public.t"),
                    partition,
                    offset,
                    db: DbPosition::Postgres {
                        lsn,
                        last_commit_lsn: Some(lsn),
                        tx_id: None,
                    },
                },
                source_ts_ms: Some(lsn as i64),
                tx_id: None,
                tombstone_of_delete: false,
            })
            .collect();
        ChangeBatch {
            table: TableId::new("public", "t"),
            key_columns: Arc::from(vec!["id".to_string()]),
            rows,
            events: meta,
            unchanged: UnchangedMask::none(2),
        }
    }

    /// Applies each batch as one commit of an SCD type 2 table ordered by column `v`; the
    /// versions as (v, valid from µs, valid to µs, current), by valid-from sequence.
    fn history(batches: &[&[Ev]]) -> Vec<(Option<i64>, i64, Option<i64>, bool)> {
        let order = OrderBy::Column("v".into());
        let table = TableId::new("public", "t");
        let mut mem: Option<MemTable> = None;
        for b in batches {
            let holds = mem.as_ref().map(|m| {
                super::super::source_view(
                    TableShape::Scd2,
                    &TableSchema {
                        schema: m.schema.clone(),
                        key_columns: m.key_columns.clone(),
                    },
                )
            });
            let set = pending(&table, holds.as_ref(), vec![batch(b)], &order).unwrap();
            let m = mem.get_or_insert_with(|| MemTable::create(&set));
            m.apply(&set).unwrap();
        }
        let rows = mem.unwrap().sorted_rows().unwrap();
        let col = |n: &str| rows.column_by_name(n).unwrap().clone();
        let v = col("v");
        let v = v.as_any().downcast_ref::<Int64Array>().unwrap();
        let ends = HeldEnds::read(&table, &rows).unwrap();
        (0..rows.num_rows())
            .map(|i| {
                (
                    v.is_valid(i).then(|| v.value(i)),
                    ends.from_ts.value(i),
                    ends.to_ts.is_valid(i).then(|| ends.to_ts.value(i)),
                    ends.current.value(i),
                )
            })
            .collect()
    }

    #[test]
    fn a_delete_without_an_ordering_value_ends_the_latest_version_once() {
        let first: &[Ev] = &[
            (Op::Create, 1, Some(1), 0, 0, 10),
            (Op::Delete, 1, None, 0, 1, 20),
            (Op::Create, 1, Some(2), 0, 2, 30),
        ];
        let once = history(&[first]);
        assert_eq!(
            once,
            vec![
                (Some(1), 10_000, Some(20_000), false),
                (Some(2), 30_000, None, true),
            ]
        );
        // The delete sent again after the re-insert is committed changes nothing.
        let again: &[Ev] = &[(Op::Delete, 1, None, 0, 7, 20)];
        assert_eq!(history(&[first, again]), once);
    }

    #[test]
    fn a_delete_that_comes_before_every_version_of_its_key_ends_nothing() {
        // Partition 1 (the delete and v2) is read before partition 0 (v1).
        let later: &[Ev] = &[
            (Op::Delete, 1, None, 1, 0, 20),
            (Op::Create, 1, Some(2), 1, 1, 30),
        ];
        let earlier: &[Ev] = &[(Op::Create, 1, Some(1), 0, 0, 10)];
        assert_eq!(
            history(&[later, earlier]),
            vec![
                (Some(1), 10_000, Some(30_000), false),
                (Some(2), 30_000, None, true),
            ]
        );
    }

    #[test]
    fn a_late_version_lands_between_the_versions_around_it() {
        let a: &[Ev] = &[
            (Op::Create, 1, Some(1), 0, 0, 10),
            (Op::Update, 1, Some(3), 0, 1, 30),
        ];
        let b: &[Ev] = &[(Op::Update, 1, Some(2), 1, 0, 20)];
        assert_eq!(
            history(&[a, b]),
            vec![
                (Some(1), 10_000, Some(20_000), false),
                (Some(2), 20_000, Some(30_000), false),
                (Some(3), 30_000, None, true),
            ]
        );
    }
}
