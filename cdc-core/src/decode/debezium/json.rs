//! Debezium change events in Kafka Connect JSON, decoded column by column.
//!
//! Handles every form the JsonConverter and Debezium produce:
//! - the envelope (`before`/`after`/`source`/`op`), with `{"schema", "payload"}` or bare
//!   (`schemas.enable=false`: the column types then come from a given Arrow schema);
//! - `ExtractNewRecordState` ("unwrapped") rows with `__op`, `__deleted`, `__lsn`,
//!   `__source_ts_ms` and other `__` fields;
//! - tombstones (a null value: a delete of the record key), snapshot reads and truncates;
//! - records of the transaction-metadata, schema-change and heartbeat topics, and Postgres
//!   logical decoding messages, which are recognised and reported, never taken for rows.
//!
//! Row values stream from the JSON text into per-column builders; a parsed value schema is
//! cached by its text, so each distinct schema is parsed once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{Fields, Schema, SchemaRef};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::columns::{builders, Cell, CellSeed, ColumnBuilder, Placeholder};
use super::types::{is_metadata_field, row_fields, ConnectSchema};
use crate::error::{Error, RecordLocation, Result};
use crate::model::{
    ChangeBatch, DbPosition, EventMeta, Op, SourcePosition, TableId, UnchangedMask,
};
use crate::source::RawRecord;

/// What to do with a row field that the table's schema does not have (only possible for
/// schemaless records, whose types come from a given schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownColumns {
    /// Fail with an error naming the column (default: nothing is dropped silently).
    #[default]
    Error,
    /// Ignore the field.
    Ignore,
}

/// Settings of the Debezium JSON decoder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Debezium's `unavailable.value.placeholder` (unchanged TOAST values).
    pub unavailable_value_placeholder: String,
    /// Fields of schemaless rows that the table schema lacks.
    pub unknown_columns: UnknownColumns,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            unavailable_value_placeholder: "__debezium_unavailable_value".to_string(),
            unknown_columns: UnknownColumns::Error,
        }
    }
}

/// What one record was.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A row change, appended to its table's batch.
    Row(TableId, Op),
    /// A tombstone, taken as a delete of its key.
    Tombstone(TableId),
    /// A tombstone without a key right after a delete of the same partition: redundant (the
    /// delete event already removed the row), counted and skipped.
    RedundantTombstone,
    /// A transaction BEGIN/END record (`provide.transaction.metadata`).
    TransactionMarker {
        /// `BEGIN` or `END`.
        status: String,
        /// Transaction id.
        id: String,
        /// Events in the transaction (END only).
        event_count: Option<i64>,
    },
    /// A schema-change topic record (MySQL/MariaDB DDL history).
    SchemaChange {
        /// The DDL statement, when given.
        ddl: Option<String>,
    },
    /// A heartbeat.
    Heartbeat,
    /// A Postgres logical decoding message (`op: m`).
    Message,
}

/// Counts of what was decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    /// Row changes.
    pub rows: u64,
    /// Tombstones turned into deletes.
    pub tombstones: u64,
    /// Redundant tombstones skipped.
    pub redundant_tombstones: u64,
    /// Transaction markers.
    pub transaction_markers: u64,
    /// Schema-change records.
    pub schema_changes: u64,
    /// Heartbeats.
    pub heartbeats: u64,
    /// Logical decoding messages.
    pub messages: u64,
}

/// What the decoder knows of a table before its records arrive: its schema (needed for
/// schemaless records) and primary key.
#[derive(Debug, Clone, Default)]
pub struct TableHint {
    /// Arrow schema of the table's rows.
    pub schema: Option<SchemaRef>,
    /// Primary-key columns.
    pub key_columns: Option<Vec<String>>,
}

/// The row layout of one value schema.
#[derive(Debug)]
struct RowLayout {
    fields: Fields,
    fingerprint: u64,
}

/// A cache of things parsed from schema texts, keyed by the text.
struct SchemaCache<T> {
    last: Option<(String, Arc<T>)>,
    all: HashMap<u64, Vec<(String, Arc<T>)>>,
}

impl<T> Default for SchemaCache<T> {
    fn default() -> Self {
        SchemaCache {
            last: None,
            all: HashMap::new(),
        }
    }
}

impl<T> SchemaCache<T> {
    fn get_or_try<E>(
        &mut self,
        text: &str,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some((t, v)) = &self.last {
            if t == text {
                return Ok(v.clone());
            }
        }
        let h = fingerprint(text);
        let bucket = self.all.entry(h).or_default();
        let v = match bucket.iter().find(|(t, _)| t == text) {
            Some((_, v)) => v.clone(),
            None => {
                let v = Arc::new(make()?);
                bucket.push((text.to_string(), v.clone()));
                v
            }
        };
        self.last = Some((text.to_string(), v.clone()));
        Ok(v)
    }
}

fn fingerprint(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// The builders of one table's current batch.
struct TableDecoder {
    layout: Arc<RowLayout>,
    builders: Vec<ColumnBuilder>,
    index: HashMap<String, usize>,
    key_columns: Option<Arc<[String]>>,
    events: Vec<EventMeta>,
    /// Per column, which rows are unchanged (allocated on first use).
    unchanged: Vec<Option<Vec<bool>>>,
    seen: Vec<bool>,
}

impl TableDecoder {
    fn new(
        table: &TableId,
        layout: Arc<RowLayout>,
        key_columns: Option<Arc<[String]>>,
    ) -> Result<Self> {
        let builders =
            builders(&layout.fields).map_err(|(column, message)| Error::UnsupportedSchema {
                table: table.to_string(),
                column,
                message,
            })?;
        let index = layout
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().clone(), i))
            .collect();
        let n = layout.fields.len();
        Ok(TableDecoder {
            layout,
            builders,
            index,
            key_columns,
            events: Vec::new(),
            unchanged: vec![None; n],
            seen: vec![false; n],
        })
    }

    fn rows(&self) -> usize {
        self.events.len()
    }

    fn mark_unchanged(&mut self, column: usize, row: usize) {
        let mask = self.unchanged[column].get_or_insert_with(Vec::new);
        mask.resize(row, false);
        mask.push(true);
    }

    fn rollback(&mut self, rows: usize) {
        for b in &mut self.builders {
            b.truncate(rows);
        }
        for m in self.unchanged.iter_mut().flatten() {
            m.truncate(rows);
        }
    }

    fn push_null_row(&mut self) {
        for b in &mut self.builders {
            b.push_null();
        }
    }

    fn finish(&mut self, table: &TableId) -> Result<Option<ChangeBatch>> {
        let rows = self.rows();
        if rows == 0 {
            return Ok(None);
        }
        let columns = self
            .builders
            .iter_mut()
            .map(|b| {
                b.finish().map_err(|message| Error::UnsupportedSchema {
                    table: table.to_string(),
                    column: b.field().name().clone(),
                    message,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let schema = Arc::new(Schema::new(self.layout.fields.clone()));
        let batch = RecordBatch::try_new_with_options(
            schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| Error::arrow(format!("building the change batch of {table}"), e))?;
        let unchanged = UnchangedMask::new(
            self.unchanged
                .iter_mut()
                .map(|m| {
                    m.take().map(|mut m| {
                        m.resize(rows, false);
                        BooleanArray::from(m)
                    })
                })
                .collect(),
        );
        Ok(Some(ChangeBatch {
            table: table.clone(),
            key_columns: self
                .key_columns
                .clone()
                .unwrap_or_else(|| Arc::from(Vec::new())),
            rows: batch,
            events: std::mem::take(&mut self.events),
            unchanged,
        }))
    }
}

/// `source` block fields used for positions (both Postgres and MySQL/MariaDB spellings).
#[derive(Debug, Default, Deserialize)]
struct SourceBlock<'a> {
    #[serde(borrow, default)]
    connector: Option<Cow<'a, str>>,
    #[serde(default)]
    ts_ms: Option<i64>,
    #[serde(borrow, default)]
    db: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(default)]
    lsn: Option<u64>,
    #[serde(borrow, default)]
    sequence: Option<Cow<'a, str>>,
    #[serde(default, rename = "txId")]
    tx_id: Option<i64>,
    #[serde(borrow, default)]
    file: Option<Cow<'a, str>>,
    #[serde(default)]
    pos: Option<u64>,
    #[serde(default)]
    row: Option<u32>,
    #[serde(borrow, default)]
    gtid: Option<Cow<'a, str>>,
}

impl SourceBlock<'_> {
    fn position(&self) -> DbPosition {
        match self.connector.as_deref() {
            Some("postgresql") => match self.lsn {
                Some(lsn) => DbPosition::Postgres {
                    lsn,
                    last_commit_lsn: self.sequence.as_deref().and_then(last_commit_lsn),
                    tx_id: self.tx_id,
                },
                None => DbPosition::Unknown,
            },
            Some("mysql" | "mariadb") => match (&self.file, self.pos) {
                (Some(file), Some(pos)) => DbPosition::MySql {
                    file: file.to_string(),
                    pos,
                    row: self.row.unwrap_or(0),
                    gtid: self.gtid.as_deref().map(str::to_string),
                },
                _ => DbPosition::Unknown,
            },
            _ => DbPosition::Unknown,
        }
    }

    fn table_id(&self) -> Option<TableId> {
        let ns = self.schema.as_deref().or(self.db.as_deref())?;
        Some(TableId::new(ns, self.table.as_deref()?))
    }
}

/// `sequence` is a JSON array in a string: `["<last commit lsn>","<lsn>"]`.
fn last_commit_lsn(sequence: &str) -> Option<u64> {
    let parts: Vec<Option<String>> = serde_json::from_str(sequence).ok()?;
    parts.first()?.as_deref()?.parse().ok()
}

#[derive(Debug, Default, Deserialize)]
struct TransactionBlock<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

/// A JSON object as its fields' raw texts, in order.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> RawObject<'a> {
    fn parse(text: &'a str) -> std::result::Result<Option<Self>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let v = de::Deserializer::deserialize_any(&mut de, RawObjectVisitor)?;
        de.end()?;
        Ok(v)
    }

    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The field's value unless it is absent or JSON `null`.
    fn non_null(&self, key: &str) -> Option<&'a RawValue> {
        self.get(key).filter(|v| v.get() != "null")
    }
}

struct RawObjectVisitor;

impl<'de> Visitor<'de> for RawObjectVisitor {
    type Value = Option<RawObject<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(8);
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            let v: &'de RawValue = map.next_value()?;
            fields.push((k, v));
        }
        Ok(Some(RawObject(fields)))
    }
}

/// `ExtractNewRecordState` metadata fields of an unwrapped row.
#[derive(Debug, Default)]
struct UnwrapMeta {
    op: Option<String>,
    deleted: Option<bool>,
    lsn: Option<u64>,
    source_ts_ms: Option<i64>,
    file: Option<String>,
    pos: Option<u64>,
    row: Option<u32>,
    tx_id: Option<String>,
}

impl UnwrapMeta {
    fn set(&mut self, name: &str, v: serde_json::Value) {
        use serde_json::Value as V;
        let as_string = |v: &V| match v {
            V::String(s) => Some(s.clone()),
            V::Null => None,
            other => Some(other.to_string()),
        };
        match name {
            "__op" => self.op = as_string(&v),
            "__deleted" => {
                self.deleted = match &v {
                    V::Bool(b) => Some(*b),
                    V::String(s) => Some(s == "true"),
                    _ => None,
                }
            }
            "__lsn" | "__source_lsn" => self.lsn = v.as_u64(),
            "__source_ts_ms" => self.source_ts_ms = v.as_i64(),
            "__source_file" | "__file" => self.file = as_string(&v),
            "__source_pos" | "__pos" => self.pos = v.as_u64(),
            "__source_row" | "__row" => self.row = v.as_u64().and_then(|r| u32::try_from(r).ok()),
            "__source_txId" | "__txId" | "__transaction_id" => self.tx_id = as_string(&v),
            _ => {}
        }
    }

    fn position(&self) -> DbPosition {
        if let (Some(file), Some(pos)) = (&self.file, self.pos) {
            return DbPosition::MySql {
                file: file.clone(),
                pos,
                row: self.row.unwrap_or(0),
                gtid: None,
            };
        }
        match self.lsn {
            Some(lsn) => DbPosition::Postgres {
                lsn,
                last_commit_lsn: None,
                tx_id: self.tx_id.as_deref().and_then(|t| t.parse().ok()),
            },
            None => DbPosition::Unknown,
        }
    }
}

/// Decodes one row object into the table's builders.
struct RowSeed<'a> {
    td: &'a mut TableDecoder,
    placeholder: &'a Placeholder,
    unknown: UnknownColumns,
    unwrapped: bool,
    meta: &'a mut UnwrapMeta,
    /// The field being decoded, for errors.
    current: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let td = self.td;
        let row = td.rows();
        td.seen.iter_mut().for_each(|s| *s = false);
        let mut next_guess = 0usize;
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            // Fields nearly always arrive in schema order: try the next column first.
            let idx = if td
                .layout
                .fields
                .get(next_guess)
                .is_some_and(|f| f.name() == name.as_ref())
            {
                Some(next_guess)
            } else {
                td.index.get(name.as_ref()).copied()
            };
            match idx {
                Some(i) => {
                    if td.seen[i] {
                        *self.current = Some(name.into_owned());
                        return Err(de::Error::custom("duplicate field"));
                    }
                    td.seen[i] = true;
                    next_guess = i + 1;
                    let cell = map
                        .next_value_seed(CellSeed {
                            column: &mut td.builders[i],
                            placeholder: self.placeholder,
                        })
                        .inspect_err(|_| *self.current = Some(name.to_string()))?;
                    if cell == Cell::Unavailable {
                        td.mark_unchanged(i, row);
                    }
                }
                None if self.unwrapped && is_metadata_field(&name) => {
                    let v: serde_json::Value = map.next_value()?;
                    self.meta.set(&name, v);
                }
                None if self.unknown == UnknownColumns::Ignore => {
                    map.next_value::<IgnoredAny>()?;
                }
                None => {
                    *self.current = Some(name.into_owned());
                    return Err(de::Error::custom(
                        "the field is not in the table's schema (records without a schema \
                         need every column in the given schema; or set unknown_columns = \"ignore\")",
                    ));
                }
            }
        }
        // Columns the row did not carry keep the table's value.
        for i in 0..td.builders.len() {
            if !td.seen[i] {
                td.builders[i].push_null();
                td.mark_unchanged(i, row);
            }
        }
        Ok(())
    }
}

/// Decodes Debezium JSON records into [`ChangeBatch`]es, one table at a time.
pub struct DebeziumJsonDecoder {
    config: DecoderConfig,
    placeholder: Placeholder,
    tables: HashMap<TableId, TableDecoder>,
    table_order: Vec<TableId>,
    finished: Vec<ChangeBatch>,
    layouts: SchemaCache<RowLayout>,
    key_schemas: SchemaCache<Vec<String>>,
    hints: HashMap<TableId, TableHint>,
    last_op_was_delete: HashMap<(Arc<str>, i32), bool>,
    stats: DecodeStats,
}

impl DebeziumJsonDecoder {
    /// A decoder with `config`.
    pub fn new(config: DecoderConfig) -> Self {
        let placeholder = Placeholder::new(&config.unavailable_value_placeholder);
        DebeziumJsonDecoder {
            config,
            placeholder,
            tables: HashMap::new(),
            table_order: Vec::new(),
            finished: Vec::new(),
            layouts: SchemaCache::default(),
            key_schemas: SchemaCache::default(),
            hints: HashMap::new(),
            last_op_was_delete: HashMap::new(),
            stats: DecodeStats::default(),
        }
    }

    /// Tells the decoder a table's schema and key (from the table itself or from the user).
    pub fn set_table_hint(&mut self, table: TableId, hint: TableHint) {
        self.hints.insert(table, hint);
    }

    /// What was decoded so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Rows buffered and not yet taken by [`DebeziumJsonDecoder::finish`].
    pub fn buffered_rows(&self) -> usize {
        self.tables.values().map(TableDecoder::rows).sum::<usize>()
            + self.finished.iter().map(ChangeBatch::len).sum::<usize>()
    }

    /// Takes every decoded batch, in decode order per table.
    pub fn finish(&mut self) -> Result<Vec<ChangeBatch>> {
        for table in std::mem::take(&mut self.table_order) {
            if let Some(mut td) = self.tables.remove(&table) {
                if let Some(b) = td.finish(&table)? {
                    self.finished.push(b);
                }
            }
        }
        Ok(std::mem::take(&mut self.finished))
    }

    /// Decodes one record. `table` is where the topic routes to; `None` lets the event's
    /// `source` block name it.
    ///
    /// On error nothing of the record stays in the batch.
    pub fn decode(&mut self, table: Option<&TableId>, record: &RawRecord) -> Result<Decoded> {
        let err = |field: Option<&str>, message: String| {
            Self::decode_error(record, field.map(str::to_string), message)
        };
        let value = match &record.value {
            None => return self.decode_tombstone(table, record),
            Some(v) => {
                std::str::from_utf8(v).map_err(|e| err(None, format!("value is not UTF-8: {e}")))?
            }
        };
        let top = match RawObject::parse(value)
            .map_err(|e| err(None, format!("value is not a JSON object: {e}")))?
        {
            None => return self.decode_tombstone(table, record),
            Some(top) => top,
        };
        // `{"schema": ..., "payload": ...}` is the JsonConverter's schema wrapper.
        let wrapped = top.0.len() == 2 && top.has("schema") && top.has("payload");
        let (schema_text, payload_text, payload) = if wrapped {
            let payload_text = top.get("payload").expect("checked").get();
            match RawObject::parse(payload_text).map_err(|e| err(Some("payload"), e.to_string()))? {
                None => return self.decode_tombstone(table, record),
                Some(p) => (top.non_null("schema").map(|s| s.get()), payload_text, p),
            }
        } else {
            (None, value, top)
        };

        if payload.has("op")
            && payload.has("source")
            && (payload.has("after") || payload.has("before"))
        {
            self.decode_envelope(table, record, schema_text, &payload)
        } else if payload.has("status")
            && payload.has("id")
            && (payload.has("event_count") || payload.has("data_collections"))
        {
            self.stats.transaction_markers += 1;
            let status = raw_string(payload.get("status")).unwrap_or_default();
            let id = raw_string(payload.get("id")).unwrap_or_default();
            let event_count = payload
                .non_null("event_count")
                .and_then(|v| v.get().parse().ok());
            Ok(Decoded::TransactionMarker {
                status,
                id,
                event_count,
            })
        } else if payload.has("ddl") || payload.has("tableChanges") {
            self.stats.schema_changes += 1;
            Ok(Decoded::SchemaChange {
                ddl: raw_string(payload.get("ddl")),
            })
        } else if payload.0.len() == 1 && payload.has("ts_ms") {
            self.stats.heartbeats += 1;
            Ok(Decoded::Heartbeat)
        } else if payload.has("op") && payload.has("message") {
            self.stats.messages += 1;
            Ok(Decoded::Message)
        } else {
            self.decode_unwrapped(table, record, schema_text, payload_text)
        }
    }

    fn location(record: &RawRecord) -> RecordLocation {
        RecordLocation {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
        }
    }

    fn decode_error(
        record: &RawRecord,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Decode {
            location: Self::location(record),
            field,
            message: message.into(),
        }
    }

    /// The row layout of a value schema text, parsed once per distinct text.
    fn layout_from_schema(
        &mut self,
        table: &TableId,
        schema_text: &str,
        envelope: bool,
    ) -> Result<Arc<RowLayout>> {
        let table_name = table.to_string();
        self.layouts.get_or_try(schema_text, || {
            let schema: ConnectSchema =
                serde_json::from_str(schema_text).map_err(|e| Error::UnsupportedSchema {
                    table: table_name.clone(),
                    column: String::new(),
                    message: format!("value schema is not a Connect schema: {e}"),
                })?;
            let row = if envelope {
                schema
                    .field("after")
                    .or_else(|| schema.field("before"))
                    .ok_or_else(|| Error::UnsupportedSchema {
                        table: table_name.clone(),
                        column: "after".into(),
                        message: "envelope schema has no `after` or `before` field".into(),
                    })?
            } else {
                &schema
            };
            let fields = row_fields(&table_name, row, !envelope)?;
            Ok(RowLayout {
                fields: Fields::from(fields),
                fingerprint: fingerprint(schema_text),
            })
        })
    }

    /// The row layout for a record without a schema: the table's given schema.
    fn layout_from_hint(&mut self, table: &TableId, record: &RawRecord) -> Result<Arc<RowLayout>> {
        if let Some(td) = self.tables.get(table) {
            if td.layout.fingerprint == 0 {
                return Ok(td.layout.clone());
            }
        }
        let schema = self.hints.get(table).and_then(|h| h.schema.clone()).ok_or_else(|| {
            Self::decode_error(
                record,
                None,
                format!(
                    "the record carries no schema (schemas.enable=false) and no schema is known for \
                     table `{table}`: create the table first or give its Arrow schema"
                ),
            )
        })?;
        // Fingerprint 0 marks "from the hint": schemaless records never switch layouts.
        Ok(Arc::new(RowLayout {
            fields: schema.fields().clone(),
            fingerprint: 0,
        }))
    }

    /// The key column names from a key record (its schema, or its payload's field names).
    fn key_columns_of(&mut self, record: &RawRecord) -> Result<Option<Vec<String>>> {
        let Some(key) = &record.key else {
            return Ok(None);
        };
        let text = std::str::from_utf8(key)
            .map_err(|e| Self::decode_error(record, Some("key".into()), e.to_string()))?;
        let Some(obj) = RawObject::parse(text)
            .map_err(|e| Self::decode_error(record, Some("key".into()), e.to_string()))?
        else {
            return Ok(None);
        };
        let wrapped = obj.0.len() == 2 && obj.has("schema") && obj.has("payload");
        if wrapped {
            if let Some(schema) = obj.non_null("schema") {
                let names = self.key_schemas.get_or_try(schema.get(), || {
                    let s: ConnectSchema = serde_json::from_str(schema.get()).map_err(|e| {
                        Self::decode_error(record, Some("key.schema".into()), e.to_string())
                    })?;
                    Ok::<_, Error>(
                        s.fields
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(|f| f.field)
                            .collect(),
                    )
                })?;
                return Ok(Some(names.as_ref().clone()));
            }
            let Some(payload) = obj.non_null("payload") else {
                return Ok(None);
            };
            return Ok(RawObject::parse(payload.get())
                .ok()
                .flatten()
                .map(|p| p.0.into_iter().map(|(k, _)| k.into_owned()).collect()));
        }
        Ok(Some(
            obj.0.into_iter().map(|(k, _)| k.into_owned()).collect(),
        ))
    }

    /// The raw key payload object text, if the record has a key.
    fn key_payload(record: &RawRecord) -> Option<String> {
        let text = std::str::from_utf8(record.key.as_ref()?).ok()?;
        let obj = RawObject::parse(text).ok()??;
        if obj.0.len() == 2 && obj.has("schema") && obj.has("payload") {
            obj.non_null("payload").map(|p| p.get().to_string())
        } else {
            Some(text.to_string())
        }
    }

    /// The table decoder for `table` with `layout`, flushing the old batch when the layout
    /// changed (a schema change mid-stream starts a new batch).
    fn table_decoder(
        &mut self,
        table: &TableId,
        layout: Arc<RowLayout>,
        record: &RawRecord,
    ) -> Result<&mut TableDecoder> {
        let switch = match self.tables.get(table) {
            Some(td) => {
                !Arc::ptr_eq(&td.layout, &layout) && td.layout.fingerprint != layout.fingerprint
            }
            None => true,
        };
        if switch {
            let mut key_columns = None;
            if let Some(mut old) = self.tables.remove(table) {
                key_columns = old.key_columns.clone();
                if let Some(b) = old.finish(table)? {
                    self.finished.push(b);
                }
            } else {
                self.table_order.push(table.clone());
            }
            if key_columns.is_none() {
                key_columns = self
                    .hints
                    .get(table)
                    .and_then(|h| h.key_columns.clone())
                    .map(Arc::from);
            }
            let td = TableDecoder::new(table, layout, key_columns)?;
            self.tables.insert(table.clone(), td);
        }
        let needs_key = self.tables[table].key_columns.is_none();
        if needs_key {
            if let Some(k) = self.key_columns_of(record)? {
                self.tables.get_mut(table).expect("inserted").key_columns = Some(Arc::from(k));
            }
        }
        Ok(self.tables.get_mut(table).expect("inserted"))
    }

    fn decode_row_text(
        &mut self,
        table: &TableId,
        record: &RawRecord,
        text: &str,
        unwrapped: bool,
        meta: &mut UnwrapMeta,
    ) -> Result<()> {
        let placeholder = &self.placeholder;
        let unknown = self.config.unknown_columns;
        let td = self.tables.get_mut(table).expect("table decoder exists");
        let rows = td.rows();
        let mut current = None;
        let mut de = serde_json::Deserializer::from_str(text);
        let result = RowSeed {
            td,
            placeholder,
            unknown,
            unwrapped,
            meta,
            current: &mut current,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        if let Err(e) = result {
            td.rollback(rows);
            return Err(Self::decode_error(record, current, e.to_string()));
        }
        Ok(())
    }

    fn push_event(
        &mut self,
        table: &TableId,
        record: &RawRecord,
        op: Op,
        db: DbPosition,
        ts: Option<i64>,
        tx: Option<&str>,
    ) {
        self.last_op_was_delete
            .insert((record.topic.clone(), record.partition), op == Op::Delete);
        let td = self.tables.get_mut(table).expect("table decoder exists");
        let tx_id = match (tx, td.events.last().and_then(|e| e.tx_id.clone())) {
            (Some(t), Some(prev)) if &*prev == t => Some(prev),
            (Some(t), _) => Some(Arc::from(t)),
            (None, _) => None,
        };
        td.events.push(EventMeta {
            op,
            position: SourcePosition {
                topic: record.topic.to_string(),
                partition: record.partition,
                offset: record.offset,
                db,
            },
            source_ts_ms: ts,
            tx_id,
        });
        self.stats.rows += 1;
    }

    fn decode_envelope(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
        schema_text: Option<&str>,
        payload: &RawObject<'_>,
    ) -> Result<Decoded> {
        let op_text = raw_string(payload.get("op")).unwrap_or_default();
        if op_text == "m" {
            self.stats.messages += 1;
            return Ok(Decoded::Message);
        }
        let op = Op::from_code(&op_text).ok_or_else(|| {
            Self::decode_error(
                record,
                Some("op".into()),
                format!("unknown operation `{op_text}`"),
            )
        })?;
        let source: SourceBlock = match payload.non_null("source") {
            Some(s) => serde_json::from_str(s.get())
                .map_err(|e| Self::decode_error(record, Some("source".into()), e.to_string()))?,
            None => SourceBlock::default(),
        };
        let table = match table {
            Some(t) => t.clone(),
            None => source.table_id().ok_or_else(|| {
                Self::decode_error(
                    record,
                    Some("source".into()),
                    "no table route for this topic and no schema/table in `source`",
                )
            })?,
        };
        let tx: Option<TransactionBlock> = payload
            .non_null("transaction")
            .and_then(|t| serde_json::from_str(t.get()).ok());
        let tx_id = tx
            .and_then(|t| t.id.map(Cow::into_owned))
            .or_else(|| source.tx_id.map(|t| t.to_string()))
            .or_else(|| source.gtid.as_deref().map(str::to_string));

        let layout = match schema_text {
            Some(s) => self.layout_from_schema(&table, s, true)?,
            None => self.layout_from_hint(&table, record)?,
        };
        self.table_decoder(&table, layout, record)?;
        let mut meta = UnwrapMeta::default();
        match op {
            Op::Truncate => self.tables.get_mut(&table).expect("exists").push_null_row(),
            Op::Delete => {
                let before = payload.non_null("before").map(|b| b.get().to_string());
                let text = before
                    .or_else(|| Self::key_payload(record))
                    .ok_or_else(|| {
                        Self::decode_error(
                            record,
                            Some("before".into()),
                            "delete without `before` image and without a key",
                        )
                    })?;
                self.decode_row_text(&table, record, &text, false, &mut meta)?;
            }
            _ => {
                let after = payload.non_null("after").ok_or_else(|| {
                    Self::decode_error(
                        record,
                        Some("after".into()),
                        format!("`{op_text}` event without `after` image"),
                    )
                })?;
                self.decode_row_text(&table, record, after.get(), false, &mut meta)?;
            }
        }
        self.push_event(
            &table,
            record,
            op,
            source.position(),
            source.ts_ms,
            tx_id.as_deref(),
        );
        Ok(Decoded::Row(table, op))
    }

    fn decode_unwrapped(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
        schema_text: Option<&str>,
        row_text: &str,
    ) -> Result<Decoded> {
        let table = table.cloned().ok_or_else(|| {
            Self::decode_error(
                record,
                None,
                "unwrapped rows carry no table name: give the topic a table route",
            )
        })?;
        let layout = match schema_text {
            Some(s) => self.layout_from_schema(&table, s, false)?,
            None => self.layout_from_hint(&table, record)?,
        };
        self.table_decoder(&table, layout, record)?;
        let mut meta = UnwrapMeta::default();
        self.decode_row_text(&table, record, row_text, true, &mut meta)?;
        let op = if meta.deleted == Some(true) {
            Op::Delete
        } else {
            match meta.op.as_deref().and_then(Op::from_code) {
                Some(op) => op,
                // Without `__op` an unwrapped row is an upsert of unknown kind.
                None => Op::Update,
            }
        };
        let position = meta.position();
        let tx = meta.tx_id.clone();
        self.push_event(
            &table,
            record,
            op,
            position,
            meta.source_ts_ms,
            tx.as_deref(),
        );
        Ok(Decoded::Row(table, op))
    }

    fn decode_tombstone(&mut self, table: Option<&TableId>, record: &RawRecord) -> Result<Decoded> {
        let redundant = self
            .last_op_was_delete
            .get(&(record.topic.clone(), record.partition))
            .copied()
            .unwrap_or(false);
        let key_payload = Self::key_payload(record);
        let (Some(table), Some(key_text)) = (table, key_payload) else {
            if redundant {
                self.last_op_was_delete
                    .insert((record.topic.clone(), record.partition), false);
                self.stats.redundant_tombstones += 1;
                return Ok(Decoded::RedundantTombstone);
            }
            return Err(Self::decode_error(
                record,
                Some("key".into()),
                "tombstone without a key or table route: its delete cannot be applied \
                 (store Kafka keys with the S3 sink: store.kafka.keys=true)",
            ));
        };
        let table = table.clone();
        let layout = match self.tables.get(&table) {
            Some(td) => td.layout.clone(),
            None => {
                // No row of this table yet in the batch: a batch of just the key columns.
                let names = self.key_columns_of(record)?.unwrap_or_default();
                let hint_schema = self.hints.get(&table).and_then(|h| h.schema.clone());
                let fields = match hint_schema {
                    Some(s) => s.fields().clone(),
                    None => self.key_fields(record, &table, &names)?,
                };
                Arc::new(RowLayout {
                    fingerprint: fingerprint(&format!("{fields:?}")),
                    fields,
                })
            }
        };
        self.table_decoder(&table, layout, record)?;
        let mut meta = UnwrapMeta::default();
        self.decode_row_text(&table, record, &key_text, false, &mut meta)?;
        self.push_event(&table, record, Op::Delete, DbPosition::Unknown, None, None);
        self.stats.tombstones += 1;
        Ok(Decoded::Tombstone(table))
    }

    /// Arrow fields of the key columns, from the key record's schema.
    fn key_fields(
        &mut self,
        record: &RawRecord,
        table: &TableId,
        names: &[String],
    ) -> Result<Fields> {
        let text = record
            .key
            .as_ref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or("null");
        let obj = RawObject::parse(text).ok().flatten();
        let schema = obj.as_ref().and_then(|o| o.non_null("schema")).ok_or_else(|| {
            Self::decode_error(
                record,
                Some("key".into()),
                format!("tombstone for table `{table}` with a schemaless key and no known table schema ({names:?})"),
            )
        })?;
        let s: ConnectSchema = serde_json::from_str(schema.get())
            .map_err(|e| Self::decode_error(record, Some("key.schema".into()), e.to_string()))?;
        Ok(Fields::from(row_fields(&table.to_string(), &s, false)?))
    }
}

/// A JSON string value's text, or the raw JSON of anything else.
fn raw_string(v: Option<&RawValue>) -> Option<String> {
    let v = v?;
    match serde_json::from_str::<Option<String>>(v.get()) {
        Ok(s) => s,
        Err(_) => Some(v.get().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(offset: i64, key: Option<&str>, value: Option<&str>) -> RawRecord {
        RawRecord {
            topic: Arc::from("srv.public.t"),
            partition: 0,
            offset,
            key: key.map(|k| Bytes::from(k.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
        }
    }

    const SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"}],"optional":true,"field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"}],"optional":true,"field":"after"},{"type":"struct","fields":[],"optional":false,"field":"source"},{"type":"string","optional":false,"field":"op"}],"name":"srv.public.t.Envelope"}"#;

    fn envelope(op: &str, before: &str, after: &str) -> String {
        format!(
            r#"{{"schema":{SCHEMA},"payload":{{"before":{before},"after":{after},"source":{{"connector":"postgresql","lsn":10,"ts_ms":5}},"op":"{op}"}}}}"#
        )
    }

    #[test]
    fn bad_row_is_rolled_back_and_named() {
        let t = TableId::new("public", "t");
        let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
        let key = Some(r#"{"id":1}"#);
        d.decode(
            Some(&t),
            &record(
                0,
                key,
                Some(&envelope("c", "null", r#"{"id":1,"name":"a"}"#)),
            ),
        )
        .unwrap();
        let err = d
            .decode(
                Some(&t),
                &record(
                    1,
                    key,
                    Some(&envelope("c", "null", r#"{"id":2,"name":7.5}"#)),
                ),
            )
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("srv.public.t[0]@1") && msg.contains("`name`"),
            "{msg}"
        );
        let batches = d.finish().unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), 1);
        assert_eq!(batches[0].rows.num_rows(), 1);
        assert_eq!(&*batches[0].key_columns, &["id".to_string()]);
    }

    #[test]
    fn mysql_and_postgis_types() {
        let schema = r#"{"type":"struct","name":"x.Envelope","fields":[
          {"type":"struct","optional":true,"field":"before","fields":[]},
          {"type":"struct","optional":true,"field":"after","fields":[
            {"type":"int32","field":"id"},
            {"type":"struct","name":"io.debezium.data.geometry.Geometry","optional":true,"field":"geo","fields":[
              {"type":"bytes","field":"wkb"},{"type":"int32","optional":true,"field":"srid"}]},
            {"type":"struct","name":"io.debezium.data.geometry.Point","optional":true,"field":"pt","fields":[
              {"type":"double","field":"x"},{"type":"double","field":"y"},
              {"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}]},
            {"type":"bytes","name":"io.debezium.data.Bits","parameters":{"length":"10"},"optional":true,"field":"bits"},
            {"type":"int32","name":"io.debezium.time.Year","optional":true,"field":"yr"},
            {"type":"string","name":"io.debezium.data.EnumSet","parameters":{"allowed":"a,b,c"},"optional":true,"field":"tags"},
            {"type":"string","name":"io.debezium.time.ZonedTime","optional":true,"field":"tz_time"},
            {"type":"int64","name":"io.debezium.time.NanoTimestamp","optional":true,"field":"nano_ts"},
            {"type":"int64","name":"io.debezium.time.Timestamp","optional":true,"field":"ms_ts"},
            {"type":"map","keys":{"type":"string"},"values":{"type":"string","optional":true},"optional":true,"field":"h"},
            {"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"3","connect.decimal.precision":"50"},"optional":true,"field":"big"}
          ]},
          {"type":"struct","field":"source","fields":[]},{"type":"string","field":"op"}]}"#;
        let payload = r#"{"before":null,"after":{"id":1,
            "geo":{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":4326},
            "pt":{"x":1.5,"y":-2.0,"wkb":null,"srid":null},
            "bits":"AQI=","yr":2024,"tags":"a,c","tz_time":"12:00:00.5+02:00",
            "nano_ts":1700000000123456789,"ms_ts":1529476623000,"h":{"k":"v","n":null},
            "big":"/w=="},
          "source":{"connector":"mysql","file":"mysql-bin.000001","pos":4,"row":1,"gtid":"u:7"},"op":"c"}"#;
        let value = format!(r#"{{"schema":{schema},"payload":{payload}}}"#);
        let t = TableId::new("db", "x");
        let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
        d.decode(Some(&t), &record(0, Some(r#"{"id":1}"#), Some(&value)))
            .unwrap();
        let b = d.finish().unwrap().remove(0);
        let s = b.rows.schema();
        assert_eq!(
            s.field_with_name("big").unwrap().data_type(),
            &arrow_schema::DataType::Decimal256(50, 3)
        );
        assert_eq!(
            s.field_with_name("nano_ts").unwrap().data_type(),
            &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None)
        );
        assert!(matches!(
            &b.events[0].position.db,
            DbPosition::MySql { pos: 4, row: 1, gtid: Some(g), .. } if g == "u:7"
        ));
        let row = crate::render::render_rows(&b.rows).unwrap().remove(0);
        assert_eq!(
            serde_json::Value::Object(row),
            serde_json::json!({
                "id": 1,
                "geo": {"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": 4326},
                "pt": {"x": 1.5, "y": -2.0, "wkb": null, "srid": null},
                "bits": "AQI=", "yr": 2024, "tags": "a,c",
                "tz_time": "10:00:00.500000",
                "nano_ts": "2023-11-14T22:13:20.123456789",
                "ms_ts": "2018-06-20T06:37:03.000000",
                "h": {"k": "v", "n": null},
                "big": "-0.001"
            })
        );
    }

    #[test]
    fn control_records_are_not_rows() {
        let t = TableId::new("public", "t");
        let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
        let tx = r#"{"status":"BEGIN","id":"571","event_count":null,"data_collections":null}"#;
        assert!(matches!(
            d.decode(Some(&t), &record(0, None, Some(tx))).unwrap(),
            Decoded::TransactionMarker { .. }
        ));
        let ddl = r#"{"source":{"server":"mysql"},"databaseName":"inventory","ddl":"ALTER TABLE t ADD c INT","tableChanges":[]}"#;
        assert!(matches!(
            d.decode(None, &record(1, None, Some(ddl))).unwrap(),
            Decoded::SchemaChange { .. }
        ));
        assert!(d.finish().unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let t = TableId::new("public", "t");
        let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
        for v in [
            "{",
            "[1,2]",
            "\"x\"",
            "{\"schema\":1,\"payload\":2}",
            "\u{0}",
        ] {
            assert!(
                d.decode(Some(&t), &record(0, None, Some(v))).is_err(),
                "{v}"
            );
        }
    }
}
