//! Table shapes: what a table keeps of its source's changes.
//!
//! - [`TableShape::Mirror`] (the default): the source table's current rows.
//! - [`TableShape::SoftDelete`]: the same, but a delete keeps the row, flagged in
//!   [`DELETED`] with the time ([`DELETED_AT`]) and source position ([`DELETED_POSITION`]) of
//!   the delete. A row inserted again is live again.
//! - [`TableShape::Scd2`]: one row per version of a source row, with its validity
//!   ([`VALID_FROM`] … [`VALID_TO`], as source times and as [sequences](sequence)) and
//!   [`IS_CURRENT`]; a delete closes the key's last version. Versions are ordered by their
//!   sequence, not by arrival, so replayed and late events land where they belong.
//! - [`TableShape::ChangeLog`]: every event as a row, append-only, keyed by its Kafka
//!   coordinates.
//!
//! Mirror and soft-delete tables go through [`crate::fold`] like any table; a change log is
//! folded on its own key, so nothing is folded away. SCD type 2 needs the key's versions
//! already in the table, so its change set is finished inside the commit attempt
//! ([`history`]), against the version the commit builds on.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::error::{Error, Result};
use crate::fold::{fold, ChangeSet};
use crate::model::{ChangeBatch, DbPosition, EventMeta, SourcePosition, TableId};
use crate::sink::TableSchema;

mod change_log;
pub mod history;
mod soft_delete;

pub use change_log::change_log;
pub use soft_delete::soft_delete;

/// Soft delete: whether the source deleted the row.
pub const DELETED: &str = "_cdc_deleted";
/// Soft delete: when the source deleted it (`source.ts_ms`).
pub const DELETED_AT: &str = "_cdc_deleted_at";
/// Soft delete: the source position of the delete (see [`position_text`]).
pub const DELETED_POSITION: &str = "_cdc_deleted_position";

/// Change log: the event's Kafka topic (key).
pub const TOPIC: &str = "_cdc_topic";
/// Change log: its Kafka partition (key).
pub const PARTITION: &str = "_cdc_partition";
/// Change log: its Kafka offset (first key column).
pub const OFFSET: &str = "_cdc_offset";
/// Change log: Debezium's op code (`c`, `u`, `d`, `r`, `t`).
pub const OP: &str = "_cdc_op";
/// Change log: the source time of the change.
pub const SOURCE_TS: &str = "_cdc_source_ts";
/// Change log: the source position (see [`position_text`]).
pub const POSITION: &str = "_cdc_position";
/// Change log: the source transaction.
pub const TX_ID: &str = "_cdc_tx_id";

/// SCD type 2: the sequence of the event that made the version (last key column).
pub const VALID_FROM_SEQ: &str = "_cdc_valid_from_seq";
/// SCD type 2: the source time of that event.
pub const VALID_FROM: &str = "_cdc_valid_from";
/// SCD type 2: the sequence of the event that ended the version (null while current).
pub const VALID_TO_SEQ: &str = "_cdc_valid_to_seq";
/// SCD type 2: the source time of that event.
pub const VALID_TO: &str = "_cdc_valid_to";
/// SCD type 2: whether this is the key's live version.
pub const IS_CURRENT: &str = "_cdc_is_current";

/// What a table keeps of its source's changes (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableShape {
    /// The source's current rows.
    #[default]
    Mirror,
    /// Current rows, deleted ones kept with a flag.
    SoftDelete,
    /// One row per version (slowly changing dimension, type 2).
    Scd2,
    /// Every event, append-only.
    ChangeLog,
}

impl FromStr for TableShape {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "mirror" => TableShape::Mirror,
            "soft_delete" => TableShape::SoftDelete,
            "scd2" => TableShape::Scd2,
            "change_log" => TableShape::ChangeLog,
            _ => {
                return Err(Error::Config(format!(
                    "unknown table shape `{s}` (mirror, soft_delete, scd2, change_log)"
                )))
            }
        })
    }
}

impl fmt::Display for TableShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableShape::Mirror => "mirror",
            TableShape::SoftDelete => "soft_delete",
            TableShape::Scd2 => "scd2",
            TableShape::ChangeLog => "change_log",
        })
    }
}

/// Which events of a key come first, for sources whose Kafka order is not the source order.
///
/// Ties (and every event under [`OrderBy::Capture`]) go by the database's commit order
/// (Postgres: last-commit LSN, then LSN; MySQL: binlog file, position, row); events without a
/// database position by their Kafka partition and offset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OrderBy {
    /// Capture order (the default).
    #[default]
    Capture,
    /// `source.ts_ms` first.
    SourceTs,
    /// A column of the row first (integers, dates and timestamps).
    Column(String),
}

impl FromStr for OrderBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "capture" => OrderBy::Capture,
            "source_ts" => OrderBy::SourceTs,
            _ => match s.strip_prefix("column:") {
                Some(c) if !c.is_empty() => OrderBy::Column(c.to_string()),
                _ => {
                    return Err(Error::Config(format!(
                        "unknown ordering `{s}` (capture, source_ts, column:NAME)"
                    )))
                }
            },
        })
    }
}

/// A table's shape and event order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShapeConfig {
    /// The shape.
    pub shape: TableShape,
    /// The order of a key's events.
    pub order_by: OrderBy,
}

impl ShapeConfig {
    /// An error when the settings do not go together: only a history keeps the sequence an
    /// order other than capture order needs (a mirror would let a late, older change
    /// overwrite a newer row of an earlier batch).
    pub fn check(&self, table: &TableId) -> Result<()> {
        match (&self.order_by, self.shape) {
            (OrderBy::Capture, _) | (_, TableShape::Scd2) => Ok(()),
            _ => Err(Error::Config(format!(
                "{table}: ordering by anything but capture order needs the scd2 shape"
            ))),
        }
    }
}

/// Folds `batches` of `table` into the change set of its shape, for a table whose source view
/// (see [`source_view`]) is `holds`.
pub fn fold_shaped(
    table: &TableId,
    config: &ShapeConfig,
    holds: Option<&TableSchema>,
    batches: Vec<ChangeBatch>,
) -> Result<ChangeSet> {
    let schema = holds.map(|h| h.schema.as_ref());
    let keys = holds.map(|h| h.key_columns.as_slice());
    config.check(table)?;
    match config.shape {
        TableShape::Mirror => fold(table, schema, keys, batches),
        TableShape::SoftDelete => {
            let shaped = batches
                .into_iter()
                .map(soft_delete)
                .collect::<Result<_>>()?;
            fold(table, schema, keys, shaped)
        }
        TableShape::ChangeLog => {
            let shaped = batches.into_iter().map(change_log).collect::<Result<_>>()?;
            fold(table, schema, None, shaped)
        }
        TableShape::Scd2 => history::pending(table, holds, batches, &config.order_by),
    }
}

/// The type of every time column a shape adds.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `source.ts_ms` as a [`time_type`] value.
pub(crate) fn micros(ts_ms: Option<i64>) -> Option<i64> {
    ts_ms.map(|ms| ms.saturating_mul(1000))
}

/// The columns `shape` adds to a table, in order.
pub fn shape_columns(shape: TableShape) -> Vec<Field> {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let time = |n: &str| Field::new(n, time_type(), true);
    match shape {
        TableShape::Mirror => Vec::new(),
        TableShape::SoftDelete => vec![
            Field::new(DELETED, DataType::Boolean, true),
            time(DELETED_AT),
            text(DELETED_POSITION),
        ],
        TableShape::Scd2 => vec![
            Field::new(VALID_FROM_SEQ, DataType::Utf8, false),
            time(VALID_FROM),
            text(VALID_TO_SEQ),
            time(VALID_TO),
            Field::new(IS_CURRENT, DataType::Boolean, true),
        ],
        TableShape::ChangeLog => vec![
            Field::new(TOPIC, DataType::Utf8, false),
            Field::new(PARTITION, DataType::Int32, false),
            Field::new(OFFSET, DataType::Int64, false),
            text(OP),
            time(SOURCE_TS),
            text(POSITION),
            text(TX_ID),
        ],
    }
}

/// The key a `shape` table has when its source's key is `source_key`.
pub fn shape_key(shape: TableShape, source_key: &[String]) -> Vec<String> {
    match shape {
        TableShape::Mirror | TableShape::SoftDelete => source_key.to_vec(),
        TableShape::Scd2 => source_key
            .iter()
            .cloned()
            .chain([VALID_FROM_SEQ.to_string()])
            .collect(),
        // The offset first: key ranges of files then prune by it (an append's offsets are past
        // every file's).
        TableShape::ChangeLog => [OFFSET, PARTITION, TOPIC].map(String::from).to_vec(),
    }
}

/// The source's schema and key as a `shape` table holds them: the table without the columns
/// the shape added (what the decoder and the fold expect of the source's rows). A change log
/// does not keep the source's key.
pub fn source_view(shape: TableShape, table: &TableSchema) -> TableSchema {
    let added: Vec<String> = shape_columns(shape)
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let fields: Vec<_> = table
        .schema
        .fields()
        .iter()
        .filter(|f| !added.contains(f.name()))
        .cloned()
        .collect();
    let key_columns = match shape {
        TableShape::ChangeLog => Vec::new(),
        _ => table
            .key_columns
            .iter()
            .filter(|k| !added.contains(k))
            .cloned()
            .collect(),
    };
    TableSchema {
        schema: Arc::new(Schema::new_with_metadata(
            fields,
            table.schema.metadata().clone(),
        )),
        key_columns,
    }
}

/// `rows` with `columns` appended (their fields `fields`).
pub(crate) fn with_columns(
    rows: &RecordBatch,
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
    first: bool,
) -> Result<RecordBatch> {
    let schema = rows.schema();
    let (mut all_fields, mut all_columns): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    let own = schema.fields().iter().cloned().zip(rows.columns().to_vec());
    let added = fields.into_iter().map(Arc::new).zip(columns);
    let ordered: Vec<_> = match first {
        true => added.chain(own).collect(),
        false => own.chain(added).collect(),
    };
    for (f, c) in ordered {
        all_fields.push(f);
        all_columns.push(c);
    }
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(
            all_fields,
            schema.metadata().clone(),
        )),
        all_columns,
    )
    .map_err(|e| Error::arrow("adding the shape's columns", e))
}

/// The database position of an event as text: Postgres `LSN` as `X/X` (hex, as Postgres shows
/// it), MySQL `file:pos:row`, else the Kafka coordinates `topic/partition/offset`.
pub fn position_text(p: &SourcePosition) -> String {
    match &p.db {
        DbPosition::Postgres { lsn, .. } => format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff),
        DbPosition::MySql { file, pos, row, .. } => format!("{file}:{pos}:{row}"),
        DbPosition::Unknown => format!("{}/{}/{}", p.topic, p.partition, p.offset),
    }
}

/// An `i64` as 16 hex digits that sort as the numbers do.
fn sortable(v: i64) -> String {
    format!("{:016x}", (v as u64) ^ (1 << 63))
}

/// The sequence of an event: text whose byte order is the order of a key's events. It is the
/// ordering value (`order_value`, when the table orders by one), then the database's commit
/// order, each as fixed-width hex. Only an event without a database position falls back to its
/// Kafka partition and offset: a change the connector sends again after a restart (at another
/// offset) has the same sequence as the first time, so a history does not take it twice.
pub fn sequence(meta: &EventMeta, order_value: Option<i64>) -> String {
    let mut s = String::with_capacity(72);
    if let Some(v) = order_value {
        s.push_str(&sortable(v));
        s.push('-');
    }
    match meta.position.db.commit_order_key() {
        Some((a, b, c)) => s.push_str(&format!("{a:016x}{b:016x}{c:08x}")),
        None => s.push_str(&format!(
            "k{}{}",
            &sortable(i64::from(meta.position.partition))[8..],
            sortable(meta.position.offset)
        )),
    }
    s
}

/// The ordering value of every row of `rows` (with `events`), `None` per row under capture
/// order; an error names the event whose value is missing.
pub(crate) fn order_values(
    order_by: &OrderBy,
    table: &str,
    rows: &RecordBatch,
    events: &crate::fold::Events,
) -> Result<Vec<Option<i64>>> {
    let missing = |i: usize, what: &str| {
        let p = &events[i].position;
        Error::Decode {
            location: crate::error::RecordLocation {
                topic: p.topic.to_string(),
                partition: p.partition,
                offset: p.offset,
            },
            field: None,
            message: format!("{table}: the ordering value ({what}) is missing"),
        }
    };
    match order_by {
        OrderBy::Capture => Ok(vec![None; events.len()]),
        OrderBy::SourceTs => events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.source_ts_ms
                    .map(Some)
                    .ok_or_else(|| missing(i, "source.ts_ms"))
            })
            .collect(),
        OrderBy::Column(name) => {
            let col = rows.column_by_name(name).ok_or_else(|| {
                Error::Config(format!(
                    "{table}: ordering column `{name}` is not in the rows"
                ))
            })?;
            let ints = column_as_i64(col).ok_or_else(|| {
                Error::Config(format!(
                    "{table}: ordering column `{name}` is {}, not an integer, date or timestamp",
                    col.data_type()
                ))
            })?;
            (0..events.len())
                .map(|i| match (ints.is_valid(i), is_null_op(&events[i])) {
                    (true, _) => Ok(Some(ints.value(i))),
                    // A delete's image may lack the column: see `history`.
                    (false, true) => Ok(None),
                    (false, false) => Err(missing(i, name)),
                })
                .collect()
        }
    }
}

fn is_null_op(e: &EventMeta) -> bool {
    matches!(e.op, crate::model::Op::Delete | crate::model::Op::Truncate)
}

fn column_as_i64(col: &ArrayRef) -> Option<arrow_array::Int64Array> {
    let ok = col.data_type().is_integer()
        || matches!(
            col.data_type(),
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
        );
    if !ok {
        return None;
    }
    let as_int = match col.data_type() {
        DataType::Timestamp(..) | DataType::Date64 => {
            arrow_cast::cast(col, &DataType::Int64).ok()?
        }
        DataType::Date32 => arrow_cast::cast(
            &arrow_cast::cast(col, &DataType::Int32).ok()?,
            &DataType::Int64,
        )
        .ok()?,
        _ => arrow_cast::cast(col, &DataType::Int64).ok()?,
    };
    as_int
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Op;

    fn meta(partition: i32, offset: i64, lsn: u64, last: u64) -> EventMeta {
        EventMeta {
            op: Op::Update,
            position: SourcePosition {
                topic: Arc::from("t"),
                partition,
                offset,
                db: DbPosition::Postgres {
                    lsn,
                    last_commit_lsn: Some(last),
                    tx_id: None,
                },
            },
            source_ts_ms: Some(5),
            tx_id: None,
            tombstone_of_delete: false,
        }
    }

    #[test]
    fn sequences_sort_as_commit_order() {
        let a = sequence(&meta(1, 900, 10, 5), None);
        let b = sequence(&meta(0, 3, 11, 5), None);
        let d = sequence(&meta(0, 1, 2, 20), None);
        let mut all = vec![d.clone(), a.clone(), b.clone()];
        all.sort();
        assert_eq!(all, vec![a, b.clone(), d]);
        assert_eq!(
            sequence(&meta(0, 4, 11, 5), None),
            b,
            "sent again: the same change"
        );
        let mut unknown = meta(0, 7, 0, 0);
        unknown.position.db = DbPosition::Unknown;
        let mut later = unknown.clone();
        later.position.offset = 8;
        assert!(sequence(&unknown, None) < sequence(&later, None));
        assert!(sequence(&meta(0, 1, 1, 1), Some(-1)) < sequence(&meta(0, 0, 0, 0), Some(0)));
        assert!(sequence(&meta(0, 1, 1, 1), Some(7)) < sequence(&meta(0, 0, 0, 0), Some(300)));
    }

    #[test]
    fn postgres_positions_read_as_postgres_shows_them() {
        let m = meta(0, 0, (1 << 32) | 0x16B_3748, 0);
        assert_eq!(position_text(&m.position), "1/16B3748");
    }

    #[test]
    fn shapes_and_orders_parse() {
        for s in ["mirror", "soft_delete", "scd2", "change_log"] {
            assert_eq!(s.parse::<TableShape>().unwrap().to_string(), s);
        }
        assert!("scd3".parse::<TableShape>().is_err());
        assert_eq!(
            "column:updated_at".parse::<OrderBy>().unwrap(),
            OrderBy::Column("updated_at".into())
        );
        assert!("column:".parse::<OrderBy>().is_err());
    }
}
