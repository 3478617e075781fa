//! The upsert benchmark of every format, from one generator: a base table of `rows` rows of
//! `bench.accounts` in files of [`FILE_ROWS`] rows (one commit each), and one change batch of
//! `changes` keys (70 % updates and 10 % deletes of existing keys, 20 % inserts; keys uniform,
//! skewed to recent rows, or recent only: [`cdc_core::testing::bench`]) stored once as
//! `changes.parquet` (an `op` column: `u` upsert, `d` delete) for every writer, peers included.
//!
//! Each mode runs in its own process on its own copy of the base table, so peak memory is its
//! own: the sink (`cdc`, `cow`), the peer a user would pick instead (delta-rs `MERGE`;
//! pyiceberg in `examples/bench/pyiceberg_upsert.py`), and the floors, the least work any
//! writer must do without a table format ([`floor`]).

pub mod delta;
pub mod floor;
pub mod hudi;
pub mod iceberg;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::Warehouse;
use cdc_core::testing::bench::{change_keys, cpu_seconds, peak_rss_mib, Accounts};

/// Errors of the benchmark.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Rows per base file (and per commit of the base table).
pub const FILE_ROWS: usize = 100_000;

/// The table formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Delta Lake.
    Delta,
    /// Apache Iceberg.
    Iceberg,
    /// Apache Hudi.
    Hudi,
}

impl std::str::FromStr for Format {
    type Err = BoxError;
    fn from_str(s: &str) -> Result<Self, BoxError> {
        Ok(match s {
            "delta" => Format::Delta,
            "iceberg" => Format::Iceberg,
            "hudi" => Format::Hudi,
            other => return Err(format!("unknown format `{other}`").into()),
        })
    }
}

impl Format {
    /// The benchmark table of this format (Hudi stores `updated_at` with a zone).
    pub fn accounts(self) -> Accounts {
        match self {
            Format::Hudi => Accounts::new(Some("UTC")),
            _ => Accounts::new(None),
        }
    }

    /// The warehouse at `dir` in `mode` (`cow`: copy-on-write; else the default).
    pub fn warehouse(self, dir: &str, mode: &str) -> Result<Box<dyn Warehouse>, BoxError> {
        let cow = mode == "cow";
        Ok(match self {
            Format::Delta => Box::new(delta::warehouse(dir, cow)?),
            Format::Iceberg => Box::new(iceberg::warehouse(dir, cow)?),
            Format::Hudi => Box::new(hudi::warehouse(dir)?),
        })
    }

    /// The data files of the table at `dir`, each with its row count.
    pub async fn data_files(self, dir: &str) -> Result<Vec<String>, BoxError> {
        match self {
            Format::Delta => delta::data_files(dir).await,
            Format::Iceberg => iceberg::data_files(dir).await,
            Format::Hudi => hudi::data_files(dir).await,
        }
    }

    /// Count, keys and sums of the table at `dir`, read by the format's own reader.
    pub async fn digest(self, dir: &str) -> Result<serde_json::Value, BoxError> {
        match self {
            Format::Delta => delta::digest(dir).await,
            Format::Iceberg => iceberg::digest(dir).await,
            Format::Hudi => hudi::digest(dir).await,
        }
    }
}

/// The benchmark table's id.
pub fn table_id() -> TableId {
    Accounts::table()
}

/// Builds the base table at `<dir>/base` and writes the change batch to
/// `<dir>/changes.parquet`.
pub async fn setup(
    format: Format,
    dir: &str,
    rows: i64,
    changes: i64,
    distribution: &str,
) -> Result<serde_json::Value, BoxError> {
    let accounts = format.accounts();
    let warehouse = format.warehouse(&format!("{dir}/base"), "cdc")?;
    let mut sink = warehouse.open(&table_id()).await?;
    let start = Instant::now();
    for (offset, first) in (0..rows).step_by(FILE_ROWS).enumerate() {
        let ids: Vec<i64> = (first..(first + FILE_ROWS as i64).min(rows)).collect();
        sink.apply(&accounts.change_set(accounts.rows(&ids, 0), &[], offset as i64))
            .await?;
    }
    let keys = change_keys(rows, changes, distribution.parse()?);
    let upserted: Vec<i64> = keys.updates.iter().chain(&keys.inserts).copied().collect();
    let up = accounts.rows(&upserted, 1);
    let del = accounts.rows(&keys.deletes, 0);
    let op: Vec<&str> = std::iter::repeat_n("u", up.num_rows())
        .chain(std::iter::repeat_n("d", del.num_rows()))
        .collect();
    let both = arrow_select::concat::concat_batches(&accounts.schema, [&up, &del])?;
    let mut fields: Vec<Field> = both
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("op", DataType::Utf8, false));
    let mut columns = both.columns().to_vec();
    columns.push(Arc::new(StringArray::from(op)));
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    write_parquet(&Path::new(dir).join("changes.parquet"), &out)?;
    Ok(serde_json::json!({"setup_seconds": start.elapsed().as_secs_f64()}))
}

/// The change batch of `<setup dir>/changes.parquet` as the sinks take it.
pub fn load_changes(format: Format, setup_dir: &str) -> Result<ChangeSet, BoxError> {
    let accounts = format.accounts();
    let all = read_parquet(&Path::new(setup_dir).join("changes.parquet"))?;
    let op = all
        .column_by_name("op")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or("op column")?;
    let is = |v: &str| arrow_array::BooleanArray::from_iter(op.iter().map(|o| Some(o == Some(v))));
    let data = all.project(&(0..accounts.schema.fields().len()).collect::<Vec<_>>())?;
    let data = RecordBatch::try_new(accounts.schema.clone(), data.columns().to_vec())?;
    let upserts = arrow_select::filter::filter_record_batch(&data, &is("u"))?;
    let deletes = arrow_select::filter::filter_record_batch(&data, &is("d"))?;
    Ok(accounts.change_set(upserts, &ids(&deletes), 1_000_000))
}

/// Applies the change batch through the format's sink.
pub async fn run_sink(
    format: Format,
    mode: &str,
    table_dir: &str,
    changes: &ChangeSet,
) -> Result<serde_json::Value, BoxError> {
    let warehouse = format.warehouse(table_dir, mode)?;
    let mut sink = warehouse.open(&table_id()).await?;
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let outcome = sink.apply(changes).await?;
    Ok(serde_json::json!({
        "seconds": start.elapsed().as_secs_f64(),
        "cpu_seconds": cpu_seconds() - cpu,
        "outcome": format!("{outcome:?}"),
    }))
}

/// The `id` values of a batch.
pub fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column_by_name("id")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .map(|a| a.values().to_vec())
        .unwrap_or_default()
}

/// Writes `batch` as one Snappy Parquet file (as the table formats compress).
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), BoxError> {
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path)?,
        batch.schema(),
        Some(snappy()),
    )?;
    w.write(batch)?;
    w.close()?;
    Ok(())
}

/// Snappy compression.
pub fn snappy() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build()
}

/// Reads a Parquet file whole.
pub fn read_parquet(path: &Path) -> Result<RecordBatch, BoxError> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path)?,
    )?
    .build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let schema = batches.first().map(|b| b.schema()).ok_or("empty file")?;
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

/// The report of one mode, with the process's peak memory.
pub fn report(mut result: serde_json::Value, format: Format, mode: &str) -> serde_json::Value {
    result["format"] = format!("{format:?}").to_lowercase().into();
    result["mode"] = mode.into();
    result["peak_rss_mib"] = peak_rss_mib().into();
    result
}

/// Count, distinct keys, sums and non-null names of `batches` (a full read that took `secs`).
pub fn digest_of(batches: &[RecordBatch], secs: f64) -> Result<serde_json::Value, BoxError> {
    let (mut n, mut id_sum, mut amount, mut names) = (0u64, 0i64, 0f64, 0usize);
    let mut keys = std::collections::HashSet::new();
    for b in batches {
        n += b.num_rows() as u64;
        let id = ids(b);
        id_sum += id.iter().sum::<i64>();
        keys.extend(id);
        let a = b
            .column_by_name("amount")
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::Float64Array>())
            .ok_or("amount column")?;
        amount += a.iter().flatten().sum::<f64>();
        names += b
            .column_by_name("name")
            .map_or(0, |c| c.len() - c.null_count());
    }
    Ok(serde_json::json!({
        "scan_seconds": secs, "rows": n.to_string(), "keys": keys.len().to_string(),
        "id_sum": id_sum.to_string(), "amount_sum": format!("{amount:.2}"),
        "names": names.to_string(),
    }))
}
