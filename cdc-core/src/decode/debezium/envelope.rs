//! The parts of a Debezium envelope read around the row: the `source` block (positions,
//! timestamps), the transaction block, the top-level object split into raw slices without
//! building a tree, and the metadata fields of unwrapped (`ExtractNewRecordState`) rows.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::{DbPosition, TableId};

/// `source` block fields used for positions (both Postgres and MySQL/MariaDB spellings).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SourceBlock<'a> {
    #[serde(borrow, default)]
    pub(crate) connector: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) ts_ms: Option<i64>,
    #[serde(borrow, default)]
    pub(crate) db: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) table: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) lsn: Option<u64>,
    /// Its raw JSON text: a string holding a JSON array, read without unescaping it.
    #[serde(borrow, default, deserialize_with = "raw_text")]
    pub(crate) sequence: Option<&'a str>,
    /// The same array as plain text (Avro carries the string itself).
    #[serde(skip)]
    pub(crate) sequence_plain: Option<&'a str>,
    #[serde(default, rename = "txId")]
    pub(crate) tx_id: Option<i64>,
    #[serde(borrow, default)]
    pub(crate) file: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) pos: Option<u64>,
    #[serde(default)]
    pub(crate) row: Option<u32>,
    #[serde(borrow, default)]
    pub(crate) gtid: Option<Cow<'a, str>>,
}

impl SourceBlock<'_> {
    pub(crate) fn position(&self) -> DbPosition {
        match self.connector.as_deref() {
            Some("postgresql") => match self.lsn {
                Some(lsn) => DbPosition::Postgres {
                    lsn,
                    last_commit_lsn: match self.sequence_plain {
                        Some(plain) => last_commit_lsn(plain),
                        None => self.sequence.and_then(last_commit_lsn_raw),
                    },
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

    pub(crate) fn table_id(&self) -> Option<TableId> {
        let ns = self.schema.as_deref().or(self.db.as_deref())?;
        Some(TableId::new(ns, self.table.as_deref()?))
    }
}

/// A value's raw JSON text (`None` for `null`).
fn raw_text<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
    let raw: Option<&'de RawValue> = serde::Deserialize::deserialize(d)?;
    Ok(raw.map(RawValue::get))
}

/// `sequence` is a JSON array in a string: `["<last commit lsn>","<lsn>"]`.
pub(crate) fn last_commit_lsn(sequence: &str) -> Option<u64> {
    let parts: Vec<Option<String>> = serde_json::from_str(sequence).ok()?;
    parts.first()?.as_deref()?.parse().ok()
}

/// [`last_commit_lsn`] of the `sequence` field's raw JSON text (`"[\"1\",\"2\"]"`): the first
/// element read off the escaped text as Debezium writes it, once per event without unescaping
/// or allocating; anything else is unescaped and parsed in full.
pub(crate) fn last_commit_lsn_raw(raw: &str) -> Option<u64> {
    if let Some(rest) = raw.strip_prefix("\"[") {
        if rest.starts_with("null,") || rest.starts_with("null]") {
            return None;
        }
        let number = rest
            .strip_prefix("\\\"")
            .and_then(|digits| digits.split_once("\\\"").map(|(number, _)| number));
        if let Some(Ok(lsn)) = number.map(str::parse) {
            return Some(lsn);
        }
    }
    let text: Option<String> = serde_json::from_str(raw).ok()?;
    last_commit_lsn(&text?)
}

/// What a record's payload is, told by its top-level field names (the same for JSON and Avro).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadKind {
    Envelope,
    TransactionMarker,
    SchemaChange,
    Heartbeat,
    Message,
    /// A row of `ExtractNewRecordState`, or any other object.
    Unwrapped,
}

impl PayloadKind {
    /// The kind of a payload of `fields` top-level fields, `has` telling which are there.
    pub(crate) fn of(fields: usize, has: impl Fn(&str) -> bool) -> Self {
        if has("op") && has("source") && (has("after") || has("before")) {
            PayloadKind::Envelope
        } else if has("status") && has("id") && (has("event_count") || has("data_collections")) {
            PayloadKind::TransactionMarker
        } else if has("ddl") || has("tableChanges") {
            PayloadKind::SchemaChange
        } else if fields == 1 && has("ts_ms") {
            PayloadKind::Heartbeat
        } else if has("op") && has("message") {
            PayloadKind::Message
        } else {
            PayloadKind::Unwrapped
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TransactionBlock<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
}

/// A JSON object as its fields' raw texts, in order.
pub(crate) struct RawObject<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> RawObject<'a> {
    pub(crate) fn parse(text: &'a str) -> std::result::Result<Option<Self>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let v = de::Deserializer::deserialize_any(&mut de, RawObjectVisitor)?;
        de.end()?;
        Ok(v)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The field's value unless it is absent or JSON `null`.
    pub(crate) fn non_null(&self, key: &str) -> Option<&'a RawValue> {
        self.get(key).filter(|v| v.get() != "null")
    }
}

pub(crate) struct RawObjectVisitor;

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
pub(crate) struct UnwrapMeta {
    pub(crate) op: Option<String>,
    pub(crate) deleted: Option<bool>,
    pub(crate) lsn: Option<u64>,
    pub(crate) source_ts_ms: Option<i64>,
    pub(crate) file: Option<String>,
    pub(crate) pos: Option<u64>,
    pub(crate) row: Option<u32>,
    pub(crate) tx_id: Option<String>,
}

impl UnwrapMeta {
    pub(crate) fn set(&mut self, name: &str, v: serde_json::Value) {
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

    pub(crate) fn position(&self) -> DbPosition {
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

/// A JSON string value's text, or the raw JSON of anything else.
pub(crate) fn raw_string(v: Option<&RawValue>) -> Option<String> {
    let v = v?;
    match serde_json::from_str::<Option<String>>(v.get()) {
        Ok(s) => s,
        Err(_) => Some(v.get().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_commit_lsn_from_the_raw_sequence_text() {
        let raw = |s: &str| serde_json::to_string(s).unwrap();
        for sequence in [
            r#"["24023928","24023984"]"#,
            r#"[null,"24023984"]"#,
            r#"[ "7" , "8" ]"#,
            r#"["x","8"]"#,
            r#"[]"#,
            r#"["18446744073709551616","1"]"#,
        ] {
            assert_eq!(
                last_commit_lsn_raw(&raw(sequence)),
                last_commit_lsn(sequence),
                "{sequence}"
            );
        }
        assert_eq!(last_commit_lsn_raw(&raw(r#"["5","6"]"#)), Some(5));
        assert_eq!(last_commit_lsn_raw("null"), None);
        assert_eq!(last_commit_lsn_raw("17"), None);
    }
}
