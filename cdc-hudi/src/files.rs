//! The table's files on the object store: `.hoodie/` metadata, base files
//! (`<fileId>_<writeToken>_<instant>.parquet`, meta columns first, key range in the footer)
//! and partition metadata.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use bytes::Bytes;
use cdc_core::storage::read_parquet_file;
use cdc_core::storage::without_needless_dictionaries;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::Compression;
use parquet::basic::{ConvertedType, Type as PhysicalType};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::{ColumnPath, SchemaDescriptor, Type as SchemaType};

use crate::error::{HudiSinkError, Result};
use crate::schema::{COMMIT_SEQNO, FILE_NAME, PARTITION_PATH, RECORD_KEY};

/// Footer key of the least record key of a base file.
pub const MIN_RECORD_KEY: &str = "hoodie_min_record_key";
/// Footer key of the greatest record key of a base file.
pub const MAX_RECORD_KEY: &str = "hoodie_max_record_key";
/// Footer key of the base file's Avro schema (with meta columns).
pub const AVRO_SCHEMA: &str = "parquet.avro.schema";
/// The metadata directory.
pub const HOODIE_DIR: &str = ".hoodie";
/// Name of the partition metadata file in each partition directory.
pub const PARTITION_METADATA: &str = ".hoodie_partition_metadata";
/// Footer key of the numeric key range `min,max` of a single integer key column.
pub const INT_KEY_RANGE: &str = "cdc-lake.intKeyRange";
/// Footer key of the base file's partition path, as written in `_hoodie_partition_path`
/// (directory names in listings may come back percent-encoded).
pub const PARTITION_PATH_KEY: &str = "cdc-lake.partitionPath";

/// The parts of a base file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFileName {
    /// File group id (`<uuid>-<n>`).
    pub file_id: String,
    /// Write token (`<task>-<stage>-<attempt>`).
    pub write_token: String,
    /// Instant time that wrote it.
    pub instant: String,
}

impl BaseFileName {
    /// Parses `<fileId>_<writeToken>_<instant>.parquet`.
    pub fn parse(name: &str) -> Option<BaseFileName> {
        let stem = name.strip_suffix(".parquet")?;
        let (rest, instant) = stem.rsplit_once('_')?;
        let (file_id, write_token) = rest.rsplit_once('_')?;
        if file_id.is_empty() || !matches!(instant.len(), 14 | 17) {
            return None;
        }
        Some(BaseFileName {
            file_id: file_id.into(),
            write_token: write_token.into(),
            instant: instant.into(),
        })
    }

    /// The file name.
    pub fn name(&self) -> String {
        format!(
            "{}_{}_{}.parquet",
            self.file_id, self.write_token, self.instant
        )
    }
}

/// `dir/name`, or `name` for the table root (`""`).
/// Runs store `requests` up to 16 at once (each is a round trip on S3); their results in order,
/// or the first error once all have finished.
pub(crate) async fn all_at_once<T, F>(requests: Vec<F>) -> Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T>>,
{
    use futures::StreamExt;
    let done: Vec<Result<T>> = futures::stream::iter(requests).buffered(16).collect().await;
    done.into_iter().collect()
}

pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// One file listed under the table root.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Where it is, exactly as the store listed it.
    pub location: Path,
    /// Its directory, as the store listed it.
    pub dir: Path,
    /// File name.
    pub name: String,
    /// Directory relative to the table root, as listed (for display; may be percent-encoded).
    pub rel_dir: String,
    /// Size in bytes.
    pub size: u64,
}

/// The object store of one table, with paths relative to the table root.
#[derive(Debug, Clone)]
pub struct TableStore {
    /// Table (for errors).
    pub table: String,
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The table root inside the store.
    pub root: Path,
    /// The table root's directory when the store is the local file system.
    pub local_dir: Option<std::path::PathBuf>,
}

/// An in-memory table store, for unit tests.
#[cfg(test)]
pub(crate) fn memory_store() -> TableStore {
    TableStore {
        table: "public.customers".into(),
        store: Arc::new(object_store::memory::InMemory::new()),
        root: "t".into(),
        local_dir: None,
    }
}

impl TableStore {
    /// The store path of a path relative to the table root. `rel` is taken as already encoded
    /// (partition paths are escaped like Hudi does): the object key is exactly `root/rel`, so
    /// directory names equal `_hoodie_partition_path` (no second percent-encoding). A `rel`
    /// that is no valid store path (`.` segments, control characters) is encoded instead.
    pub fn path(&self, rel: &str) -> Path {
        let root = self.root.as_ref();
        let full = if root.is_empty() {
            rel.to_string()
        } else {
            format!("{root}/{rel}")
        };
        Path::parse(&full).unwrap_or_else(|_| Path::from(full))
    }

    fn err(
        &self,
        context: &'static str,
        rel: &str,
    ) -> impl FnOnce(object_store::Error) -> HudiSinkError {
        let (table, path) = (self.table.clone(), rel.to_string());
        move |source| HudiSinkError::Store {
            table,
            path,
            context,
            source: Box::new(source),
        }
    }

    /// The bytes of a file, or `None` when it does not exist.
    pub async fn get(&self, rel: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(rel)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(self.err("reading", rel))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("reading", rel)(e)),
        }
    }

    /// The bytes of a file and when it was last written, or `None` when it does not exist.
    pub async fn get_with_modified(
        &self,
        rel: &str,
    ) -> Result<Option<(Bytes, chrono::DateTime<chrono::Utc>)>> {
        match self.store.get(&self.path(rel)).await {
            Ok(r) => {
                let modified = r.meta.last_modified;
                Ok(Some((
                    r.bytes().await.map_err(self.err("reading", rel))?,
                    modified,
                )))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("reading", rel)(e)),
        }
    }

    /// Writes a file; with `create_only`, fails if it exists.
    pub async fn put(&self, rel: &str, bytes: Bytes, create_only: bool) -> Result<()> {
        let opts = PutOptions {
            mode: if create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            ..PutOptions::default()
        };
        self.store
            .put_opts(&self.path(rel), PutPayload::from(bytes), opts)
            .await
            .map_err(self.err("writing", rel))?;
        Ok(())
    }

    /// Creates a file unless it exists; `false` when it does.
    pub async fn create(&self, rel: &str, bytes: Bytes) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match (self.store)
            .put_opts(&self.path(rel), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.err("creating", rel)(e)),
        }
    }

    /// Creates a file that must not exist yet. A file already there with exactly these bytes
    /// is this write's own: a retried request whose first attempt landed but whose answer was
    /// lost finds it so. Anything else there is an error.
    pub async fn create_once(&self, rel: &str, bytes: Bytes) -> Result<()> {
        if self.create(rel, bytes.clone()).await? {
            return Ok(());
        }
        match self.get(rel).await? {
            Some(there) if there == bytes => Ok(()),
            _ => Err(self.err("creating", rel)(
                object_store::Error::AlreadyExists {
                    path: rel.to_string(),
                    source: "another writer's file is there".into(),
                },
            )),
        }
    }

    /// Deletes a file (absent is fine).
    pub async fn delete(&self, rel: &str) -> Result<()> {
        self.delete_at(&self.path(rel), rel).await
    }

    /// Deletes the file at a store location (absent is fine); `shown` names it in errors.
    pub async fn delete_at(&self, location: &Path, shown: &str) -> Result<()> {
        match self.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("deleting", shown)(e)),
        }
    }

    fn relative(&self, location: &Path) -> String {
        let full = location.as_ref();
        let root = self.root.as_ref();
        if root.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(root)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(full)
                .to_string()
        }
    }

    /// The file names directly inside `dir` (relative to the root).
    pub async fn list_names(&self, dir: &str) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path(dir)))
            .await
            .map_err(self.err("listing", dir))?;
        Ok(listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect())
    }

    /// The names of the files in `dir` (relative to the root) that sort after `after` and before
    /// its first subdirectory (instant names sort before `archived/`).
    pub async fn list_names_after(&self, dir: &str, after: &str) -> Result<Vec<String>> {
        if let Some(local) = &self.local_dir {
            return self.read_dir_after(local.join(dir), dir, after).await;
        }
        let offset = self.path(&join(dir, after));
        let parent = self.path(dir);
        let direct = |o: &object_store::ObjectMeta| {
            let rest = o.location.prefix_match(&parent);
            rest.is_some_and(|mut rest| rest.nth(1).is_none())
        };
        // The listing is recursive and sorted: it stops at the first name in a subdirectory
        // instead of paging through the archive.
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list_with_offset(Some(&parent), &offset)
            .try_take_while(|o| std::future::ready(Ok(direct(o))))
            .try_collect()
            .await
            .map_err(self.err("listing", dir))?;
        Ok(objects
            .iter()
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect())
    }

    /// The names of the files directly in local directory `path` that sort after `after`:
    /// object_store's local listing walks the whole tree and reads every file's metadata, which
    /// grows with the timeline, while S3 starts its listing after the offset.
    async fn read_dir_after(
        &self,
        path: std::path::PathBuf,
        dir: &str,
        after: &str,
    ) -> Result<Vec<String>> {
        let after = after.to_string();
        let listed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.as_str() > after.as_str() && entry.file_type()?.is_file() {
                    names.push(name);
                }
            }
            Ok(names)
        })
        .await
        .expect("the listing task does not panic");
        listed.map_err(|e| {
            self.err("listing", dir)(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })
        })
    }

    /// Whether a file exists.
    pub async fn exists(&self, rel: &str) -> Result<bool> {
        self.exists_at(&self.path(rel), rel).await
    }

    /// Whether the file at a store location exists; `shown` names it in errors.
    pub async fn exists_at(&self, location: &Path, shown: &str) -> Result<bool> {
        match self.store.head(location).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("checking", shown)(e)),
        }
    }

    /// Every file under the table root outside `.hoodie/`.
    pub async fn list_data_files(&self) -> Result<Vec<Listed>> {
        let prefix = if self.root.as_ref().is_empty() {
            None
        } else {
            Some(self.root.clone())
        };
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(self.err("listing", ""))?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                let rel = self.relative(&o.location);
                if rel.starts_with(".hoodie/") || rel == HOODIE_DIR {
                    return None;
                }
                let parts: Vec<_> = o.location.parts().collect();
                let name = o.location.filename()?.to_string();
                let dir = Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned());
                let rel_dir = rel.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                Some(Listed {
                    location: o.location,
                    dir,
                    name,
                    rel_dir,
                    size: o.size,
                })
            })
            .collect())
    }

    /// The footer of a base file: row count and its record-key range.
    pub async fn read_footer(&self, location: &Path, rel: &str, size: u64) -> Result<Footer> {
        let err = |message: String| HudiSinkError::BaseFile {
            table: self.table.clone(),
            path: rel.to_string(),
            message,
        };
        let mut reader =
            ParquetObjectReader::new(self.store.clone(), location.clone()).with_file_size(size);
        let meta = ArrowReaderMetadata::load_async(&mut reader, Default::default())
            .await
            .map_err(|e| err(e.to_string()))?;
        let file_meta = meta.metadata().file_metadata();
        let kv = |k: &str| {
            file_meta.key_value_metadata().and_then(|kvs| {
                kvs.iter()
                    .find(|e| e.key == k)
                    .and_then(|e| e.value.clone())
            })
        };
        Ok(Footer {
            rows: file_meta.num_rows().max(0) as u64,
            min_key: kv(MIN_RECORD_KEY),
            max_key: kv(MAX_RECORD_KEY),
            partition: kv(PARTITION_PATH_KEY),
            int_range: kv(INT_KEY_RANGE).and_then(|r| {
                let (a, b) = r.split_once(',')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            }),
        })
    }

    /// Reads a base file: every column, or only `columns` (those it has); every row, or only
    /// those at the ascending positions `rows`.
    pub async fn read_base_file(
        &self,
        location: &Path,
        rel: &str,
        size: u64,
        columns: Option<&[String]>,
        rows: Option<&[u32]>,
    ) -> Result<RecordBatch> {
        let reader =
            ParquetObjectReader::new(self.store.clone(), location.clone()).with_file_size(size);
        read_parquet_file(reader, size, columns, rows)
            .await
            .map_err(|message| HudiSinkError::BaseFile {
                table: self.table.clone(),
                path: rel.to_string(),
                message,
            })
    }

    /// Writes a base file holding the rows of `parts` (one schema) with the footer entries `footer`; returns its size.
    pub async fn write_base_file(
        &self,
        location: &Path,
        rel: &str,
        parts: Vec<RecordBatch>,
        footer: Vec<(String, String)>,
    ) -> Result<u64> {
        let err = |message: String| HudiSinkError::BaseFile {
            table: self.table.clone(),
            path: rel.to_string(),
            message,
        };
        let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            // Sequence numbers and record keys are unique per row: a dictionary never pays. No
            // reader prunes on a sequence number, a file name or a partition path (constant in a
            // file), and min/max of long strings compares every row in full (~7 % of a Hudi
            // sync's CPU for the sequence numbers, ~10 % for the file names).
            let no_stats = [COMMIT_SEQNO, FILE_NAME, PARTITION_PATH];
            let mut props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_column_dictionary_enabled(ColumnPath::from(COMMIT_SEQNO), false)
                .set_column_dictionary_enabled(ColumnPath::from(RECORD_KEY), false);
            for column in no_stats {
                props = props.set_column_statistics_enabled(
                    ColumnPath::from(column),
                    EnabledStatistics::None,
                );
            }
            if let Some(largest) = parts.iter().max_by_key(|p| p.num_rows()) {
                props = without_needless_dictionaries(props, largest);
            }
            let props = props
                .set_key_value_metadata(Some(
                    footer
                        .into_iter()
                        .map(|(k, v)| KeyValue::new(k, v))
                        .collect(),
                ))
                .build();
            let schema = parts.first().ok_or("a base file without rows")?.schema();
            let options = ArrowWriterOptions::new()
                .with_properties(props)
                .with_parquet_schema(parquet_schema(&schema)?);
            let writer = ArrowWriter::try_new_with_options(Vec::new(), schema, options)
                .map_err(|e| e.to_string())?;
            crate::encode::write_parallel(writer, &parts)
        })
        .await
        .map_err(|e| err(format!("encoding task failed: {e}")))?
        .map_err(err)?;
        let size = encoded.len() as u64;
        self.store
            .put(location, PutPayload::from(Bytes::from(encoded)))
            .await
            .map_err(self.err("writing", rel))?;
        Ok(size)
    }
}

/// Bytes of the FIXED_LEN_BYTE_ARRAY holding a decimal of `precision` digits (Spark's and
/// Hudi's `minBytesForPrecision`).
pub fn decimal_bytes(precision: u8) -> usize {
    let mut n = 1;
    while 2f64.powi(8 * n as i32 - 1) < 10f64.powi(i32::from(precision)) {
        n += 1;
    }
    n
}

/// The Parquet schema of a base file: arrow's, except that decimals are FIXED_LEN_BYTE_ARRAY
/// (as Hudi's and Spark's writers store them, and as the footer's Avro `fixed` decimal says;
/// arrow would pick INT32/INT64 for small precisions, which parquet-avro readers refuse).
pub fn parquet_schema(arrow: &Schema) -> std::result::Result<SchemaDescriptor, String> {
    let converted = ArrowSchemaConverter::new()
        .convert(arrow)
        .map_err(|e| e.to_string())?;
    let root = fixed_decimals(converted.root_schema()).map_err(|e| e.to_string())?;
    Ok(SchemaDescriptor::new(Arc::new(root)))
}

fn fixed_decimals(t: &SchemaType) -> parquet::errors::Result<SchemaType> {
    let info = t.get_basic_info();
    match t {
        SchemaType::GroupType { fields, .. } => {
            let fields = fields
                .iter()
                .map(|f| fixed_decimals(f).map(Arc::new))
                .collect::<parquet::errors::Result<Vec<_>>>()?;
            let mut b = SchemaType::group_type_builder(info.name())
                .with_fields(fields)
                .with_logical_type(info.logical_type_ref().cloned())
                .with_converted_type(info.converted_type())
                .with_id(info.has_id().then(|| info.id()));
            if info.has_repetition() {
                b = b.with_repetition(info.repetition());
            }
            b.build()
        }
        SchemaType::PrimitiveType {
            physical_type,
            precision,
            scale,
            ..
        } if info.converted_type() == ConvertedType::DECIMAL
            && *physical_type != PhysicalType::FIXED_LEN_BYTE_ARRAY =>
        {
            SchemaType::primitive_type_builder(info.name(), PhysicalType::FIXED_LEN_BYTE_ARRAY)
                .with_repetition(info.repetition())
                .with_logical_type(info.logical_type_ref().cloned())
                .with_converted_type(ConvertedType::DECIMAL)
                .with_precision(*precision)
                .with_scale(*scale)
                .with_length(decimal_bytes(*precision as u8) as i32)
                .with_id(info.has_id().then(|| info.id()))
                .build()
        }
        other => Ok(other.clone()),
    }
}

/// What a base file's footer says.
#[derive(Debug, Clone)]
pub struct Footer {
    /// Rows.
    pub rows: u64,
    /// Least record key.
    pub min_key: Option<String>,
    /// Greatest record key.
    pub max_key: Option<String>,
    /// Partition path (cdc-lake's footer entry).
    pub partition: Option<String>,
    /// Numeric range of a single integer key (cdc-lake's footer entry).
    pub int_range: Option<(i64, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_file_names() {
        let n = BaseFileName::parse(
            "b271b5f8-1038-4a3d-8b1c-1b0a1a3b3b3b-0_0-13-35_20240402123035233.parquet",
        )
        .unwrap();
        assert_eq!(n.file_id, "b271b5f8-1038-4a3d-8b1c-1b0a1a3b3b3b-0");
        assert_eq!(n.write_token, "0-13-35");
        assert_eq!(n.instant, "20240402123035233");
        assert_eq!(
            n.name(),
            "b271b5f8-1038-4a3d-8b1c-1b0a1a3b3b3b-0_0-13-35_20240402123035233.parquet"
        );
        assert!(BaseFileName::parse(".hoodie_partition_metadata").is_none());
        assert!(BaseFileName::parse("x_1.parquet").is_none());
    }
}
