//! The data files a change set may touch and how they are read for cdc-core's `locate`:
//! candidates pruned by their manifest lower/upper bounds of the first key column (integer
//! keys in every file; string keys only in files this sink wrote), read through
//! [`IcebergFiles`], with the rows that earlier position deletes and equality deletes removed
//! left out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_row::RowConverter;
use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use cdc_core::fold::key_converter;
use cdc_core::model::TableId;
use cdc_core::schema::cast_column;
use cdc_core::sink::upsert::{FilePlan, FileReader, KeyBounds, KeyRanges, RowRemoval};
use cdc_core::storage::from_storage_columns;
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, PrimitiveLiteral, TableMetadata};

use crate::error::{IcebergSinkError, Result};
use crate::files::{may_reference, read_parquet};
use crate::table::{FileCache, LiveFile, Loaded, CHECKPOINT_SUMMARY};

/// The snapshots this sink committed (they carry its checkpoint): their files' string bounds
/// are exact. Another writer's truncated bounds are not always widened to hold every value.
fn own_snapshots(metadata: &TableMetadata) -> HashSet<i64> {
    metadata
        .snapshots()
        .filter(|s| {
            s.summary()
                .additional_properties
                .contains_key(CHECKPOINT_SUMMARY)
        })
        .map(|s| s.snapshot_id())
        .collect()
}

/// The key bounds of a data file, as far as they can be trusted.
fn bounds<'f>(file: &'f LiveFile, field_id: i32, own: &HashSet<i64>) -> KeyBounds<'f> {
    let df = &file.entry.data_file;
    let (Some(lower), Some(upper)) = (
        df.lower_bounds().get(&field_id),
        df.upper_bounds().get(&field_id),
    ) else {
        return KeyBounds::Unknown;
    };
    let as_i64 = |d: &PrimitiveLiteral| match d {
        PrimitiveLiteral::Int(v) => Some(i64::from(*v)),
        PrimitiveLiteral::Long(v) => Some(*v),
        _ => None,
    };
    match (lower.literal(), upper.literal()) {
        (PrimitiveLiteral::String(min), PrimitiveLiteral::String(max))
            if file.entry.snapshot_id.is_some_and(|s| own.contains(&s)) =>
        {
            KeyBounds::Strings(min, max)
        }
        (l, u) => match (as_i64(l), as_i64(u)) {
            (Some(min), Some(max)) => KeyBounds::Ints(min, max),
            _ => KeyBounds::Unknown,
        },
    }
}

/// The data files of `loaded` a change set must read, with how.
pub(crate) fn candidates(
    loaded: &Loaded,
    key_column: &str,
    ranges: &KeyRanges,
    removal: RowRemoval,
    rewrite_all: bool,
) -> Vec<(LiveFile, FilePlan)> {
    let field_id = loaded
        .metadata
        .current_schema()
        .field_id_by_name(key_column);
    let own = own_snapshots(&loaded.metadata);
    loaded
        .data_files
        .iter()
        .filter_map(|file| {
            let bounds = field_id.map_or(KeyBounds::Unknown, |id| bounds(file, id, &own));
            let plan = ranges.plan(&bounds, None, removal, rewrite_all)?;
            Some((file.clone(), plan))
        })
        .collect()
}

/// Keys removed by equality-delete files, each with the highest data sequence number of a
/// file deleting it: a data row is gone when its key is here with a sequence number above the
/// row's file.
pub(crate) struct EqualityIndex {
    table: TableId,
    key_schema: SchemaRef,
    converter: RowConverter,
    seqs: HashMap<Box<[u8]>, i64>,
}

impl EqualityIndex {
    /// The index of the table's equality-delete files, `None` when it has none.
    pub async fn load(
        table: &TableId,
        io: &FileIO,
        loaded: &Loaded,
        merged: &SchemaRef,
    ) -> Result<Option<Self>> {
        let files: Vec<&LiveFile> = loaded
            .delete_files
            .iter()
            .filter(|f| f.content() == DataContentType::EqualityDeletes)
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let name = table.to_string();
        let key_schema: SchemaRef = Arc::new(Schema::new(
            loaded
                .key_columns
                .iter()
                .map(|k| {
                    merged
                        .field_with_name(k)
                        .cloned()
                        .map_err(|e| cdc_core::Error::arrow(format!("key column `{k}`"), e))
                })
                .collect::<cdc_core::Result<Vec<_>>>()?,
        ));
        let indices: Vec<usize> = (0..key_schema.fields().len()).collect();
        let converter = key_converter(table, &key_schema, &indices)?;
        let mut index = EqualityIndex {
            table: table.clone(),
            key_schema,
            converter,
            seqs: HashMap::new(),
        };
        for file in files {
            let ids = file.entry.data_file.equality_ids().unwrap_or_default();
            let schema = loaded.metadata.current_schema();
            let columns: Vec<String> = ids
                .iter()
                .filter_map(|id| schema.name_by_field_id(*id).map(str::to_string))
                .collect();
            if columns != loaded.key_columns {
                return Err(IcebergSinkError::Layout {
                    table: name,
                    message: format!(
                        "equality-delete file `{}` deletes by {columns:?}, not by the key {:?}",
                        file.path(),
                        loaded.key_columns
                    ),
                });
            }
            let rows = read_parquet(&name, io, &file.entry.data_file, Some(&columns), None).await?;
            let encoded = index.encode(&from_storage_columns(&rows, merged)?)?;
            for row in encoded.iter() {
                let seq = index
                    .seqs
                    .entry(Box::from(row.data()))
                    .or_insert(file.seq());
                *seq = (*seq).max(file.seq());
            }
        }
        Ok(Some(index))
    }

    fn encode(&self, rows: &RecordBatch) -> Result<arrow_row::Rows> {
        let cols = self
            .key_schema
            .fields()
            .iter()
            .map(|f| {
                let col =
                    rows.column_by_name(f.name())
                        .ok_or_else(|| cdc_core::Error::MissingKey {
                            table: self.table.to_string(),
                            message: format!("rows lack key column `{}`", f.name()),
                        })?;
                cast_column(&self.table, f, col)
            })
            .collect::<cdc_core::Result<Vec<_>>>()?;
        Ok(self
            .converter
            .convert_columns(&cols)
            .map_err(|e| cdc_core::Error::arrow("encoding keys", e))?)
    }

    /// The rows of a data file with sequence number `seq` (its key columns, logical) that
    /// equality deletes removed.
    pub fn deleted(&self, keys: &RecordBatch, seq: i64) -> Result<Vec<u64>> {
        let encoded = self.encode(keys)?;
        Ok(encoded
            .iter()
            .enumerate()
            .filter(|(_, row)| self.seqs.get(row.data()).is_some_and(|&d| d > seq))
            .map(|(i, _)| i as u64)
            .collect())
    }
}

/// Positions deleted so far, for the data files in `wanted`.
pub(crate) async fn existing_deletes(
    table: &str,
    io: &FileIO,
    loaded: &Loaded,
    wanted: &[&LiveFile],
    cache: &mut FileCache,
) -> Result<HashMap<String, Vec<i64>>> {
    let paths: HashSet<&str> = wanted.iter().map(|f| f.path()).collect();
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for d in &loaded.delete_files {
        if d.content() != DataContentType::PositionDeletes
            || !paths.iter().any(|p| may_reference(&d.entry.data_file, p))
        {
            continue;
        }
        let deletes = cache.deletes(table, io, &d.entry.data_file).await?;
        for (path, positions) in deletes.iter() {
            if paths.contains(path.as_str()) {
                out.entry(path.clone()).or_default().extend(positions);
            }
        }
    }
    Ok(out)
}

/// Reads the table's data files, honouring its delete files.
pub(crate) struct IcebergFiles {
    pub name: String,
    pub io: FileIO,
    /// Positions earlier position deletes removed, per data file.
    pub deleted: HashMap<String, Vec<i64>>,
    pub equality: Option<EqualityIndex>,
    /// The logical schema files are read into.
    pub merged: SchemaRef,
}

impl IcebergFiles {
    /// The reader of `files` of `loaded` (their delete files read first).
    pub async fn new(
        table: &TableId,
        io: &FileIO,
        loaded: &Loaded,
        files: &[&LiveFile],
        merged: &SchemaRef,
        cache: &mut FileCache,
    ) -> Result<Self> {
        let name = table.to_string();
        Ok(IcebergFiles {
            deleted: existing_deletes(&name, io, loaded, files, cache).await?,
            equality: EqualityIndex::load(table, io, loaded, merged).await?,
            io: io.clone(),
            name,
            merged: merged.clone(),
        })
    }
}

#[async_trait]
impl FileReader for IcebergFiles {
    type File = LiveFile;
    type Error = IcebergSinkError;

    async fn read(
        &self,
        file: &LiveFile,
        columns: Option<&[String]>,
        rows: Option<&[u32]>,
    ) -> Result<RecordBatch> {
        read_parquet(&self.name, &self.io, &file.entry.data_file, columns, rows).await
    }

    async fn deleted(&self, file: &LiveFile, keys: &RecordBatch) -> Result<Vec<u64>> {
        let mut gone: Vec<u64> = self
            .deleted
            .get(file.path())
            .into_iter()
            .flatten()
            .filter_map(|&p| u64::try_from(p).ok())
            .collect();
        if let Some(eq) = &self.equality {
            let missing: Vec<String> = (eq.key_schema.fields().iter())
                .map(|f| f.name().clone())
                .filter(|k| keys.column_by_name(k).is_none())
                .collect();
            if missing.is_empty() {
                gone.extend(eq.deleted(keys, file.seq())?);
            } else {
                // Looked up by a prefix of the table's key (a history's versions): the
                // equality deletes name whole keys, so the file's whole key is read.
                let columns: Vec<String> = (eq.key_schema.fields().iter())
                    .map(|f| f.name().clone())
                    .collect();
                let rows = self.read(file, Some(&columns), None).await?;
                let logical = from_storage_columns(&rows, &self.merged)?;
                gone.extend(eq.deleted(&logical, file.seq())?);
            }
        }
        gone.sort_unstable();
        gone.dedup();
        Ok(gone)
    }

    fn file_name<'a>(&self, file: &'a LiveFile) -> Option<&'a str> {
        Some(file.path())
    }
}
