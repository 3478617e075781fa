//! The final rows of upserts: cells the source did not send (TOAST placeholders, columns an
//! older schema lacked) take the value of the row the upsert replaces, or the column default
//! when there is none or the change set says the table's row is obsolete.

use arrow_array::{Array, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow_schema::SchemaRef;

use super::keys::ChangedKeys;
use crate::error::{Error, Result};
use crate::fold::ChangeSet;
use crate::schema::{cast_column, default_column};

/// The upsert rows to write: cells marked unchanged take row `old_row[j]` of `old` when given
/// (and the change set does not say the table's value is obsolete), else the column default.
/// `old` must be in the table's schema (`keys.upserts.schema()`).
pub fn resolve_upserts(
    _changes: &ChangeSet,
    keys: &ChangedKeys,
    old: &RecordBatch,
    old_row: &[Option<usize>],
) -> Result<RecordBatch> {
    resolve(keys, None, old, |j| old_row[j])
}

/// Upserts `js` (every upsert when `None`), in that order, resolved against `old`: upsert `j`'s
/// unchanged cells take row `old_row(j)` of `old` (see [`resolve_upserts`]). Only the upserts
/// asked for are touched: a file group resolves its own upserts in time proportional to it.
pub fn resolve(
    keys: &ChangedKeys,
    js: Option<&[usize]>,
    old: &RecordBatch,
    old_row: impl Fn(usize) -> Option<usize>,
) -> Result<RecordBatch> {
    let table = keys.table();
    let upserts = &keys.upserts;
    let schema = upserts.schema();
    let all: Vec<usize>;
    let (js, taken) = match js {
        Some(js) => (
            js,
            Some(UInt32Array::from_iter_values(js.iter().map(|&j| j as u32))),
        ),
        None => {
            all = (0..upserts.num_rows()).collect();
            (all.as_slice(), None)
        }
    };
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (c, field) in schema.fields().iter().enumerate() {
        let up = upserts.column(c);
        let Some(mask) = keys.unchanged.column(c) else {
            columns.push(match &taken {
                None => up.clone(),
                Some(taken) => arrow_select::take::take(up.as_ref(), taken, None)
                    .map_err(|e| Error::arrow(format!("taking upserts of {table}"), e))?,
            });
            continue;
        };
        let default = default_column(table, field, 1)?;
        let old_col = match old.column_by_name(field.name()) {
            Some(col) => cast_column(table, field, col)?,
            None => default_column(table, field, old.num_rows())?,
        };
        let sources: [&dyn Array; 3] = [old_col.as_ref(), up.as_ref(), default.as_ref()];
        let picks: Vec<(usize, usize)> = js
            .iter()
            .map(|&j| {
                let usable = old_row(j).filter(|_| !keys.ignore_table_values.value(j));
                match (mask.value(j), usable) {
                    (false, _) => (1, j),
                    (true, Some(r)) => (0, r),
                    (true, None) => (2, 0),
                }
            })
            .collect();
        columns.push(
            arrow_select::interleave::interleave(&sources, &picks)
                .map_err(|e| Error::arrow(format!("resolving unchanged cells of {table}"), e))?,
        );
    }
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(js.len())),
    )
    .map_err(|e| Error::arrow(format!("upserts of {table}"), e))
}

/// The old rows of upserts, collected file by file as they are found.
#[derive(Debug)]
pub struct OldRows {
    schema: SchemaRef,
    parts: Vec<RecordBatch>,
    of_upsert: Vec<Option<usize>>,
    count: usize,
}

impl OldRows {
    /// No old rows yet, for the upserts of `keys`.
    pub fn new(keys: &ChangedKeys) -> Self {
        OldRows {
            schema: keys.schema(),
            parts: Vec::new(),
            of_upsert: vec![None; keys.upserts.num_rows()],
            count: 0,
        }
    }

    /// Adds `rows` (the table schema), row `i` the old row of upsert `upserts[i]`.
    pub fn add(&mut self, rows: RecordBatch, upserts: &[usize]) {
        for (i, &j) in upserts.iter().enumerate() {
            self.of_upsert[j] = Some(self.count + i);
        }
        self.count += rows.num_rows();
        self.parts.push(rows);
    }

    /// Upserts `js` (all when `None`) resolved against the old rows collected.
    pub fn resolve(&self, keys: &ChangedKeys, js: Option<&[usize]>) -> Result<RecordBatch> {
        let old = arrow_select::concat::concat_batches(&self.schema, &self.parts)
            .map_err(|e| Error::arrow("collecting replaced rows", e))?;
        resolve(keys, js, &old, |j| self.of_upsert[j])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{BooleanArray, Int32Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::model::{TableId, UnchangedMask};

    /// Resolving only some upserts gives the same rows as resolving all of them and taking
    /// those (unchanged cells from the old rows, or the default when the table's value is
    /// obsolete).
    #[test]
    fn resolving_some_upserts_equals_resolving_all() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let upserts = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec!["n1", "n2", "n3", "n4"])),
            ],
        )
        .unwrap();
        let changes = ChangeSet {
            table: TableId::new("public", "t"),
            schema: schema.clone(),
            key_columns: Arc::from(vec!["id".to_string()]),
            truncate: false,
            upserts,
            upsert_unchanged: UnchangedMask::new(vec![
                None,
                Some(BooleanArray::from(vec![true, false, true, true])),
            ]),
            ignore_table_values: BooleanArray::from(vec![false, false, false, true]),
            deletes: RecordBatch::new_empty(Arc::new(Schema::new(vec![schema.field(0).clone()]))),
            checkpoint: Default::default(),
            first_offsets: Default::default(),
            events: 4,
            max_source_ts_ms: None,
            history: None,
        };
        let keys = ChangedKeys::new(&changes, &schema, &["id".to_string()]).unwrap();
        // One file holds the old rows of upserts 3, 0 and 2 (in that order).
        let js = [3, 0, 2];
        let old = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![4, 1, 3])),
                Arc::new(StringArray::from(vec!["old4", "old1", "old3"])),
            ],
        )
        .unwrap();
        let mut rows = OldRows::new(&keys);
        rows.add(old, &js);
        let full = rows.resolve(&keys, None).unwrap();
        let expected = arrow_select::take::take_record_batch(
            &full,
            &UInt32Array::from(js.iter().map(|&j| j as u32).collect::<Vec<_>>()),
        )
        .unwrap();
        let got = rows.resolve(&keys, Some(&js)).unwrap();
        assert_eq!(got, expected);
        let names = got
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(names.value(1), "old1");
        assert_eq!(names.value(2), "old3");
        assert!(names.is_null(0), "obsolete table value: the default");
        let all_names = full
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(all_names.value(1), "n2", "a sent cell is kept");
    }
}
