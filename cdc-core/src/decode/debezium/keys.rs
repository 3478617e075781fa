//! Record keys: the key columns they name, keys as row images (deletes without a `before`
//! image, tombstones) in JSON or Avro, and tombstones turned into deletes.

use foldhash::HashMap;
use std::sync::Arc;

use arrow_schema::Fields;

use super::avro_event::AvroPlan;
use super::envelope::{RawObject, UnwrapMeta};
use super::json::DebeziumJsonDecoder;
use super::single_pass::RowInput;
use super::table::{fingerprint, RowLayout};
use super::types::{row_fields, ConnectSchema};
use crate::decode::Decoded;
use crate::error::{Error, Result};
use crate::model::{DbPosition, Op, TableId};
use crate::source::RawRecord;

impl DebeziumJsonDecoder {
    /// The key column names from a key record (its schema, or its payload's field names).
    pub(super) fn key_columns_of(&mut self, record: &RawRecord) -> Result<Option<Vec<String>>> {
        let Some(key) = &record.key else {
            return Ok(None);
        };
        if let Some((plan, _)) = self.avro_key(record)? {
            return Ok(plan.field_names());
        }
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

    /// The record key as a row image, if the record has one.
    pub(super) fn key_row<'r>(&mut self, record: &'r RawRecord) -> Result<Option<KeyRow<'r>>> {
        match self.avro_key(record)? {
            Some((plan, body)) => Ok(Some(KeyRow::Avro(plan, body))),
            None => Ok(Self::key_payload(record).map(KeyRow::Json)),
        }
    }

    /// The raw key payload object text, if the record has a JSON key.
    fn key_payload(record: &RawRecord) -> Option<String> {
        let text = std::str::from_utf8(record.key.as_ref()?).ok()?;
        let obj = RawObject::parse(text).ok()??;
        if obj.0.len() == 2 && obj.has("schema") && obj.has("payload") {
            obj.non_null("payload").map(|p| p.get().to_string())
        } else {
            Some(text.to_string())
        }
    }

    pub(super) fn decode_tombstone(
        &mut self,
        table: Option<&TableId>,
        record: &RawRecord,
    ) -> Result<Decoded> {
        let redundant = self.last_op_was_delete.get(&record.topic, record.partition);
        let key_row = self.key_row(record)?;
        let (Some(table), Some(key_row)) = (table, key_row) else {
            if redundant {
                self.last_op_was_delete
                    .set(&record.topic, record.partition, false);
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
        self.decode_row(&table, record, key_row.input(), false, &mut meta)?;
        self.push_event(&table, record, Op::Delete, DbPosition::Unknown, None, None);
        if let Some(e) = self
            .tables
            .get_mut(&table)
            .and_then(|t| t.events.last_mut())
        {
            e.tombstone_of_delete = redundant;
        }
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
        if let Some((plan, _)) = self.avro_key(record)? {
            return Ok(Fields::from(row_fields(
                &table.to_string(),
                plan.connect(),
                false,
            )?));
        }
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

/// A record key as a row image.
pub(super) enum KeyRow<'r> {
    Json(String),
    Avro(Arc<AvroPlan>, std::borrow::Cow<'r, [u8]>),
}

impl KeyRow<'_> {
    pub(super) fn input(&self) -> RowInput<'_> {
        match self {
            KeyRow::Json(text) => RowInput::Json(text),
            KeyRow::Avro(plan, body) => RowInput::Avro(plan.root(), body),
        }
    }
}

/// Per topic partition, whether its last event was a delete (its tombstone is then redundant).
/// Keyed by the topic's text so that setting it for every event neither clones nor builds a key.
#[derive(Debug, Default)]
pub(super) struct LastOpWasDelete(HashMap<Arc<str>, HashMap<i32, bool>>);

impl LastOpWasDelete {
    pub(super) fn get(&self, topic: &str, partition: i32) -> bool {
        self.0
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
            .unwrap_or(false)
    }

    pub(super) fn set(&mut self, topic: &Arc<str>, partition: i32, delete: bool) {
        match self.0.get_mut(&**topic) {
            Some(partitions) => _ = partitions.insert(partition, delete),
            None => {
                _ = self
                    .0
                    .insert(topic.clone(), [(partition, delete)].into_iter().collect())
            }
        }
    }

    /// Takes over `later`'s partitions (it decoded the records after this one's).
    pub(super) fn extend(&mut self, later: LastOpWasDelete) {
        for (topic, partitions) in later.0 {
            self.0.entry(topic).or_default().extend(partitions);
        }
    }
}
