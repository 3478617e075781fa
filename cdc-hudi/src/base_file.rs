//! Writing one base file of an instant: the rows a file group carries over (their meta
//! columns kept, the file name updated) and its updated and inserted rows with new meta
//! columns, with the footer Hudi's readers and the next commit use (Avro schema, record-key
//! range, partition path) and the write stat of the commit metadata.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_buffer::{Buffer, OffsetBuffer};
use arrow_schema::SchemaRef;
use cdc_core::model::TableId;
use cdc_core::sink::upsert::{carry_over, ChangedKeys};
use object_store::path::Path;

use crate::error::{HudiSinkError, Result};
use crate::files::{self, BaseFileName, TableStore};
use crate::index::int_key_range;
use crate::instant::InFlight;
use crate::schema::{FILE_NAME, META_COLUMNS, RECORD_KEY};
use crate::table::FileGroup;
use crate::timeline::{RuntimeStats, WriteStat};

/// What every base-file task of one instant shares.
pub(crate) struct Ctx {
    pub table: TableId,
    pub store: TableStore,
    pub keys: Arc<ChangedKeys>,
    /// The table's logical schema after the instant.
    pub merged: SchemaRef,
    /// Its stored data columns.
    pub stored: SchemaRef,
    /// Meta columns and stored data columns.
    pub file_schema: SchemaRef,
    pub key_columns: Vec<String>,
    pub partition_fields: Vec<String>,
    pub hive_style: bool,
    /// The Avro schema of the base files' footers.
    pub avro_file: String,
    /// The key column when the key is a single integer column.
    pub int_key: Option<String>,
    pub instant: String,
    /// Opens once `instant` is in flight.
    pub in_flight: InFlight,
}

/// One base file this instant writes.
pub(crate) struct Output {
    pub existing: Option<FileGroup>,
    pub file_id: String,
    pub partition: String,
    pub dir: Path,
    /// Rows carried over (base-file schema).
    pub kept: Option<RecordBatch>,
    /// Updated and inserted rows (stored data columns) and their record keys.
    pub new_rows: Option<(RecordBatch, StringArray)>,
    pub num_updates: usize,
    pub num_inserts: usize,
    pub deleted: u64,
}

impl Output {
    /// A new file group of `partition` in `dir`.
    pub fn new_group(partition: &str, dir: &Path) -> Self {
        Output {
            existing: None,
            file_id: format!("{}-0", uuid::Uuid::new_v4()),
            partition: partition.to_string(),
            dir: dir.clone(),
            kept: None,
            new_rows: None,
            num_updates: 0,
            num_inserts: 0,
            deleted: 0,
        }
    }

    /// The next base file of `group`, carrying `kept` over.
    pub fn next_of(group: FileGroup, kept: RecordBatch) -> Self {
        Output {
            file_id: group.file_id.clone(),
            partition: group.partition.clone(),
            dir: group.dir.clone(),
            existing: Some(group),
            kept: Some(kept),
            new_rows: None,
            num_updates: 0,
            num_inserts: 0,
            deleted: 0,
        }
    }

    /// Bytes the carried-over rows will roughly take.
    pub fn estimated_size(&self, avg: u64) -> u64 {
        let kept = self.kept.as_ref().map_or(0, |k| k.num_rows() as u64);
        let carried = match &self.existing {
            Some(g) if g.rows > 0 => g.size * kept / g.rows,
            _ => kept * avg,
        };
        carried + (self.num_updates + self.num_inserts) as u64 * avg
    }
}

/// Rows `rows` of `batch` (a slice, no copy, when they are consecutive).
pub(crate) fn take(batch: &RecordBatch, rows: &[usize]) -> cdc_core::Result<RecordBatch> {
    if let Some((offset, len)) = consecutive(rows) {
        return Ok(batch.slice(offset, len));
    }
    arrow_select::take::take_record_batch(batch, &indices(rows))
        .map_err(|e| cdc_core::Error::arrow("taking rows", e))
}

/// Rows `rows` of `batch` and of its record keys `keys`.
pub(crate) fn take_keyed(
    batch: &RecordBatch,
    keys: &StringArray,
    rows: &[usize],
) -> cdc_core::Result<(RecordBatch, StringArray)> {
    if let Some((offset, len)) = consecutive(rows) {
        return Ok((batch.slice(offset, len), keys.slice(offset, len)));
    }
    let indices = indices(rows);
    let taken_rows = arrow_select::take::take_record_batch(batch, &indices)
        .map_err(|e| cdc_core::Error::arrow("taking rows", e))?;
    let taken_keys = arrow_select::take::take(keys, &indices, None)
        .map_err(|e| cdc_core::Error::arrow("taking record keys", e))?;
    let taken_keys = taken_keys.as_any().downcast_ref::<StringArray>();
    Ok((taken_rows, taken_keys.expect("utf8 keys").clone()))
}

fn indices(rows: &[usize]) -> UInt32Array {
    UInt32Array::from_iter_values(rows.iter().map(|&r| r as u32))
}

/// The first row and count of `rows` when they are consecutive and ascending.
fn consecutive(rows: &[usize]) -> Option<(usize, usize)> {
    let first = *rows.first()?;
    let ascending = rows.windows(2).all(|w| w[1] == w[0] + 1);
    ascending.then_some((first, rows.len()))
}

/// Rows of a base file (as read, its schema possibly older) in the instant's base-file schema:
/// meta columns as they were, data columns carried over to the current stored schema.
pub(crate) fn carry_meta(ctx: &Ctx, path: &str, rows: &RecordBatch) -> Result<RecordBatch> {
    let err = |message: String| HudiSinkError::BaseFile {
        table: ctx.table.to_string(),
        path: path.to_string(),
        message,
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(ctx.file_schema.fields().len());
    for m in META_COLUMNS {
        let col = rows
            .column_by_name(m)
            .ok_or_else(|| err(format!("meta column `{m}` is missing")))?;
        columns.push(
            arrow_cast::cast(col, &arrow_schema::DataType::Utf8).map_err(|e| err(e.to_string()))?,
        );
    }
    let data = carry_over(&ctx.table, rows, &ctx.stored, &ctx.merged)?;
    columns.extend(data.columns().iter().cloned());
    RecordBatch::try_new_with_options(
        ctx.file_schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )
    .map_err(|e| err(e.to_string()))
}

/// Writes one base file (`idx` makes its write token unique within the instant).
pub(crate) async fn write_output(
    ctx: Arc<Ctx>,
    idx: usize,
    o: Output,
) -> Result<(WriteStat, FileGroup)> {
    let (instant, file_schema) = (&ctx.instant, &ctx.file_schema);
    let name = BaseFileName {
        file_id: o.file_id.clone(),
        write_token: format!("{idx}-0-0"),
        instant: instant.clone(),
    }
    .name();
    let path = files::join(&o.partition, &name);
    let location = o.dir.clone().join(name.as_str());
    let err = |message: String| HudiSinkError::BaseFile {
        table: ctx.table.to_string(),
        path: path.clone(),
        message,
    };
    let mut parts: Vec<RecordBatch> = Vec::new();
    if let Some(kept) = &o.kept {
        let file_col = file_schema.index_of(FILE_NAME).expect("meta column");
        let mut columns = kept.columns().to_vec();
        columns[file_col] = Arc::new(repeated(&name, kept.num_rows()));
        parts.push(
            RecordBatch::try_new(file_schema.clone(), columns).map_err(|e| err(e.to_string()))?,
        );
    }
    if let Some((data, keys)) = &o.new_rows {
        let m = data.num_rows();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(repeated(instant, m)),
            Arc::new(sequence_numbers(instant, idx, m)),
            Arc::new(keys.clone()),
            Arc::new(repeated(&o.partition, m)),
            Arc::new(repeated(&name, m)),
        ];
        columns.extend(data.columns().iter().cloned());
        parts.push(
            RecordBatch::try_new(file_schema.clone(), columns).map_err(|e| err(e.to_string()))?,
        );
    }
    if parts.is_empty() {
        // A file group whose every row was deleted still gets its (empty) next version.
        parts.push(RecordBatch::new_empty(file_schema.clone()));
    }
    // Written part by part: concatenating first copied every column of the file once more.
    let rows = parts.iter().map(|p| p.num_rows() as u64).sum();
    let (min_key, max_key) = record_key_range(&parts);
    let int_range = ctx.int_key.as_deref().and_then(|k| {
        let ranges = parts
            .iter()
            .map(|p| p.column_by_name(k).and_then(int_key_range));
        ranges
            .flatten()
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    });
    let mut footer = vec![
        (files::AVRO_SCHEMA.to_string(), ctx.avro_file.clone()),
        ("writer.model.name".to_string(), "avro".to_string()),
    ];
    if let (Some(a), Some(b)) = (&min_key, &max_key) {
        footer.push((files::MIN_RECORD_KEY.to_string(), a.clone()));
        footer.push((files::MAX_RECORD_KEY.to_string(), b.clone()));
    }
    if let Some((a, b)) = int_range {
        footer.push((files::INT_KEY_RANGE.to_string(), format!("{a},{b}")));
    }
    footer.push((files::PARTITION_PATH_KEY.to_string(), o.partition.clone()));
    ctx.in_flight.wait(&ctx.table.to_string(), instant).await?;
    let started = std::time::Instant::now();
    let size = ctx
        .store
        .write_base_file(&location, &path, parts, footer)
        .await?;
    let millis = started.elapsed().as_millis() as i64;
    let stat = write_stat(&o, &path, rows, size, millis);
    let group = FileGroup {
        partition: o.partition,
        dir: o.dir,
        file_id: o.file_id,
        file_name: name,
        instant: instant.clone(),
        size,
        rows,
        min_key,
        max_key,
        int_range,
    };
    Ok((stat, group))
}

/// `value` in each of `rows` rows (a meta column of one value per file).
fn repeated(value: &str, rows: usize) -> StringArray {
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(value.len(), rows));
    let values = Buffer::from(value.as_bytes().repeat(rows));
    StringArray::new(offsets, values, None)
}

/// `_hoodie_commit_seqno` of `rows` new rows: `<instant>_<file index>_<row>`.
fn sequence_numbers(instant: &str, idx: usize, rows: usize) -> StringArray {
    use std::fmt::Write;
    let prefix = format!("{instant}_{idx}_");
    let mut seqno = StringBuilder::with_capacity(rows, rows * (prefix.len() + 7));
    for r in 0..rows {
        let _ = write!(seqno, "{prefix}{r}");
        seqno.append_value("");
    }
    seqno.finish()
}

/// The least and greatest record key of a base file's rows.
fn record_key_range(parts: &[RecordBatch]) -> (Option<String>, Option<String>) {
    let mut range: Option<(&str, &str)> = None;
    for part in parts {
        let keys = part.column_by_name(RECORD_KEY).expect("meta column");
        let keys = keys
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("utf8 meta column");
        for k in keys.iter().flatten() {
            range = Some(match range {
                None => (k, k),
                Some((lo, hi)) => (lo.min(k), hi.max(k)),
            });
        }
    }
    match range {
        Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
        None => (None, None),
    }
}

/// The write stat of one base file in the commit metadata.
fn write_stat(o: &Output, path: &str, rows: u64, size: u64, millis: i64) -> WriteStat {
    WriteStat {
        file_id: o.file_id.clone(),
        path: Some(path.to_string()),
        cdc_stats: None,
        prev_commit: o
            .existing
            .as_ref()
            .map_or_else(|| "null".to_string(), |g| g.instant.clone()),
        num_writes: rows as i64,
        num_deletes: o.deleted as i64,
        num_update_writes: o.num_updates as i64,
        num_inserts: o.num_inserts as i64,
        total_write_bytes: size as i64,
        total_write_errors: 0,
        temp_path: None,
        partition_path: Some(o.partition.clone()),
        file_size_in_bytes: size as i64,
        runtime_stats: Some(RuntimeStats {
            total_scan_time: 0,
            total_upsert_time: if o.existing.is_some() { millis } else { 0 },
            total_create_time: if o.existing.is_some() { 0 } else { millis },
        }),
        ..WriteStat::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_columns_of_one_value_and_sequence_numbers() {
        let files = repeated("f-1.parquet", 3);
        assert_eq!(files, StringArray::from(vec!["f-1.parquet"; 3]));
        assert_eq!(repeated("", 2), StringArray::from(vec![""; 2]));
        assert_eq!(repeated("x", 0).len(), 0);
        let seqno = sequence_numbers("20261205", 4, 3);
        assert_eq!(
            seqno,
            StringArray::from(vec!["20261205_4_0", "20261205_4_1", "20261205_4_2"])
        );
        let batch =
            RecordBatch::try_from_iter([("k", Arc::new(seqno.clone()) as ArrayRef)]).unwrap();
        let keys = StringArray::from(vec!["a", "b", "c"]);
        let (rows, taken) = take_keyed(&batch, &keys, &[1, 2]).unwrap();
        assert_eq!(taken, StringArray::from(vec!["b", "c"]));
        assert_eq!(rows.column(0).as_ref(), &seqno.slice(1, 2) as &dyn Array);
        let (rows, taken) = take_keyed(&batch, &keys, &[2, 0]).unwrap();
        assert_eq!(taken, StringArray::from(vec!["c", "a"]));
        assert_eq!(rows.num_rows(), 2);
    }
}
