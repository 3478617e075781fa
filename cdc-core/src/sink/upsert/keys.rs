//! A change set's keys, indexed once per commit attempt: [`ChangedKeys`] says, for any row of
//! the table, whether the change set replaces it ([`Touch::Upsert`]), deletes it
//! ([`Touch::Delete`]) or leaves it alone.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow_row::RowConverter;
use arrow_schema::{DataType, FieldRef, Schema, SchemaRef};

use super::file_keys::{ascending, encoded_fingerprint, int_fingerprint, FileKeyCache};
use super::prune::{KeyRanges, SortedInts, SortedStrings};
use crate::error::{Error, Result};
use crate::fold::{key_converter, key_indices, ChangeSet};
use crate::model::{TableId, UnchangedMask};
use crate::schema::{cast_column, conform_batch};

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
    key_columns: Vec<String>,
    converter: RowConverter,
    index: KeyIndex,
    /// Upserts in the table schema.
    pub upserts: RecordBatch,
    /// Their unchanged cells.
    pub unchanged: UnchangedMask,
    /// Per upsert: the table's current row is obsolete (see
    /// [`ChangeSet::ignore_table_values`]).
    pub ignore_table_values: BooleanArray,
    /// Delete keys (key columns in the table's key types).
    pub deletes: Vec<ArrayRef>,
    /// Per upsert: it has unchanged cells that take the table's current value.
    needs_old_row: Vec<bool>,
    /// What the process knows of the keys in the table's files.
    file_keys: Option<Arc<FileKeyCache>>,
    /// The changed keys' fingerprints, ascending (taken when first asked for).
    fingerprints: OnceLock<Arc<[u32]>>,
}

impl ChangedKeys {
    /// Indexes `changes` for a table whose (merged) schema is `schema`.
    pub fn new(changes: &ChangeSet, schema: &SchemaRef, key_columns: &[String]) -> Result<Self> {
        let table = &changes.table;
        let keys = key_indices(table, schema, key_columns)?;
        let converter = key_converter(table, schema, &keys)?;
        let key_fields: Vec<FieldRef> = keys.iter().map(|&k| schema.fields()[k].clone()).collect();
        let (upserts, unchanged) = if changes.upserts.schema() == *schema {
            (changes.upserts.clone(), changes.upsert_unchanged.clone())
        } else {
            conform_batch(table, &changes.upserts, &changes.upsert_unchanged, schema)?
        };
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
        let upsert_keys: Vec<ArrayRef> = keys.iter().map(|&k| upserts.column(k).clone()).collect();
        let index = build_index(table, &converter, &upsert_keys, &deletes)?;
        let ignore = changes.ignore_table_values.clone();
        let needs_old_row = (0..upserts.num_rows())
            .map(|j| {
                !ignore.value(j)
                    && unchanged
                        .columns()
                        .iter()
                        .flatten()
                        .any(|mask| mask.value(j))
            })
            .collect();
        Ok(ChangedKeys {
            table: table.clone(),
            key_fields,
            key_columns: key_columns.to_vec(),
            converter,
            index,
            upserts,
            unchanged,
            ignore_table_values: ignore,
            deletes,
            needs_old_row,
            file_keys: None,
            fingerprints: OnceLock::new(),
        })
    }

    /// These keys, locating them with what `cache` knows of the keys in the table's files
    /// (and teaching it what files are read).
    pub fn with_file_keys(mut self, cache: Arc<FileKeyCache>) -> Self {
        self.file_keys = Some(cache);
        self
    }

    /// What the process knows of the keys in the table's files, if it is used.
    pub fn file_keys(&self) -> Option<&FileKeyCache> {
        self.file_keys.as_deref()
    }

    /// The changed keys' fingerprints (see [`FileKeyCache`]), ascending.
    pub fn fingerprints(&self) -> Arc<[u32]> {
        self.fingerprints
            .get_or_init(|| {
                let prints = match &self.index {
                    KeyIndex::Int(map) => map.keys().map(|&k| int_fingerprint(k)).collect(),
                    KeyIndex::Encoded(map) => map.keys().map(|k| encoded_fingerprint(k)).collect(),
                };
                ascending(prints).into()
            })
            .clone()
    }

    /// The fingerprints of the keys of `rows` (which must hold the key columns, by name),
    /// ascending and distinct; a null integer key, which no change matches, has none.
    pub fn fingerprints_of(&self, rows: &RecordBatch) -> Result<Vec<u32>> {
        Ok(ascending(match self.key_values(rows)? {
            KeyValues::Ints(ints) => ints.iter().flatten().map(int_fingerprint).collect(),
            KeyValues::Encoded(rows) => {
                rows.iter().map(|r| encoded_fingerprint(r.data())).collect()
            }
        }))
    }

    /// No changed keys, for a table of `schema` keyed by `key_columns`: what a rewrite of the
    /// table's rows that changes none of them (compaction) locates with.
    pub fn none(table: &TableId, schema: &SchemaRef, key_columns: &[String]) -> Result<Self> {
        let keys = key_indices(table, schema, key_columns)?;
        let key_schema = Arc::new(Schema::new(
            keys.iter()
                .map(|&k| schema.field(k).clone())
                .collect::<Vec<_>>(),
        ));
        let changes = ChangeSet {
            table: table.clone(),
            schema: schema.clone(),
            key_columns: Arc::from(key_columns.to_vec()),
            truncate: false,
            upserts: RecordBatch::new_empty(schema.clone()),
            upsert_unchanged: UnchangedMask::none(schema.fields().len()),
            ignore_table_values: BooleanArray::from(Vec::<bool>::new()),
            deletes: RecordBatch::new_empty(key_schema),
            checkpoint: Default::default(),
            first_offsets: Default::default(),
            events: 0,
            max_source_ts_ms: None,
            history: None,
        };
        ChangedKeys::new(&changes, schema, key_columns)
    }

    /// The table.
    pub fn table(&self) -> &TableId {
        &self.table
    }

    /// The key column fields, in key order.
    pub fn key_fields(&self) -> &[FieldRef] {
        &self.key_fields
    }

    /// The key column names, in key order.
    pub fn key_columns(&self) -> &[String] {
        &self.key_columns
    }

    /// The table schema the keys were conformed to.
    pub fn schema(&self) -> SchemaRef {
        self.upserts.schema()
    }

    /// Whether upsert `j` has unchanged cells that take the value of the row it replaces.
    pub fn needs_old_row(&self, j: usize) -> bool {
        self.needs_old_row[j]
    }

    /// Whether any upsert needs the row it replaces.
    pub fn any_needs_old_row(&self) -> bool {
        self.needs_old_row.iter().any(|n| *n)
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

    /// The sorted first-key values of every changed key (integer or string), for pruning.
    pub fn ranges(&self) -> KeyRanges {
        match self.first_key_ints() {
            Some(ints) => KeyRanges::new(Some(ints), None),
            None => KeyRanges::new(None, self.first_key_strings()),
        }
    }

    /// Every changed key (upserted, then deleted) as a batch of the key columns.
    pub fn key_batch(&self) -> Result<RecordBatch> {
        let columns = self
            .key_fields
            .iter()
            .zip(&self.deletes)
            .map(|(f, deleted)| {
                let upserted =
                    self.upserts
                        .column_by_name(f.name())
                        .ok_or_else(|| Error::MissingKey {
                            table: self.table.to_string(),
                            message: format!("upserts lack key column `{}`", f.name()),
                        })?;
                arrow_select::concat::concat(&[upserted.as_ref(), deleted.as_ref()])
                    .map_err(|e| Error::arrow("collecting changed keys", e))
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(Arc::new(Schema::new(self.key_fields.clone())), columns)
            .map_err(|e| Error::arrow("collecting changed keys", e))
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
        match (&self.index, self.key_values(rows)?) {
            (KeyIndex::Int(map), KeyValues::Ints(ints)) => Ok(ints
                .iter()
                .map(|k| k.and_then(|k| map.get(&k).copied()))
                .collect()),
            (KeyIndex::Encoded(map), KeyValues::Encoded(encoded)) => {
                Ok(encoded.iter().map(|r| map.get(r.data()).copied()).collect())
            }
            _ => Err(Error::sink(
                &self.table,
                "key values taken unlike the key index",
            )),
        }
    }

    /// The key values of `rows` as the index holds keys.
    fn key_values(&self, rows: &RecordBatch) -> Result<KeyValues> {
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
            KeyIndex::Int(_) => {
                let ints = int_keys(&cols[0]).ok_or_else(|| Error::MissingKey {
                    table: self.table.to_string(),
                    message: "integer key column changed type".into(),
                })?;
                Ok(KeyValues::Ints(ints))
            }
            KeyIndex::Encoded(_) => {
                let encoded = self
                    .converter
                    .convert_columns(&cols)
                    .map_err(|e| Error::arrow(format!("encoding keys of {}", self.table), e))?;
                Ok(KeyValues::Encoded(encoded))
            }
        }
    }
}

/// A batch's key values: `i64`s for an integer key, else Arrow's row encoding.
enum KeyValues {
    Ints(Int64Array),
    Encoded(arrow_row::Rows),
}

/// The index of the upserted and deleted keys: by `i64` for one integer key column, else by
/// the Arrow row encoding.
fn build_index(
    table: &TableId,
    converter: &RowConverter,
    upsert_keys: &[ArrayRef],
    deletes: &[ArrayRef],
) -> Result<KeyIndex> {
    let capacity =
        upsert_keys.first().map_or(0, |a| a.len()) + deletes.first().map_or(0, |a| a.len());
    let int_pair = match (upsert_keys.len(), deletes.first(), upsert_keys.first()) {
        (1, Some(d), Some(u)) => int_keys(d).zip(int_keys(u)),
        _ => None,
    };
    if let Some((del, ups)) = int_pair {
        let mut map = HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default());
        map.extend(del.iter().flatten().map(|k| (k, Touch::Delete)));
        map.extend(
            ups.iter()
                .enumerate()
                .filter_map(|(j, k)| Some((k?, Touch::Upsert(j)))),
        );
        return Ok(KeyIndex::Int(map));
    }
    let mut map = HashMap::with_capacity(capacity);
    let delete_rows = converter
        .convert_columns(deletes)
        .map_err(|e| Error::arrow(format!("encoding deletes of {table}"), e))?;
    for row in delete_rows.iter() {
        map.insert(Box::from(row.data()), Touch::Delete);
    }
    let upsert_rows = converter
        .convert_columns(upsert_keys)
        .map_err(|e| Error::arrow(format!("encoding upserts of {table}"), e))?;
    for (j, row) in upsert_rows.iter().enumerate() {
        map.insert(Box::from(row.data()), Touch::Upsert(j));
    }
    Ok(KeyIndex::Encoded(map))
}
