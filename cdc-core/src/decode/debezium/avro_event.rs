//! Debezium events in Confluent's Avro wire format, decoded by the same decoder as JSON: the
//! writer schema is fetched once per id and turned into the Connect schema the JsonConverter
//! would have sent, so rows go through the same layouts, seeds and event logic.

use std::borrow::Cow;
use std::sync::Arc;

use super::envelope::{PayloadKind, RawObject, SourceBlock, TransactionBlock, UnwrapMeta};
use super::json::{DebeziumJsonDecoder, Images};
use super::single_pass::{After, RowInput};
use super::types::ConnectSchema;
use crate::decode::avro::de::{self as avro_de, AvroDe, AvroError};
use crate::decode::avro::schema::{parse_schema, AvroSchema, Node, Record};
use crate::decode::avro::{is_framed_avro, unframe};
use crate::decode::Decoded;
use crate::error::{Error, Result};
use crate::model::TableId;
use crate::source::RawRecord;

/// A writer schema ready to decode with: parsed once per id.
#[derive(Debug)]
pub(crate) struct AvroPlan {
    /// The schema text (the row layouts are cached under it).
    text: Arc<str>,
    schema: AvroSchema,
    kind: PayloadKind,
}

impl AvroPlan {
    fn new(text: String) -> std::result::Result<Self, String> {
        let schema = parse_schema(&text)?;
        let kind = match &schema.root {
            Node::Record(r) => PayloadKind::of(r.fields.len(), |f| r.field(f).is_some()),
            _ => return Err("the writer schema is not a record".into()),
        };
        Ok(AvroPlan {
            text: text.into(),
            schema,
            kind,
        })
    }

    pub(super) fn root(&self) -> &Node {
        &self.schema.root
    }

    pub(super) fn connect(&self) -> &ConnectSchema {
        &self.schema.connect
    }

    /// The top-level field names (a key schema's key columns).
    pub(super) fn field_names(&self) -> Option<Vec<String>> {
        let fields = self.schema.connect.fields.as_ref()?;
        Some(fields.iter().filter_map(|f| f.field.clone()).collect())
    }
}

/// A record's Avro body (inflated if the frame said so) and the plan of its writer schema.
pub(super) type PlannedBody<'b> = (Arc<AvroPlan>, Cow<'b, [u8]>);

/// The parts of an Avro envelope read around the row images.
#[derive(Default)]
struct AvroEnvelope<'a> {
    op: Option<&'a str>,
    source: SourceBlock<'a>,
    tx_id: Option<&'a str>,
    before: Option<RowInput<'a>>,
    after: Option<RowInput<'a>>,
}

impl DebeziumJsonDecoder {
    /// The plan of the schema framed in `bytes` (`what`: "key" or "value") and the Avro body.
    pub(super) fn avro_plan<'b>(
        &mut self,
        record: &RawRecord,
        what: &str,
        bytes: &'b [u8],
    ) -> Result<PlannedBody<'b>> {
        let (id, body) =
            unframe(bytes).map_err(|e| Self::decode_error(record, Some(what.into()), e))?;
        if let Some(plan) = self.avro.plans.get(&id) {
            return Ok((plan.clone(), body));
        }
        let unavailable = |message: String| Error::SchemaUnavailable {
            location: Self::location(record),
            schema: id.to_string(),
            message: format!("the record's {what}: {message}"),
        };
        let registry = (self.avro.registry.clone())
            .ok_or_else(|| unavailable("no schema registry is configured".into()))?;
        let text = registry.schema(id).map_err(|e| unavailable(e.0))?;
        let plan = AvroPlan::new(text)
            .map_err(|e| Self::decode_error(record, Some(what.into()), format!("{id}: {e}")))?;
        let plan = Arc::new(plan);
        self.avro.plans.insert(id, plan.clone());
        Ok((plan, body))
    }

    /// The plan of a container file's writer schema (`what`: "key" or "value").
    pub(super) fn datum_plan(
        &mut self,
        record: &RawRecord,
        what: &str,
        text: &Arc<str>,
    ) -> Result<Arc<AvroPlan>> {
        let cache = match what {
            "key" => &mut self.avro.key_texts,
            _ => &mut self.avro.value_texts,
        };
        cache.get_or_try_shared(text, || {
            AvroPlan::new(text.to_string()).map_err(|e| {
                Self::decode_error(record, Some(what.into()), format!("writer schema: {e}"))
            })
        })
    }

    /// The plan and Avro body of the record's key, when the key is Avro (framed, or a datum of
    /// a container file).
    pub(super) fn avro_key<'r>(
        &mut self,
        record: &'r RawRecord,
    ) -> Result<Option<PlannedBody<'r>>> {
        let Some(key) = record.key.as_deref() else {
            return Ok(None);
        };
        if let Some(schema) = &record.key_schema {
            let plan = self.datum_plan(record, "key", schema)?;
            return Ok(Some((plan, Cow::Borrowed(key))));
        }
        if is_framed_avro(key) {
            return self.avro_plan(record, "key", key).map(Some);
        }
        Ok(None)
    }

    /// Decodes an Avro value of `plan`'s schema.
    pub(super) fn decode_avro(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
        plan: &Arc<AvroPlan>,
        body: &[u8],
    ) -> Result<Decoded> {
        let Node::Record(root) = plan.root() else {
            unreachable!("plans are records")
        };
        let bad = |e: AvroError| Self::decode_error(record, None, e.0);
        match plan.kind {
            PayloadKind::Envelope => {
                let parts = read_envelope(root, body).map_err(bad)?;
                self.decode_avro_envelope(table, record, plan, parts)
            }
            PayloadKind::Unwrapped => self.decode_avro_unwrapped(table, record, plan, body),
            kind @ (PayloadKind::Message | PayloadKind::Heartbeat) => {
                // Counted only (a message's content may be bytes, which JSON cannot hold).
                let empty = RawObject::parse("{}").ok().flatten().expect("an object");
                Ok(self.decode_other(kind, &empty))
            }
            kind => {
                // Markers and schema changes: rare; read as JSON and told apart as JSON is.
                let value: serde_json::Value = serde::Deserialize::deserialize(AvroDe {
                    node: plan.root(),
                    input: &mut &*body,
                })
                .map_err(bad)?;
                let text = value.to_string();
                let payload = RawObject::parse(&text)
                    .map_err(|e| Self::decode_error(record, None, e.to_string()))?
                    .ok_or_else(|| Self::decode_error(record, None, "a null record"))?;
                Ok(self.decode_other(kind, &payload))
            }
        }
    }

    fn decode_avro_envelope(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
        plan: &AvroPlan,
        parts: AvroEnvelope<'_>,
    ) -> Result<Decoded> {
        let op_text = parts.op.unwrap_or_default();
        let Some(op) = Self::envelope_op(record, op_text)? else {
            self.stats.messages += 1;
            return Ok(Decoded::Message);
        };
        let table = match table {
            Some(t) => t.clone(),
            None => parts.source.table_id().ok_or_else(|| {
                Self::decode_error(
                    record,
                    Some("source".into()),
                    "no table route for this topic and no schema/table in `source`",
                )
            })?,
        };
        let layout = self.layout_from_connect(&table, &plan.text, plan.connect(), true)?;
        self.table_decoder(&table, layout, record)?;
        let images = Images {
            before: parts.before,
            after: parts.after.map_or(After::Missing, After::Image),
        };
        let tx = parts.tx_id.map(|id| TransactionBlock {
            id: Some(Cow::Borrowed(id)),
        });
        self.push_envelope(&table, record, (op, op_text), images, &parts.source, tx)
    }

    fn decode_avro_unwrapped(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
        plan: &AvroPlan,
        body: &[u8],
    ) -> Result<Decoded> {
        let table = Self::unwrapped_table(table, record)?;
        let layout = self.layout_from_connect(&table, &plan.text, plan.connect(), false)?;
        self.table_decoder(&table, layout, record)?;
        let mut meta = UnwrapMeta::default();
        let row = RowInput::Avro(plan.root(), body);
        self.decode_row(&table, record, row, true, &mut meta)?;
        Ok(self.push_unwrapped(&table, record, &meta))
    }
}

/// Reads an envelope's fields in wire order: the row images are kept as slices (decoded
/// later, once the operation says which one is needed), `op`, `source` and `transaction` read.
fn read_envelope<'a>(
    root: &'a Record,
    body: &'a [u8],
) -> std::result::Result<AvroEnvelope<'a>, AvroError> {
    let mut input = body;
    let mut env = AvroEnvelope::default();
    for (name, node) in &root.fields {
        match name.as_str() {
            "before" | "after" => {
                let image = read_image(node, &mut input)?;
                if name == "before" {
                    env.before = image;
                } else {
                    env.after = image;
                }
            }
            "op" => env.op = read_str(node, &mut input)?,
            "source" => env.source = read_source(node, &mut input)?,
            "transaction" => env.tx_id = read_transaction_id(node, &mut input)?,
            _ => avro_de::skip(node, &mut input)?,
        }
    }
    if !input.is_empty() {
        return Err(trailing(input.len()));
    }
    Ok(env)
}

/// Bytes left after a whole value: the schema is not the one the value was written with.
pub(super) fn trailing(n: usize) -> AvroError {
    AvroError(format!(
        "{n} bytes after the Avro value: it was not written with this schema"
    ))
}

/// A row image: the record's node and bytes, `None` for a null image.
fn read_image<'a>(
    node: &'a Node,
    input: &mut &'a [u8],
) -> std::result::Result<Option<RowInput<'a>>, AvroError> {
    let node = resolve(node, input)?;
    if matches!(node, Node::Null) {
        return Ok(None);
    }
    let start = *input;
    avro_de::skip(node, input)?;
    let len = start.len() - input.len();
    Ok(Some(RowInput::Avro(node, &start[..len])))
}

/// The branch a union value takes (any other node is itself).
fn resolve<'n>(node: &'n Node, input: &mut &[u8]) -> std::result::Result<&'n Node, AvroError> {
    match node {
        Node::Union(branches) => avro_de::read_branch(branches, input),
        other => Ok(other),
    }
}

/// An optional string field (anything else is skipped and read as absent).
fn read_str<'a>(
    node: &Node,
    input: &mut &'a [u8],
) -> std::result::Result<Option<&'a str>, AvroError> {
    match resolve(node, input)? {
        Node::String => {
            let bytes = avro_de::read_bytes(input)?;
            std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|e| AvroError(format!("Avro string is not UTF-8: {e}")))
        }
        other => avro_de::skip(other, input).map(|()| None),
    }
}

/// An optional integer field (anything else is skipped and read as absent).
fn read_int(node: &Node, input: &mut &[u8]) -> std::result::Result<Option<i64>, AvroError> {
    match resolve(node, input)? {
        Node::Int | Node::Long => avro_de::read_long(input).map(Some),
        other => avro_de::skip(other, input).map(|()| None),
    }
}

/// The `source` block's position fields (Postgres and MySQL/MariaDB spellings).
fn read_source<'a>(
    node: &'a Node,
    input: &mut &'a [u8],
) -> std::result::Result<SourceBlock<'a>, AvroError> {
    let mut s = SourceBlock::default();
    let r = match resolve(node, input)? {
        Node::Record(r) => r,
        other => return avro_de::skip(other, input).map(|()| s),
    };
    for (name, node) in &r.fields {
        let text = |input: &mut &'a [u8]| read_str(node, input).map(|v| v.map(Cow::Borrowed));
        match name.as_str() {
            "connector" => s.connector = text(input)?,
            "db" => s.db = text(input)?,
            "schema" => s.schema = text(input)?,
            "table" => s.table = text(input)?,
            "file" => s.file = text(input)?,
            "gtid" => s.gtid = text(input)?,
            "sequence" => s.sequence_plain = read_str(node, input)?,
            "ts_ms" => s.ts_ms = read_int(node, input)?,
            "txId" => s.tx_id = read_int(node, input)?,
            "lsn" => s.lsn = read_int(node, input)?.and_then(|v| u64::try_from(v).ok()),
            "pos" => s.pos = read_int(node, input)?.and_then(|v| u64::try_from(v).ok()),
            "row" => s.row = read_int(node, input)?.and_then(|v| u32::try_from(v).ok()),
            _ => avro_de::skip(node, input)?,
        }
    }
    Ok(s)
}

/// The `transaction` block's `id`.
fn read_transaction_id<'a>(
    node: &Node,
    input: &mut &'a [u8],
) -> std::result::Result<Option<&'a str>, AvroError> {
    let r = match resolve(node, input)? {
        Node::Record(r) => r,
        other => return avro_de::skip(other, input).map(|()| None),
    };
    let mut id = None;
    for (name, node) in &r.fields {
        match name.as_str() {
            "id" => id = read_str(node, input)?,
            _ => avro_de::skip(node, input)?,
        }
    }
    Ok(id)
}
