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
// Keys are looked up several times per event: a fast hasher (table names, column names).
use foldhash::HashMap;

use std::sync::Arc;

use arrow_schema::Fields;
use serde::de::DeserializeSeed;

use super::columns::Placeholder;
use super::types::{row_fields, ConnectSchema};
use crate::decode::{DecodeStats, Decoded, DecoderConfig, TableHint};
use crate::error::{Error, RecordLocation, Result};
use crate::model::{ChangeBatch, DbPosition, EventMeta, Op, SourcePosition, TableId};
use crate::source::RawRecord;

use super::avro_event::AvroPlan;
use super::envelope::{
    raw_string, PayloadKind, RawObject, SourceBlock, TransactionBlock, UnwrapMeta,
};
use super::keys::LastOpWasDelete;
use super::single_pass::{self, After, EnvelopeOrders, EnvelopeParts, RowInput, RowTarget};
use super::table::{fingerprint, RowLayout, RowSeed, SchemaCache, TableDecoder};
use crate::decode::avro::{self, SchemaRegistry};

/// An envelope's row images as the row decode takes them.
pub(super) struct Images<'p> {
    pub(super) before: Option<RowInput<'p>>,
    pub(super) after: After<'p>,
}

/// Decodes Debezium JSON records into [`ChangeBatch`]es, one table at a time.
pub struct DebeziumJsonDecoder {
    pub(super) config: DecoderConfig,
    pub(super) placeholder: Placeholder,
    pub(super) tables: HashMap<TableId, TableDecoder>,
    pub(super) table_order: Vec<TableId>,
    pub(super) finished: Vec<ChangeBatch>,
    pub(super) layouts: SchemaCache<RowLayout>,
    pub(super) key_schemas: SchemaCache<Vec<String>>,
    pub(super) hints: HashMap<TableId, TableHint>,
    pub(super) last_op_was_delete: LastOpWasDelete,
    pub(super) stats: DecodeStats,
    /// Avro writer schemas by registry id, and where unknown ones come from.
    pub(super) avro: AvroSchemas,
    /// The key orders the single pass learned from the envelopes before.
    pub(super) envelope_orders: EnvelopeOrders,
}

/// The Avro writer schemas a decoder has seen, by id, and the registry for new ids.
#[derive(Clone, Default)]
pub(super) struct AvroSchemas {
    pub(super) plans: HashMap<avro::SchemaId, Arc<AvroPlan>>,
    pub(super) registry: Option<Arc<dyn SchemaRegistry>>,
    /// Plans of the schemas of container files' datums, by text (values and keys apart, so
    /// each stays the cache's last hit).
    pub(super) value_texts: SchemaCache<AvroPlan>,
    pub(super) key_texts: SchemaCache<AvroPlan>,
}

impl DebeziumJsonDecoder {
    /// A decoder with `config`.
    pub fn new(config: DecoderConfig) -> Self {
        let placeholder = Placeholder::new(&config.unavailable_value_placeholder);
        DebeziumJsonDecoder {
            config,
            placeholder,
            tables: HashMap::default(),
            table_order: Vec::new(),
            finished: Vec::new(),
            layouts: SchemaCache::default(),
            key_schemas: SchemaCache::default(),
            hints: HashMap::default(),
            last_op_was_delete: LastOpWasDelete::default(),
            stats: DecodeStats::default(),
            avro: AvroSchemas::default(),
            envelope_orders: EnvelopeOrders::default(),
        }
    }

    /// Loads the schemas of `topics`' records from the registry ahead of them: the subjects
    /// `<topic>-value` and `<topic>-key` (the converter's default TopicNameStrategy). Logged,
    /// never an error: records whose schemas are not loaded fetch them by id.
    pub fn preload_schemas(&self, topics: &[String]) {
        let Some(registry) = &self.avro.registry else {
            return;
        };
        let subjects: Vec<String> = (topics.iter())
            .flat_map(|t| [format!("{t}-value"), format!("{t}-key")])
            .collect();
        match registry.preload(&subjects) {
            Ok(0) => {}
            Ok(schemas) => tracing::info!(
                schemas,
                topics = topics.len(),
                "writer schemas loaded ahead"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "loading writer schemas ahead failed; records fetch theirs by id")
            }
        }
    }

    /// Takes the writer schemas of Avro records (Confluent wire format) from `registry`.
    pub fn with_schema_registry(mut self, registry: Arc<dyn SchemaRegistry>) -> Self {
        self.avro.registry = Some(registry);
        self
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

    /// A decoder for a later stretch of the same records: the same settings, hints and
    /// parsed schemas, nothing buffered (see [`DebeziumJsonDecoder::decode_all`]).
    pub(crate) fn fork(&self) -> Self {
        DebeziumJsonDecoder {
            config: self.config.clone(),
            placeholder: self.placeholder.clone(),
            tables: HashMap::default(),
            table_order: Vec::new(),
            finished: Vec::new(),
            layouts: self.layouts.clone(),
            key_schemas: self.key_schemas.clone(),
            hints: self.hints.clone(),
            last_op_was_delete: LastOpWasDelete::default(),
            stats: DecodeStats::default(),
            avro: self.avro.clone(),
            envelope_orders: self.envelope_orders.clone(),
        }
    }

    /// Takes over what `fork` decoded after everything this decoder holds: its batches
    /// (after this decoder's open ones, which are closed first), partition states and counts.
    pub(crate) fn absorb(&mut self, mut fork: DebeziumJsonDecoder) -> Result<()> {
        let own = self.finish()?;
        self.finished = own;
        self.finished.extend(fork.finish()?);
        self.last_op_was_delete.extend(fork.last_op_was_delete);
        self.stats.add(&fork.stats);
        Ok(())
    }

    /// Decodes one record. `table` is where the topic routes to; `None` lets the event's
    /// `source` block name it.
    ///
    /// On error nothing of the record stays in the batch.
    pub fn decode(&mut self, table: Option<&TableId>, record: &RawRecord) -> Result<Decoded> {
        let err = |field: Option<&str>, message: String| {
            Self::decode_error(record, field.map(str::to_string), message)
        };
        let Some(bytes) = &record.value else {
            return self.decode_tombstone(table, record);
        };
        if let Some(schema) = &record.value_schema {
            let plan = self.datum_plan(record, "value", schema)?;
            return self.decode_avro(table, record, &plan, bytes);
        }
        if avro::is_framed_avro(bytes) {
            let (plan, body) = self.avro_plan(record, "value", bytes)?;
            return self.decode_avro(table, record, &plan, &body);
        }
        if let Some(decoded) = self.try_single_pass(table, record, bytes)? {
            return Ok(decoded);
        }
        if let Some((schema, payload_text)) = self.split_known_schema(bytes) {
            if let Ok(Some(payload)) = RawObject::parse(payload_text) {
                return self.decode_payload(table, record, Some(&*schema), payload_text, payload);
            }
        }
        let value = std::str::from_utf8(bytes)
            .map_err(|e| err(None, format!("value is not UTF-8: {e}")))?;
        let top = match RawObject::parse(value)
            .map_err(|e| err(None, format!("value is not a JSON object: {e}")))?
        {
            None => return self.decode_tombstone(table, record),
            Some(top) => top,
        };
        // `{"schema": ..., "payload": ...}` is the JsonConverter's schema wrapper.
        let wrapped = top.0.len() == 2 && top.has("schema") && top.has("payload");
        if !wrapped {
            return self.decode_payload(table, record, None, value, top);
        }
        let payload_text = top.get("payload").expect("checked").get();
        match RawObject::parse(payload_text).map_err(|e| err(Some("payload"), e.to_string()))? {
            None => self.decode_tombstone(table, record),
            Some(p) => {
                let schema_text = top.non_null("schema").map(|s| s.get());
                self.decode_payload(table, record, schema_text, payload_text, p)
            }
        }
    }

    /// `{"schema":S,"payload":P}` with `S` the schema text seen last, byte for byte, as
    /// the JsonConverter writes every record of a table: `S` and `P`, found by comparing
    /// bytes instead of parsing the (usually much longer) schema again. Only `P` is checked
    /// for UTF-8 (`S` equals a valid string).
    fn split_known_schema<'v>(&self, value: &'v [u8]) -> Option<(Arc<str>, &'v str)> {
        let schema = self.layouts.last_text()?;
        let payload = value
            .strip_prefix(br#"{"schema":"#)?
            .strip_prefix(schema.as_bytes())?
            .strip_prefix(br#","payload":"#)?
            .trim_ascii_end()
            .strip_suffix(b"}")?;
        Some((schema.clone(), std::str::from_utf8(payload).ok()?))
    }

    /// Decodes a record's payload (the whole value when not wrapped) by what it is.
    fn decode_payload(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
        schema_text: Option<&str>,
        payload_text: &str,
        payload: RawObject<'_>,
    ) -> Result<Decoded> {
        match PayloadKind::of(payload.0.len(), |f| payload.has(f)) {
            PayloadKind::Envelope => self.decode_envelope(table, record, schema_text, &payload),
            PayloadKind::Unwrapped => {
                self.decode_unwrapped(table, record, schema_text, payload_text)
            }
            kind => Ok(self.decode_other(kind, &payload)),
        }
    }

    /// A record that is not a row: a transaction marker, schema change, heartbeat or message.
    pub(super) fn decode_other(&mut self, kind: PayloadKind, payload: &RawObject<'_>) -> Decoded {
        if kind == PayloadKind::TransactionMarker {
            self.stats.transaction_markers += 1;
            let status = raw_string(payload.get("status")).unwrap_or_default();
            let id = raw_string(payload.get("id")).unwrap_or_default();
            let event_count = payload
                .non_null("event_count")
                .and_then(|v| v.get().parse().ok());
            Decoded::TransactionMarker {
                status,
                id,
                event_count,
            }
        } else if kind == PayloadKind::SchemaChange {
            self.stats.schema_changes += 1;
            Decoded::SchemaChange {
                ddl: raw_string(payload.get("ddl")),
            }
        } else if kind == PayloadKind::Message {
            self.stats.messages += 1;
            Decoded::Message
        } else {
            self.stats.heartbeats += 1;
            Decoded::Heartbeat
        }
    }

    pub(super) fn location(record: &RawRecord) -> RecordLocation {
        RecordLocation {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
        }
    }

    pub(super) fn decode_error(
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
        self.layouts.get_or_try(schema_text, || {
            let table_name = table.to_string();
            let schema: ConnectSchema =
                serde_json::from_str(schema_text).map_err(|e| Error::UnsupportedSchema {
                    table: table_name.clone(),
                    column: String::new(),
                    message: format!("value schema is not a Connect schema: {e}"),
                })?;
            row_layout(&table_name, &schema, schema_text, envelope)
        })
    }

    /// The row layout of an already parsed schema, cached under its text.
    pub(super) fn layout_from_connect(
        &mut self,
        table: &TableId,
        schema_text: &Arc<str>,
        schema: &ConnectSchema,
        envelope: bool,
    ) -> Result<Arc<RowLayout>> {
        self.layouts.get_or_try_shared(schema_text, || {
            row_layout(&table.to_string(), schema, schema_text, envelope)
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

    /// The table decoder for `table` with `layout`, flushing the old batch when the layout
    /// changed (a schema change mid-stream starts a new batch).
    pub(super) fn table_decoder(
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

    /// Decodes one row image into the table's builders; on error the row is rolled back.
    pub(super) fn decode_row(
        &mut self,
        table: &TableId,
        record: &RawRecord,
        input: RowInput<'_>,
        unwrapped: bool,
        meta: &mut UnwrapMeta,
    ) -> Result<()> {
        let placeholder = &self.placeholder;
        let unknown = self.config.unknown_columns;
        let td = self.tables.get_mut(table).expect("table decoder exists");
        let rows = td.rows();
        let mut current = None;
        let row = RowSeed {
            td,
            placeholder,
            unknown,
            unwrapped,
            meta,
            current: &mut current,
        };
        let result = match input {
            RowInput::Json(text) => {
                let mut de = serde_json::Deserializer::from_str(text);
                row.deserialize(&mut de)
                    .and_then(|()| de.end())
                    .map_err(|e| e.to_string())
            }
            RowInput::Avro(node, mut bytes) => row
                .deserialize(avro::de::AvroDe {
                    node,
                    input: &mut bytes,
                })
                .and_then(|()| match bytes.len() {
                    0 => Ok(()),
                    n => Err(super::avro_event::trailing(n)),
                })
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            let td = self.tables.get_mut(table).expect("table decoder exists");
            td.rollback(rows);
            return Err(Self::decode_error(record, current, e));
        }
        Ok(())
    }

    pub(super) fn push_event(
        &mut self,
        table: &TableId,
        record: &RawRecord,
        op: Op,
        db: DbPosition,
        ts: Option<i64>,
        tx: Option<&str>,
    ) {
        self.last_op_was_delete
            .set(&record.topic, record.partition, op == Op::Delete);
        let td = self.tables.get_mut(table).expect("table decoder exists");
        let tx_id = match (tx, td.events.last().and_then(|e| e.tx_id.clone())) {
            (Some(t), Some(prev)) if &*prev == t => Some(prev),
            (Some(t), _) => Some(Arc::from(t)),
            (None, _) => None,
        };
        td.events.push(EventMeta {
            op,
            position: SourcePosition {
                topic: record.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                db,
            },
            source_ts_ms: ts,
            tombstone_of_delete: false,
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
        let Some(op) = Self::envelope_op(record, &op_text)? else {
            self.stats.messages += 1;
            return Ok(Decoded::Message);
        };
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
        let layout = match schema_text {
            Some(s) => self.layout_from_schema(&table, s, true)?,
            None => self.layout_from_hint(&table, record)?,
        };
        self.table_decoder(&table, layout, record)?;
        let images = Images {
            before: payload.non_null("before").map(|b| RowInput::Json(b.get())),
            after: match payload.non_null("after") {
                Some(a) => After::Image(RowInput::Json(a.get())),
                None => After::Missing,
            },
        };
        self.push_envelope(&table, record, (op, &op_text), images, &source, tx)
    }

    /// [`Self::decode_envelope`] in one pass over the payload (see `single_pass`); `None` when
    /// the pass gave up (nothing of the record is left in the batch then).
    fn decode_envelope_single_pass(
        &mut self,
        table: &TableId,
        record: &RawRecord,
        layout: Arc<RowLayout>,
        payload_text: &str,
    ) -> Result<Option<Decoded>> {
        self.table_decoder(table, layout, record)?;
        let td = self.tables.get_mut(table).expect("table decoder exists");
        let rows = td.rows();
        let row = RowTarget {
            td,
            placeholder: &self.placeholder,
            unknown: self.config.unknown_columns,
        };
        let mut parts = EnvelopeParts::default();
        let parsed =
            single_pass::envelope(payload_text, row, &mut self.envelope_orders, &mut parts);
        let rollback = |dec: &mut Self| dec.tables.get_mut(table).expect("exists").rollback(rows);
        if parsed.is_none() || !parts.is_envelope() {
            rollback(self);
            return Ok(None);
        }
        let op_text = parts.op.unwrap_or_default();
        let op = Self::envelope_op(record, op_text);
        let keeps_after = matches!(op, Ok(Some(Op::Create | Op::Update | Op::Read)));
        let after = parts.after.unwrap_or(After::Missing);
        if matches!(after, After::Decoded) && !keeps_after {
            rollback(self);
        }
        let Some(op) = op? else {
            self.stats.messages += 1;
            return Ok(Some(Decoded::Message));
        };
        let images = Images {
            before: parts.before.filter(|b| *b != "null").map(RowInput::Json),
            after,
        };
        let no_source;
        let source = match &parts.source {
            Some(Some(block)) => block,
            _ => {
                no_source = SourceBlock::default();
                &no_source
            }
        };
        self.push_envelope(
            table,
            record,
            (op, op_text),
            images,
            source,
            parts.transaction,
        )
        .map(Some)
    }

    /// The single pass for a routed record whose row layout is known without parsing: its
    /// schema is the one seen last, or it has none (`schemas.enable=false`, an envelope as the
    /// converter writes it: `before` first) and the table's schema is given. `None` leaves the
    /// record to the general path.
    fn try_single_pass(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
        bytes: &[u8],
    ) -> Result<Option<Decoded>> {
        let Some(table) = table else {
            return Ok(None);
        };
        if let Some((schema, payload_text)) = self.split_known_schema(bytes) {
            let layout = self.layout_from_schema(table, &schema, true)?;
            return self.decode_envelope_single_pass(table, record, layout, payload_text);
        }
        let schemaless = bytes.starts_with(br#"{"before":"#)
            && self.hints.get(table).is_some_and(|h| h.schema.is_some());
        let Some(text) = schemaless
            .then(|| std::str::from_utf8(bytes).ok())
            .flatten()
        else {
            return Ok(None);
        };
        let layout = self.layout_from_hint(table, record)?;
        self.decode_envelope_single_pass(table, record, layout, text)
    }

    /// The operation of an envelope; `None` for a logical decoding message (`m`).
    pub(super) fn envelope_op(record: &RawRecord, op_text: &str) -> Result<Option<Op>> {
        if op_text == "m" {
            return Ok(None);
        }
        let op = Op::from_code(op_text).ok_or_else(|| {
            Self::decode_error(
                record,
                Some("op".into()),
                format!("unknown operation `{op_text}`"),
            )
        })?;
        Ok(Some(op))
    }

    /// The row of an envelope into its table's builders (the table decoder exists), and the
    /// event.
    pub(super) fn push_envelope(
        &mut self,
        table: &TableId,
        record: &RawRecord,
        (op, op_text): (Op, &str),
        images: Images<'_>,
        source: &SourceBlock<'_>,
        tx: Option<TransactionBlock<'_>>,
    ) -> Result<Decoded> {
        let mut meta = UnwrapMeta::default();
        match op {
            Op::Truncate => self.tables.get_mut(table).expect("exists").push_null_row(),
            Op::Delete => match images.before {
                Some(before) => self.decode_row(table, record, before, false, &mut meta)?,
                None => {
                    let key = self.key_row(record)?.ok_or_else(|| {
                        Self::decode_error(
                            record,
                            Some("before".into()),
                            "delete without `before` image and without a key",
                        )
                    })?;
                    self.decode_row(table, record, key.input(), false, &mut meta)?;
                }
            },
            _ => match images.after {
                After::Image(after) => self.decode_row(table, record, after, false, &mut meta)?,
                After::Decoded => {}
                After::Missing => {
                    return Err(Self::decode_error(
                        record,
                        Some("after".into()),
                        format!("`{op_text}` event without `after` image"),
                    ))
                }
            },
        }
        // Borrowed or formatted on the stack: most events share the previous event's id.
        let mut digits = itoa::Buffer::new();
        let tx_id = tx
            .and_then(|t| t.id)
            .or_else(|| source.tx_id.map(|t| Cow::Borrowed(digits.format(t))))
            .or_else(|| source.gtid.clone());
        self.push_event(
            table,
            record,
            op,
            source.position(),
            source.ts_ms,
            tx_id.as_deref(),
        );
        Ok(Decoded::Row(table.clone(), op))
    }

    fn decode_unwrapped(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
        schema_text: Option<&str>,
        row_text: &str,
    ) -> Result<Decoded> {
        let table = Self::unwrapped_table(table, record)?;
        let layout = match schema_text {
            Some(s) => self.layout_from_schema(&table, s, false)?,
            None => self.layout_from_hint(&table, record)?,
        };
        self.table_decoder(&table, layout, record)?;
        let mut meta = UnwrapMeta::default();
        self.decode_row(&table, record, RowInput::Json(row_text), true, &mut meta)?;
        Ok(self.push_unwrapped(&table, record, &meta))
    }

    /// The table of an unwrapped row: its topic's route (the row names none).
    pub(super) fn unwrapped_table(table: Option<&TableId>, record: &RawRecord) -> Result<TableId> {
        table.cloned().ok_or_else(|| {
            Self::decode_error(
                record,
                None,
                "unwrapped rows carry no table name: give the topic a table route",
            )
        })
    }

    /// The event of an unwrapped row just decoded, from its `__` metadata.
    pub(super) fn push_unwrapped(
        &mut self,
        table: &TableId,
        record: &RawRecord,
        meta: &UnwrapMeta,
    ) -> Decoded {
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
            table,
            record,
            op,
            position,
            meta.source_ts_ms,
            tx.as_deref(),
        );
        Decoded::Row(table.clone(), op)
    }
}

/// The columns of a value schema: its `after` (else `before`) struct for an envelope, else the
/// whole schema (an unwrapped row, whose `__` metadata fields are no columns).
fn row_layout(
    table: &str,
    schema: &ConnectSchema,
    schema_text: &str,
    envelope: bool,
) -> Result<RowLayout> {
    let row = if envelope {
        schema
            .field("after")
            .or_else(|| schema.field("before"))
            .ok_or_else(|| Error::UnsupportedSchema {
                table: table.to_string(),
                column: "after".into(),
                message: "envelope schema has no `after` or `before` field".into(),
            })?
    } else {
        schema
    };
    Ok(RowLayout {
        fields: Fields::from(row_fields(table, row, !envelope)?),
        fingerprint: fingerprint(schema_text),
    })
}

#[cfg(test)]
mod tests;
