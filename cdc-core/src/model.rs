//! The change model: operations, table ids, source positions, checkpoints and change events.
//!
//! Data moves as [`ChangeBatch`]es: the row images of many events of one table in one Arrow
//! [`RecordBatch`], with the per-event metadata (operation, position, unchanged columns) beside it.
//! [`ChangeEvent`] is the one-event view of a batch, for inspection, dead letters and tests; it is
//! serde-able (images travel as Arrow IPC), but the hot path never builds it.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A row read by the connector's snapshot (`r`).
    Read,
    /// An insert (`c`).
    Create,
    /// An update (`u`).
    Update,
    /// A delete (`d`, or a tombstone).
    Delete,
    /// The whole table was truncated (`t`).
    Truncate,
}

impl Op {
    /// Parses Debezium's one-letter code.
    pub fn from_code(code: &str) -> Option<Op> {
        Some(match code {
            "r" => Op::Read,
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            _ => return None,
        })
    }

    /// Debezium's one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
        }
    }
}

/// A target table: `<namespace>.<name>` (Postgres schema or MySQL database, then table).
///
/// Cheap to clone (shared names): the decoder hands one back with every event.
#[derive(Debug, Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    /// Postgres schema or MySQL database.
    pub namespace: Arc<str>,
    /// Table name.
    pub name: Arc<str>,
}

impl PartialEq for TableId {
    /// Equal names; ids cloned from one another (the decoder's table maps, every event) are
    /// known equal by their pointers without comparing the names.
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || a == b;
        same(&self.namespace, &other.namespace) && same(&self.name, &other.name)
    }
}

impl std::hash::Hash for TableId {
    /// The names, as [`PartialEq`] compares them.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.namespace.hash(state);
        self.name.hash(state);
    }
}

impl TableId {
    /// A table id from its two parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        TableId {
            namespace: Arc::from(namespace.into()),
            name: Arc::from(name.into()),
        }
    }

    /// Parses `namespace.name` (the last dot separates them).
    pub fn parse(s: &str) -> Result<Self> {
        match s.rsplit_once('.') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(TableId::new(ns, name)),
            _ => Err(Error::Config(format!(
                "table id `{s}` must be `<schema>.<table>`"
            ))),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// The database's own coordinates of a change, as the connector reported them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "db", rename_all = "lowercase")]
pub enum DbPosition {
    /// The connector reported none (for example an unwrapped event without `__lsn`).
    #[default]
    Unknown,
    /// Postgres: the change's LSN and the LSN of the last commit before its transaction
    /// (`source.sequence[0]`), which orders transactions by commit.
    Postgres {
        /// LSN of the change.
        lsn: u64,
        /// LSN of the last committed transaction before this change's transaction.
        last_commit_lsn: Option<u64>,
        /// Transaction id.
        tx_id: Option<i64>,
    },
    /// MySQL / MariaDB binlog coordinates.
    MySql {
        /// Binlog file name, e.g. `mysql-bin.000003`.
        file: String,
        /// Position in the binlog file.
        pos: u64,
        /// Row number inside the binlog event.
        row: u32,
        /// GTID of the transaction, when GTIDs are on.
        gtid: Option<String>,
    },
}

impl DbPosition {
    /// A key that orders changes by commit: transactions in commit order, changes inside a
    /// transaction in log order. `None` when the connector gave no position.
    ///
    /// Postgres change LSNs alone do not order by commit (a transaction that started earlier
    /// can commit later), so the last-commit LSN comes first.
    pub fn commit_order_key(&self) -> Option<(u64, u64, u64)> {
        match self {
            DbPosition::Unknown => None,
            DbPosition::Postgres {
                lsn,
                last_commit_lsn,
                ..
            } => Some((last_commit_lsn.unwrap_or(0), *lsn, 0)),
            DbPosition::MySql { file, pos, row, .. } => {
                let seq = file
                    .rsplit('.')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                Some((seq, *pos, u64::from(*row)))
            }
        }
    }
}

/// Where one event came from: its Kafka coordinates and the database's own position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Kafka topic (shared with the record it came from: one allocation per topic, not event).
    pub topic: Arc<str>,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// Database position.
    pub db: DbPosition,
}

impl SourcePosition {
    /// Total order of the events of one table.
    ///
    /// Within one topic-partition the Kafka offset is the capture order and always wins (Debezium
    /// partitions by key, so every change of a key is in one partition). Across partitions, the
    /// database's commit order decides, then the Kafka coordinates.
    pub fn cmp_capture_order(&self, other: &Self) -> Ordering {
        if self.topic == other.topic && self.partition == other.partition {
            return self.offset.cmp(&other.offset);
        }
        match (self.db.commit_order_key(), other.db.commit_order_key()) {
            (Some(a), Some(b)) if a != b => a.cmp(&b),
            _ => (&self.topic, self.partition, self.offset).cmp(&(
                &other.topic,
                other.partition,
                other.offset,
            )),
        }
    }
}

/// Per topic-partition, the first offset a batch holds: with the table's checkpoint it tells
/// whether another writer committed part of the batch since it was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstOffsets {
    /// topic → partition → first offset.
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl FirstOffsets {
    /// Records a position of the batch.
    pub fn note(&mut self, topic: &str, partition: i32, offset: i64) {
        // Called once per event: the topic's name is copied only the first time.
        if !self.offsets.contains_key(topic) {
            self.offsets.insert(topic.to_string(), BTreeMap::new());
        }
        let first = (self.offsets.get_mut(topic).expect("inserted"))
            .entry(partition)
            .or_insert(offset);
        *first = (*first).min(offset);
    }

    /// Adds the positions of `other`.
    pub fn merge(&mut self, other: &FirstOffsets) {
        for (topic, parts) in &other.offsets {
            for (&p, &offset) in parts {
                self.note(topic, p, offset);
            }
        }
    }
}

/// Per topic-partition, the next Kafka offset to read: everything before it is in the table.
///
/// Sinks store it atomically with the data it covers and hand it back on restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// topic → partition → next offset.
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl Checkpoint {
    /// The next offset to read for a topic-partition, if the checkpoint has one.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(topic)?.get(&partition).copied()
    }

    /// Records that everything up to and including `offset` is in.
    pub fn advance(&mut self, topic: &str, partition: i32, offset: i64) {
        // Called once per event: the topic's name is copied only the first time.
        if !self.offsets.contains_key(topic) {
            self.offsets.insert(topic.to_string(), BTreeMap::new());
        }
        let next = self
            .offsets
            .get_mut(topic)
            .expect("inserted")
            .entry(partition)
            .or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    /// Adds every position of `other` (keeping the larger offset of each partition).
    pub fn merge(&mut self, other: &Checkpoint) {
        for (topic, parts) in &other.offsets {
            for (&p, &next) in parts {
                self.advance(topic, p, next - 1);
            }
        }
    }

    /// True when every position in `self` is at or before the matching position in `committed`,
    /// i.e. a commit carrying `self` adds nothing to a table that holds `committed`.
    pub fn is_covered_by(&self, committed: &Checkpoint) -> bool {
        self.offsets.iter().all(|(topic, parts)| {
            parts
                .iter()
                .all(|(&p, &next)| committed.next_offset(topic, p).is_some_and(|c| c >= next))
        })
    }

    /// True when the checkpoint holds no position.
    pub fn is_empty(&self) -> bool {
        self.offsets.values().all(|p| p.is_empty())
    }

    /// The first of `first`'s positions this checkpoint already holds, as (topic, partition,
    /// first offset, next offset here): a batch starting there overlaps what is committed.
    pub fn overlap<'a>(&self, first: &'a FirstOffsets) -> Option<(&'a str, i32, i64, i64)> {
        first.offsets.iter().find_map(|(topic, parts)| {
            parts.iter().find_map(|(&p, &offset)| {
                let next = self.next_offset(topic, p)?;
                (next > offset).then_some((topic.as_str(), p, offset, next))
            })
        })
    }

    /// Compact text form, `topic:partition=next,...`, for table metadata that only takes strings.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("checkpoint serialises")
    }

    /// Parses [`Checkpoint::to_json`] output.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Config(format!("bad checkpoint `{s}`: {e}")))
    }
}

/// Which cells of a batch were not sent by the source and must keep the value the table already
/// holds: Postgres unchanged TOAST values (`__debezium_unavailable_value`), and columns a row's
/// schema did not have yet (filled from the table, or the column default for a new row).
///
/// One optional mask per column, `true` = unchanged; `None` = the column is complete.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnchangedMask {
    columns: Vec<Option<BooleanArray>>,
}

impl UnchangedMask {
    /// A mask from per-column masks (`None` = nothing unchanged in that column).
    pub fn new(columns: Vec<Option<BooleanArray>>) -> Self {
        let columns = columns
            .into_iter()
            .map(|m| m.filter(|m| m.true_count() > 0))
            .collect();
        UnchangedMask { columns }
    }

    /// A mask with nothing unchanged.
    pub fn none(num_columns: usize) -> Self {
        UnchangedMask {
            columns: vec![None; num_columns],
        }
    }

    /// The mask of one column, if any of its cells are unchanged.
    pub fn column(&self, index: usize) -> Option<&BooleanArray> {
        self.columns.get(index).and_then(|m| m.as_ref())
    }

    /// Whether one cell is unchanged.
    pub fn is_unchanged(&self, column: usize, row: usize) -> bool {
        self.column(column).is_some_and(|m| m.value(row))
    }

    /// True when no cell is unchanged.
    pub fn is_empty(&self) -> bool {
        self.columns.iter().all(|m| m.is_none())
    }

    /// Number of columns covered.
    pub fn num_columns(&self) -> usize {
        self.columns.len()
    }

    /// The per-column masks.
    pub fn columns(&self) -> &[Option<BooleanArray>] {
        &self.columns
    }
}

/// Metadata of one event in a [`ChangeBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    /// Operation.
    pub op: Op,
    /// Source position.
    pub position: SourcePosition,
    /// When the change happened in the database (`source.ts_ms`), ms since the epoch.
    pub source_ts_ms: Option<i64>,
    /// Transaction id (Debezium `transaction.id`, else the database's own id).
    pub tx_id: Option<Arc<str>>,
    /// A Kafka tombstone (a record without a value) right after a delete of its partition:
    /// Debezium's second record of a delete, which says nothing the delete did not. (A
    /// tombstone after anything else is a delete of its own, without a source position or
    /// time.)
    #[serde(default)]
    pub tombstone_of_delete: bool,
}

/// Decoded events of one table sharing one schema, column by column.
///
/// `rows` holds one row image per event: the `after` image of inserts, updates and snapshot
/// reads; for deletes the `before` image (only its key columns are meaningful, Postgres sends
/// fillers for the rest), for truncates all nulls.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    /// Target table.
    pub table: TableId,
    /// Primary-key column names, in key order.
    pub key_columns: Arc<[String]>,
    /// Row images.
    pub rows: RecordBatch,
    /// Per event metadata, one entry per row.
    pub events: Vec<EventMeta>,
    /// Cells the source did not send.
    pub unchanged: UnchangedMask,
}

impl ChangeBatch {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The schema of the row images.
    pub fn schema(&self) -> SchemaRef {
        self.rows.schema()
    }

    /// The one-event view of row `i`.
    pub fn event(&self, i: usize) -> ChangeEvent {
        let meta = &self.events[i];
        let row = self.rows.slice(i, 1);
        let key_idx: Vec<usize> = self
            .key_columns
            .iter()
            .filter_map(|k| self.rows.schema().index_of(k).ok())
            .collect();
        let key = row.project(&key_idx).ok();
        let (before, after) = match meta.op {
            Op::Delete => (Some(row), None),
            Op::Truncate => (None, None),
            _ => (None, Some(row)),
        };
        let unchanged_columns = (0..self.rows.num_columns())
            .filter(|&c| self.unchanged.is_unchanged(c, i))
            .map(|c| self.rows.schema().field(c).name().clone())
            .collect();
        ChangeEvent {
            op: meta.op,
            table: self.table.clone(),
            key: if meta.op == Op::Truncate { None } else { key },
            before,
            after,
            unchanged_columns,
            position: meta.position.clone(),
            source_ts_ms: meta.source_ts_ms,
            tx_id: meta.tx_id.as_deref().map(str::to_string),
        }
    }
}

/// One change of one row, as a self-contained value.
///
/// Images are one-row Arrow batches so that types stay exact; they serialise as Arrow IPC
/// (base64 in JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Operation.
    pub op: Op,
    /// Table.
    pub table: TableId,
    /// Primary key of the row (absent for truncate).
    #[serde(with = "ipc_serde")]
    pub key: Option<RecordBatch>,
    /// Row before the change (deletes; Debezium sends updates' `before` only with
    /// `REPLICA IDENTITY FULL`).
    #[serde(with = "ipc_serde")]
    pub before: Option<RecordBatch>,
    /// Row after the change.
    #[serde(with = "ipc_serde")]
    pub after: Option<RecordBatch>,
    /// Columns of `after` that the source did not send (unchanged TOAST values).
    pub unchanged_columns: Vec<String>,
    /// Source position.
    pub position: SourcePosition,
    /// Database timestamp of the change, ms since the epoch.
    pub source_ts_ms: Option<i64>,
    /// Transaction id.
    pub tx_id: Option<String>,
}

/// Serde of optional record batches as base64 Arrow IPC streams.
mod ipc_serde {
    use arrow_array::RecordBatch;
    use base64::Engine;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(batch: &Option<RecordBatch>, s: S) -> Result<S::Ok, S::Error> {
        match batch {
            None => s.serialize_none(),
            Some(b) => {
                let mut buf = Vec::new();
                let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut buf, &b.schema())
                    .map_err(serde::ser::Error::custom)?;
                w.write(b).map_err(serde::ser::Error::custom)?;
                w.finish().map_err(serde::ser::Error::custom)?;
                drop(w);
                s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(buf))
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RecordBatch>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(D::Error::custom)?;
        let mut r = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(D::Error::custom)?;
        r.next()
            .transpose()
            .map_err(D::Error::custom)?
            .ok_or_else(|| D::Error::custom("empty IPC stream"))
            .map(Some)
    }
}

/// Concatenates columns, mapping the Arrow error to ours.
pub(crate) fn concat_arrays(context: &str, arrays: &[&dyn Array]) -> Result<ArrayRef> {
    arrow_select::concat::concat(arrays).map_err(|e| Error::arrow(context, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_covers() {
        let mut a = Checkpoint::default();
        a.advance("t", 0, 9);
        let mut b = Checkpoint::default();
        b.advance("t", 0, 4);
        assert!(b.is_covered_by(&a));
        assert!(!a.is_covered_by(&b));
        b.advance("u", 1, 0);
        assert!(!b.is_covered_by(&a));
        assert_eq!(Checkpoint::from_json(&a.to_json()).unwrap(), a);
    }

    #[test]
    fn capture_order_prefers_offsets_within_a_partition() {
        let pos = |p, o, lsn| SourcePosition {
            topic: "t".into(),
            partition: p,
            offset: o,
            db: DbPosition::Postgres {
                lsn,
                last_commit_lsn: Some(1),
                tx_id: None,
            },
        };
        // Same partition: offset wins even against a smaller LSN.
        assert_eq!(
            pos(0, 1, 50).cmp_capture_order(&pos(0, 2, 10)),
            Ordering::Less
        );
        // Across partitions the database order decides.
        assert_eq!(
            pos(0, 9, 50).cmp_capture_order(&pos(1, 2, 10)),
            Ordering::Greater
        );
    }
}
