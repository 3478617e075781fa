//! One table's batch while it is decoded: the row layout of a value schema (parsed once per
//! distinct schema text, [`SchemaCache`]), a builder per column, the per-event metadata and
//! the unchanged-cell masks; and the serde seed that streams one row object into the builders.

use std::borrow::Cow;
// Keys are looked up several times per event: a fast hasher (table names, column names).
use foldhash::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{Fields, Schema};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::columns::{builders, Cell, CellSeed, ColumnBuilder, Placeholder};
use super::envelope::UnwrapMeta;
use super::scan::KeyOrder;
use super::types::is_metadata_field;
use crate::decode::UnknownColumns;
use crate::error::{Error, Result};
use crate::model::{ChangeBatch, EventMeta, TableId, UnchangedMask};

/// The row layout of one value schema.
#[derive(Debug)]
pub(crate) struct RowLayout {
    pub(crate) fields: Fields,
    pub(crate) fingerprint: u64,
}

/// A schema text and what was parsed from it.
type Parsed<T> = (Arc<str>, Arc<T>);

/// A cache of things parsed from schema texts, keyed by the text.
pub(crate) struct SchemaCache<T> {
    pub(crate) last: Option<Parsed<T>>,
    pub(crate) all: HashMap<u64, Vec<Parsed<T>>>,
}

impl<T> Clone for SchemaCache<T> {
    fn clone(&self) -> Self {
        SchemaCache {
            last: self.last.clone(),
            all: self.all.clone(),
        }
    }
}

impl<T> Default for SchemaCache<T> {
    fn default() -> Self {
        SchemaCache {
            last: None,
            all: HashMap::default(),
        }
    }
}

impl<T> SchemaCache<T> {
    pub(crate) fn get_or_try<E>(
        &mut self,
        text: &str,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some((t, v)) = &self.last {
            // The decoder's fast path hands back this very text (`last_text`): equal by
            // address, without comparing its bytes a second time.
            if std::ptr::eq(&**t, text) || **t == *text {
                return Ok(v.clone());
            }
        }
        let h = fingerprint(text);
        let bucket = self.all.entry(h).or_default();
        let (t, v) = match bucket.iter().find(|(t, _)| **t == *text) {
            Some(hit) => hit.clone(),
            None => {
                let hit: Parsed<T> = (Arc::from(text), Arc::new(make()?));
                bucket.push(hit.clone());
                hit
            }
        };
        self.last = Some((t, v.clone()));
        Ok(v)
    }

    /// [`Self::get_or_try`] for a text held in an `Arc` (an Avro plan's, a container file's):
    /// that `Arc` becomes the last one used, so the records after it find their value by
    /// comparing pointers instead of the text.
    pub(crate) fn get_or_try_shared<E>(
        &mut self,
        text: &Arc<str>,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some((t, v)) = &self.last {
            if Arc::ptr_eq(t, text) {
                return Ok(v.clone());
            }
        }
        let v = self.get_or_try(text, make)?;
        self.last = Some((text.clone(), v.clone()));
        Ok(v)
    }

    /// The text of the schema used last.
    pub(crate) fn last_text(&self) -> Option<&Arc<str>> {
        self.last.as_ref().map(|(t, _)| t)
    }
}

pub(crate) fn fingerprint(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// The builders of one table's current batch.
pub(crate) struct TableDecoder {
    pub(crate) layout: Arc<RowLayout>,
    pub(crate) builders: Vec<ColumnBuilder>,
    pub(crate) index: HashMap<String, usize>,
    pub(crate) key_columns: Option<Arc<[String]>>,
    pub(crate) events: Vec<EventMeta>,
    /// Per column, which rows are unchanged (allocated on first use).
    pub(crate) unchanged: Vec<Option<Vec<bool>>>,
    pub(crate) seen: Vec<bool>,
    /// The row keys of the records before, as column indexes (the single pass).
    pub(crate) key_order: KeyOrder<Option<usize>>,
}

impl TableDecoder {
    pub(crate) fn new(
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
            key_order: KeyOrder::default(),
        })
    }

    pub(crate) fn rows(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn mark_unchanged(&mut self, column: usize, row: usize) {
        let mask = self.unchanged[column].get_or_insert_with(Vec::new);
        mask.resize(row, false);
        mask.push(true);
    }

    /// Starts a row: no column seen yet. Its index.
    pub(crate) fn begin_row(&mut self) -> usize {
        self.seen.iter_mut().for_each(|s| *s = false);
        self.rows()
    }

    /// Ends row `row`: columns it did not carry keep the table's value.
    pub(crate) fn end_row(&mut self, row: usize) {
        for i in 0..self.builders.len() {
            if !self.seen[i] {
                self.builders[i].push_null();
                self.mark_unchanged(i, row);
            }
        }
    }

    pub(crate) fn rollback(&mut self, rows: usize) {
        for b in &mut self.builders {
            b.truncate(rows);
        }
        for m in self.unchanged.iter_mut().flatten() {
            m.truncate(rows);
        }
    }

    pub(crate) fn push_null_row(&mut self) {
        for b in &mut self.builders {
            b.push_null();
        }
    }

    pub(crate) fn finish(&mut self, table: &TableId) -> Result<Option<ChangeBatch>> {
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

/// Decodes one row object into the table's builders.
pub(crate) struct RowSeed<'a> {
    pub(crate) td: &'a mut TableDecoder,
    pub(crate) placeholder: &'a Placeholder,
    pub(crate) unknown: UnknownColumns,
    pub(crate) unwrapped: bool,
    pub(crate) meta: &'a mut UnwrapMeta,
    /// The field being decoded, for errors.
    pub(crate) current: &'a mut Option<String>,
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
        let row = td.begin_row();
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
        td.end_row(row);
        Ok(())
    }
}
