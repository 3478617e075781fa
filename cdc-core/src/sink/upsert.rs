//! The row-level work every sink does to apply a [`ChangeSet`]: find which existing rows a
//! change set touches, and build the final upsert rows with unchanged cells filled from the old
//! rows (or the column default). Sinks differ only in where existing rows live and how they
//! commit; this part is the same for all of them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, RecordBatchOptions};
use arrow_row::RowConverter;
use arrow_schema::{DataType, FieldRef, SchemaRef};

use crate::error::{Error, Result};
use crate::fold::{key_converter, key_indices, ChangeSet};
use crate::model::{TableId, UnchangedMask};
use crate::schema::{cast_column, conform_batch, default_column};

/// What a change set does to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// Replaced by upsert row `j`.
    Upsert(usize),
    /// Deleted.
    Delete,
}

/// Keys to what happens to them. A single integer key (the common primary key) is looked up as
/// an `i64` with a cheap hash; other keys by their Arrow row encoding.
#[derive(Debug)]
enum KeyIndex {
    Int(HashMap<i64, Touch, BuildHasherDefault<IntHasher>>),
    Encoded(HashMap<Box<[u8]>, Touch>),
}

impl KeyIndex {
    fn len(&self) -> usize {
        match self {
            KeyIndex::Int(m) => m.len(),
            KeyIndex::Encoded(m) => m.len(),
        }
    }
}

/// A multiplicative hash for integer keys (keys are not attacker-chosen here: they are the
/// source table's primary keys, already unique).
#[derive(Debug, Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_i64(&mut self, v: i64) {
        self.0 = (v as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

/// The values of an integer column as `i64` (`None` for other types).
pub fn int_keys(col: &ArrayRef) -> Option<Int64Array> {
    if !col.data_type().is_integer() {
        return None;
    }
    let cast = arrow_cast::cast(col, &DataType::Int64).ok()?;
    cast.as_any().downcast_ref::<Int64Array>().cloned()
}

/// A change set's upserts and deletes conformed to the table's schema, indexed by key.
#[derive(Debug)]
pub struct ChangedKeys {
    table: TableId,
    key_fields: Vec<FieldRef>,
    converter: RowConverter,
    index: KeyIndex,
    /// Upserts in the table schema.
    pub upserts: RecordBatch,
    /// Their unchanged cells.
    pub unchanged: UnchangedMask,
    /// Delete keys (key columns in the table's key types).
    pub deletes: Vec<ArrayRef>,
}

impl ChangedKeys {
    /// Indexes `changes` for a table whose (merged) schema is `schema`.
    pub fn new(changes: &ChangeSet, schema: &SchemaRef, key_columns: &[String]) -> Result<Self> {
        let table = &changes.table;
        let keys = key_indices(table, schema, key_columns)?;
        let converter = key_converter(table, schema, &keys)?;
        let key_fields: Vec<FieldRef> = keys.iter().map(|&k| schema.fields()[k].clone()).collect();
        let (upserts, unchanged) =
            conform_batch(table, &changes.upserts, &changes.upsert_unchanged, schema)?;
        let deletes =
            key_fields
                .iter()
                .map(|f| {
                    let col = changes.deletes.column_by_name(f.name()).ok_or_else(|| {
                        Error::MissingKey {
                            table: table.to_string(),
                            message: format!("deletes lack key column `{}`", f.name()),
                        }
                    })?;
                    cast_column(table, f, col)
                })
                .collect::<Result<Vec<_>>>()?;
        let capacity = upserts.num_rows() + changes.deletes.num_rows();
        let upsert_keys: Vec<ArrayRef> = keys.iter().map(|&k| upserts.column(k).clone()).collect();
        let int_pair = match (keys.len(), deletes.first(), upsert_keys.first()) {
            (1, Some(d), Some(u)) => int_keys(d).zip(int_keys(u)),
            _ => None,
        };
        let index = if let Some((del, ups)) = int_pair {
            let mut map =
                HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default());
            map.extend(del.iter().flatten().map(|k| (k, Touch::Delete)));
            map.extend(
                ups.iter()
                    .enumerate()
                    .filter_map(|(j, k)| Some((k?, Touch::Upsert(j)))),
            );
            KeyIndex::Int(map)
        } else {
            let mut map = HashMap::with_capacity(capacity);
            let delete_rows = converter
                .convert_columns(&deletes)
                .map_err(|e| Error::arrow(format!("encoding deletes of {table}"), e))?;
            for row in delete_rows.iter() {
                map.insert(Box::from(row.data()), Touch::Delete);
            }
            let upsert_rows = converter
                .convert_columns(&upsert_keys)
                .map_err(|e| Error::arrow(format!("encoding upserts of {table}"), e))?;
            for (j, row) in upsert_rows.iter().enumerate() {
                map.insert(Box::from(row.data()), Touch::Upsert(j));
            }
            KeyIndex::Encoded(map)
        };
        Ok(ChangedKeys {
            table: table.clone(),
            key_fields,
            converter,
            index,
            upserts,
            unchanged,
            deletes,
        })
    }

    /// The key column fields, in key order.
    pub fn key_fields(&self) -> &[FieldRef] {
        &self.key_fields
    }

    /// The changed values of the first key column, sorted, when it is an integer column: for
    /// pruning files by the per-file key bounds every format keeps (Delta statistics, Iceberg
    /// manifest bounds, Hudi footers). A file whose `[min, max]` holds none of them cannot
    /// hold a changed key.
    pub fn first_key_ints(&self) -> Option<SortedInts> {
        let field = self.key_fields.first()?;
        let mut values = Vec::new();
        let upserts = self.upserts.column_by_name(field.name());
        for col in upserts.into_iter().chain(self.deletes.first()) {
            values.extend(int_keys(col)?.iter().flatten());
        }
        Some(SortedInts::new(values))
    }

    /// The changed values of the first key column, sorted, when it is a string column (text,
    /// `uuid` as Debezium sends it): for pruning files by string key bounds. Only bounds that
    /// hold every value of their file may be used (a truncated upper bound must have been
    /// widened, not cut); the format adapter knows which files' bounds are such.
    pub fn first_key_strings(&self) -> Option<SortedStrings> {
        let field = self.key_fields.first()?;
        if !matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
            return None;
        }
        let mut values = Vec::new();
        let upserts = self.upserts.column_by_name(field.name());
        for col in upserts.into_iter().chain(self.deletes.first()) {
            let col = arrow_cast::cast(col, &DataType::Utf8).ok()?;
            let strings = col.as_any().downcast_ref::<arrow_array::StringArray>()?;
            values.extend(strings.iter().flatten().map(str::to_string));
        }
        Some(SortedStrings::new(values))
    }

    /// Number of distinct keys touched.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no key is touched.
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// For each row of `rows` (which must hold the key columns, by name), what the change set
    /// does to it.
    pub fn find(&self, rows: &RecordBatch) -> Result<Vec<Option<Touch>>> {
        if self.is_empty() || rows.num_rows() == 0 {
            return Ok(vec![None; rows.num_rows()]);
        }
        let cols = self
            .key_fields
            .iter()
            .map(|f| {
                let col = rows
                    .column_by_name(f.name())
                    .ok_or_else(|| Error::MissingKey {
                        table: self.table.to_string(),
                        message: format!("existing rows lack key column `{}`", f.name()),
                    })?;
                cast_column(&self.table, f, col)
            })
            .collect::<Result<Vec<_>>>()?;
        match &self.index {
            KeyIndex::Int(map) => {
                let ints = int_keys(&cols[0]).ok_or_else(|| Error::MissingKey {
                    table: self.table.to_string(),
                    message: "integer key column changed type".into(),
                })?;
                Ok(ints
                    .iter()
                    .map(|k| k.and_then(|k| map.get(&k).copied()))
                    .collect())
            }
            KeyIndex::Encoded(map) => {
                let encoded = self
                    .converter
                    .convert_columns(&cols)
                    .map_err(|e| Error::arrow(format!("encoding keys of {}", self.table), e))?;
                Ok(encoded.iter().map(|r| map.get(r.data()).copied()).collect())
            }
        }
    }
}

/// The upsert rows to write: cells marked unchanged take row `old_row[j]` of `old` when given
/// (and the change set does not say the table's value is obsolete), else the column default.
/// `old` must be in the table's schema (`keys.upserts.schema()`).
pub fn resolve_upserts(
    changes: &ChangeSet,
    keys: &ChangedKeys,
    old: &RecordBatch,
    old_row: &[Option<usize>],
) -> Result<RecordBatch> {
    let table = &changes.table;
    let upserts = &keys.upserts;
    let schema = upserts.schema();
    let n = upserts.num_rows();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (c, field) in schema.fields().iter().enumerate() {
        let up = upserts.column(c);
        let Some(mask) = keys.unchanged.column(c) else {
            columns.push(up.clone());
            continue;
        };
        let default = default_column(table, field, 1)?;
        let old_col = match old.column_by_name(field.name()) {
            Some(col) => cast_column(table, field, col)?,
            None => default_column(table, field, old.num_rows())?,
        };
        let sources: [&dyn Array; 3] = [old_col.as_ref(), up.as_ref(), default.as_ref()];
        let picks: Vec<(usize, usize)> = (0..n)
            .map(|j| {
                let usable = old_row[j].filter(|_| !changes.ignore_table_values.value(j));
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
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )
    .map_err(|e| Error::arrow(format!("upserts of {table}"), e))
}

/// Integers sorted once, counted by range many times (changed keys against file key bounds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortedInts(Vec<i64>);

impl SortedInts {
    /// Sorts and deduplicates `values`.
    pub fn new(mut values: Vec<i64>) -> Self {
        values.sort_unstable();
        values.dedup();
        SortedInts(values)
    }

    /// How many values lie in `[min, max]` (0 when `min > max`).
    pub fn count_in(&self, min: i64, max: i64) -> usize {
        let lo = self.0.partition_point(|&k| k < min);
        let hi = self.0.partition_point(|&k| k <= max);
        hi.saturating_sub(lo)
    }

    /// The values, ascending.
    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }
}

/// Distinct string keys in byte order (the order of Iceberg's and Parquet's string bounds).
#[derive(Debug, Clone, Default)]
pub struct SortedStrings(Vec<String>);

impl SortedStrings {
    /// Sorts and deduplicates `values`.
    pub fn new(mut values: Vec<String>) -> Self {
        values.sort_unstable();
        values.dedup();
        SortedStrings(values)
    }

    /// How many values lie in `[min, max]` (0 when `min > max`).
    pub fn count_in(&self, min: &str, max: &str) -> usize {
        let lo = self.0.partition_point(|k| k.as_str() < min);
        let hi = self.0.partition_point(|k| k.as_str() <= max);
        hi.saturating_sub(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::{SortedInts, SortedStrings};

    #[test]
    fn sorted_strings_count_closed_ranges_in_byte_order() {
        let keys = SortedStrings::new(
            ["b", "a", "ab", "é", "Z", "b"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        // Byte order: upper case before lower case, multi-byte UTF-8 after ASCII.
        assert_eq!(keys.count_in("a", "b"), 3);
        assert_eq!(keys.count_in("A", "Z"), 1);
        assert_eq!(keys.count_in("c", "\u{10ffff}"), 1);
        assert_eq!(keys.count_in("ac", "az"), 0);
        // A truncated lower bound ("a" for "ab...") and upper bound ("ac" for "ab...").
        assert_eq!(keys.count_in("a", "ac"), 2);
        assert_eq!(keys.count_in("b", "a"), 0);
    }

    #[test]
    fn sorted_ints_count_closed_ranges() {
        let keys = SortedInts::new(vec![42, 3, 17, 3, -5]);
        assert_eq!(keys.as_slice(), &[-5, 3, 17, 42]);
        assert_eq!(keys.count_in(3, 17), 2);
        assert_eq!(keys.count_in(4, 16), 0);
        assert_eq!(keys.count_in(i64::MIN, i64::MAX), 4);
        assert_eq!(keys.count_in(50, 10), 0);
    }
}
