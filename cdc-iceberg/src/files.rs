//! Reading and writing the Parquet files of a table: data files (all columns or only some),
//! position-delete files (`file_path`, `pos`, with the reserved field ids), and their
//! [`DataFile`] entries with column statistics for the manifests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use iceberg::arrow::ArrowFileReader;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, NestedField, PartitionKey, PrimitiveType, Schema as IcebergSchema,
    Struct, TableMetadata, Type,
};
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriterBuilder};
use parquet::file::properties::WriterProperties;

use crate::error::{file_err, iceberg_err, IcebergSinkError, Result};
use crate::schema::{file_arrow_schema, stored_arrow_schema};
use cdc_core::storage::to_storage;

/// Field id of `file_path` in position-delete files (Iceberg spec, reserved).
pub const DELETE_FILE_PATH_ID: i32 = 2147483546;
/// Field id of `pos` in position-delete files (Iceberg spec, reserved).
pub const DELETE_POS_ID: i32 = 2147483545;

/// Reads a Parquet file, all columns or only `columns` (by name; names the file lacks are
/// skipped), all rows or only those at the ascending positions `rows`. Only the column chunks
/// asked for are fetched.
pub(crate) async fn read_parquet(
    table: &str,
    io: &FileIO,
    file: &DataFile,
    columns: Option<&[String]>,
    rows: Option<&[u32]>,
) -> Result<RecordBatch> {
    let path = file.file_path();
    let input = io.new_input(path).map_err(file_err(&table, path))?;
    // The size the manifest records (the spec requires it): no HEAD request per read.
    let size = file.file_size_in_bytes();
    let meta = iceberg::io::FileMetadata { size };
    let reader = input.reader().await.map_err(file_err(&table, path))?;
    cdc_core::storage::read_parquet_file(ArrowFileReader::new(meta, reader), size, columns, rows)
        .await
        .map_err(file_err(&table, path))
}

/// What a written file is, for its manifest entry.
pub(crate) struct FileKind<'a> {
    pub content: DataContentType,
    pub partition: &'a PartitionKey,
    pub equality_ids: Option<Vec<i32>>,
}

/// Writes `batch` (already in the file Arrow schema of `schema`) as one Parquet file at
/// `location` and returns its manifest entry content (`content` as given, unpartitioned).
pub(crate) async fn write_parquet(
    table: &str,
    io: &FileIO,
    location: &str,
    schema: Arc<IcebergSchema>,
    batch: &RecordBatch,
    kind: FileKind<'_>,
) -> Result<DataFile> {
    let FileKind {
        content,
        partition,
        equality_ids,
    } = kind;
    // Untruncated statistics: iceberg-rust drops a row group's inexact (truncated) min/max
    // from the manifest bounds, which could leave a file's string upper bound below a key it
    // holds; exact statistics keep the bounds true for key pruning.
    let props = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_statistics_truncate_length(None);
    let props = cdc_core::storage::without_needless_dictionaries(props, batch).build();
    let output = io
        .new_output(location)
        .map_err(file_err(&table, location))?;
    let mut writer = ParquetWriterBuilder::new(props, schema)
        .build(output)
        .await
        .map_err(file_err(&table, location))?;
    writer
        .write(batch)
        .await
        .map_err(file_err(&table, location))?;
    let mut built = writer.close().await.map_err(file_err(&table, location))?;
    let mut builder = built.pop().ok_or_else(|| IcebergSinkError::File {
        table: table.to_string(),
        path: location.to_string(),
        message: "the Parquet writer wrote no file".into(),
    })?;
    builder
        .content(content)
        .equality_ids(equality_ids)
        .partition(partition.data().clone())
        .partition_spec_id(partition.spec().spec_id());
    builder.build().map_err(file_err(&table, location))
}

/// Rows per data file at most (a file this size is around 100 MB for typical rows).
pub(crate) const MAX_ROWS_PER_FILE: usize = 2_000_000;

/// Writes `rows` (stored form of the table's merged logical schema) as data files of the
/// current schema and partition spec of `metadata`, split by partition, [`MAX_ROWS_PER_FILE`]
/// rows each; no file for no rows.
pub(crate) async fn write_data_files(
    table: &str,
    io: &FileIO,
    metadata: &TableMetadata,
    rows: &RecordBatch,
) -> Result<Vec<DataFile>> {
    let mut out = Vec::new();
    if rows.num_rows() == 0 {
        return Ok(out);
    }
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().clone();
    let file_rows = to_storage(rows, &file_arrow_schema(table, &schema)?)?;
    let parts = if spec.is_unpartitioned() {
        vec![(
            PartitionKey::new(spec.as_ref().clone(), schema.clone(), Struct::empty()),
            file_rows,
        )]
    } else {
        RecordBatchPartitionSplitter::try_new_with_computed_values(schema.clone(), spec.clone())
            .and_then(|s| s.split(&file_rows))
            .map_err(iceberg_err(&table, "splitting rows by partition"))?
    };
    for (key, part) in parts {
        let dir = data_dir(metadata, &key);
        let mut offset = 0;
        while offset < part.num_rows() {
            let len = MAX_ROWS_PER_FILE.min(part.num_rows() - offset);
            let path = format!("{dir}/{}.parquet", uuid::Uuid::new_v4());
            out.push(
                write_parquet(
                    table,
                    io,
                    &path,
                    schema.clone(),
                    &part.slice(offset, len),
                    FileKind {
                        content: DataContentType::Data,
                        partition: &key,
                        equality_ids: None,
                    },
                )
                .await?,
            );
            offset += len;
        }
    }
    Ok(out)
}

/// The directory of a partition's files: `<table>/data[/<field>=<value>...]`.
fn data_dir(metadata: &TableMetadata, key: &PartitionKey) -> String {
    if key.spec().is_unpartitioned() {
        format!("{}/data", metadata.location())
    } else {
        format!("{}/data/{}", metadata.location(), key.to_path())
    }
}

/// Writes position deletes, one file per partition of the data files they name (a position
/// delete applies only within its partition). `partitions` maps data file paths to their
/// partition values.
pub(crate) async fn write_position_deletes(
    table: &str,
    io: &FileIO,
    metadata: &TableMetadata,
    positions: &Positions,
    partitions: &HashMap<&str, &Struct>,
) -> Result<Vec<DataFile>> {
    let spec = metadata.default_partition_spec();
    let mut groups: HashMap<Struct, Positions> = HashMap::new();
    for (path, rows) in positions {
        let partition = partitions
            .get(path.as_str())
            .map(|p| (*p).clone())
            .unwrap_or_else(Struct::empty);
        groups
            .entry(partition)
            .or_default()
            .insert(path.clone(), rows.clone());
    }
    let delete_schema = position_delete_schema();
    let mut out = Vec::new();
    for (partition, positions) in groups {
        let key = PartitionKey::new(
            spec.as_ref().clone(),
            metadata.current_schema().clone(),
            partition,
        );
        let batch = position_delete_batch(table, &delete_schema, &positions)?;
        let path = format!(
            "{}/{}-deletes.parquet",
            data_dir(metadata, &key),
            uuid::Uuid::new_v4()
        );
        out.push(
            write_parquet(
                table,
                io,
                &path,
                delete_schema.clone(),
                &batch,
                FileKind {
                    content: DataContentType::PositionDeletes,
                    partition: &key,
                    equality_ids: None,
                },
            )
            .await?,
        );
    }
    Ok(out)
}

/// Writes an equality-delete file on `keys` (logical key columns of the table, in key order)
/// into an unpartitioned table.
pub(crate) async fn write_equality_deletes(
    table: &str,
    io: &FileIO,
    metadata: &TableMetadata,
    keys: &RecordBatch,
) -> Result<DataFile> {
    let schema = metadata.current_schema();
    let fields = keys
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let field = schema
                .field_by_name(f.name())
                .ok_or_else(|| IcebergSinkError::Schema {
                    table: table.to_string(),
                    column: f.name().clone(),
                    message: "key column missing from the Iceberg schema".into(),
                })?;
            if matches!(
                field.field_type.as_primitive_type(),
                Some(PrimitiveType::Float | PrimitiveType::Double)
            ) {
                return Err(IcebergSinkError::Schema {
                    table: table.to_string(),
                    column: f.name().clone(),
                    message: "floating-point key columns cannot be equality-delete columns; \
                              use write_mode position-deletes"
                        .into(),
                });
            }
            Ok(field.clone())
        })
        .collect::<Result<Vec<_>>>()?;
    let ids: Vec<i32> = fields.iter().map(|f| f.id).collect();
    let delete_schema = Arc::new(
        IcebergSchema::builder()
            .with_fields(fields)
            .build()
            .map_err(iceberg_err(&table, "building the equality-delete schema"))?,
    );
    let stored = to_storage(keys, &Arc::new(stored_arrow_schema(&keys.schema())))?;
    let file_rows = to_storage(&stored, &file_arrow_schema(table, &delete_schema)?)?;
    let spec = metadata.default_partition_spec();
    let key = PartitionKey::new(spec.as_ref().clone(), schema.clone(), Struct::empty());
    let path = format!(
        "{}/{}-eq-deletes.parquet",
        data_dir(metadata, &key),
        uuid::Uuid::new_v4()
    );
    write_parquet(
        table,
        io,
        &path,
        delete_schema,
        &file_rows,
        FileKind {
            content: DataContentType::EqualityDeletes,
            partition: &key,
            equality_ids: Some(ids),
        },
    )
    .await
}

/// The schema of position-delete files.
pub(crate) fn position_delete_schema() -> Arc<IcebergSchema> {
    Arc::new(
        IcebergSchema::builder()
            .with_fields(vec![
                Arc::new(NestedField::required(
                    DELETE_FILE_PATH_ID,
                    "file_path",
                    Type::Primitive(PrimitiveType::String),
                )),
                Arc::new(NestedField::required(
                    DELETE_POS_ID,
                    "pos",
                    Type::Primitive(PrimitiveType::Long),
                )),
            ])
            .build()
            .expect("a valid schema"),
    )
}

/// Position deletes to write: data file path → deleted row positions.
pub(crate) type Positions = BTreeMap<String, Vec<i64>>;

/// The rows of a position-delete file for `positions`, sorted by path then position.
pub(crate) fn position_delete_batch(
    table: &str,
    schema: &Arc<IcebergSchema>,
    positions: &Positions,
) -> Result<RecordBatch> {
    let arrow: SchemaRef = crate::schema::file_arrow_schema(table, schema)?;
    let mut paths = Vec::new();
    let mut pos = Vec::new();
    for (path, rows) in positions {
        let mut rows = rows.clone();
        rows.sort_unstable();
        rows.dedup();
        paths.extend(std::iter::repeat_n(path.as_str(), rows.len()));
        pos.extend(rows);
    }
    RecordBatch::try_new(
        arrow,
        vec![
            Arc::new(StringArray::from(paths)),
            Arc::new(Int64Array::from(pos)),
        ],
    )
    .map_err(|e| cdc_core::Error::arrow("building position deletes", e).into())
}

/// Reads one position-delete file: data file path → deleted positions (sorted).
pub(crate) async fn read_position_deletes(
    table: &str,
    io: &FileIO,
    file: &DataFile,
) -> Result<HashMap<String, Vec<i64>>> {
    let cols = ["file_path".to_string(), "pos".to_string()];
    let batch = read_parquet(table, io, file, Some(&cols), None).await?;
    let bad = || IcebergSinkError::File {
        table: table.to_string(),
        path: file.file_path().to_string(),
        message: "position-delete file lacks string `file_path` / long `pos`".into(),
    };
    let paths = batch
        .column_by_name("file_path")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(bad)?;
    let pos = batch
        .column_by_name("pos")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(bad)?;
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for i in 0..batch.num_rows() {
        if paths.is_null(i) || pos.is_null(i) {
            continue;
        }
        let p = paths.value(i);
        match out.get_mut(p) {
            Some(v) => v.push(pos.value(i)),
            None => {
                out.insert(p.to_string(), vec![pos.value(i)]);
            }
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    Ok(out)
}

/// Whether a position-delete file can hold deletes of `path`, by its `file_path` bounds.
pub(crate) fn may_reference(delete_file: &DataFile, path: &str) -> bool {
    if let Some(referenced) = delete_file.referenced_data_file() {
        return referenced == path;
    }
    let bound = |b: &HashMap<i32, iceberg::spec::Datum>| {
        b.get(&DELETE_FILE_PATH_ID).and_then(|d| match d.literal() {
            iceberg::spec::PrimitiveLiteral::String(s) => Some(s.clone()),
            _ => None,
        })
    };
    let lower = bound(delete_file.lower_bounds());
    let upper = bound(delete_file.upper_bounds());
    // Bounds may be truncated prefixes: compare only as far as they go.
    let above_lower = lower.is_none_or(|l| path >= l.as_str() || path.starts_with(l.as_str()));
    let below_upper = upper
        .is_none_or(|u| path <= u.as_str() || path.starts_with(u.as_str()) || u.starts_with(path));
    above_lower && below_upper
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{DataFileBuilder, DataFileFormat, Datum};

    fn delete_file(lower: &str, upper: &str) -> DataFile {
        DataFileBuilder::default()
            .content(DataContentType::PositionDeletes)
            .file_path("d.parquet".into())
            .file_format(DataFileFormat::Parquet)
            .record_count(1)
            .file_size_in_bytes(1)
            .lower_bounds(HashMap::from([(DELETE_FILE_PATH_ID, Datum::string(lower))]))
            .upper_bounds(HashMap::from([(DELETE_FILE_PATH_ID, Datum::string(upper))]))
            .build()
            .unwrap()
    }

    #[test]
    fn delete_files_are_pruned_by_their_path_bounds() {
        let d = delete_file("/t/data/3", "/t/data/7");
        assert!(may_reference(&d, "/t/data/5.parquet"));
        assert!(may_reference(&d, "/t/data/3.parquet"));
        // A truncated upper bound is a prefix of paths it still covers.
        assert!(may_reference(&d, "/t/data/7.parquet"));
        assert!(!may_reference(&d, "/t/data/8.parquet"));
        assert!(!may_reference(&d, "/t/data/2.parquet"));
    }

    #[test]
    fn position_delete_rows_are_sorted_by_path_then_position() {
        let schema = position_delete_schema();
        let positions = Positions::from([
            ("b".to_string(), vec![5, 1, 5]),
            ("a".to_string(), vec![9, 0]),
        ]);
        let batch = position_delete_batch("t", &schema, &positions).unwrap();
        let paths = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let pos = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let rows: Vec<(&str, i64)> = (0..batch.num_rows())
            .map(|i| (paths.value(i), pos.value(i)))
            .collect();
        assert_eq!(rows, vec![("a", 0), ("a", 9), ("b", 1), ("b", 5)]);
    }
}
