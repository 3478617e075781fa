//! Upsert benchmark for Iceberg: one batch of CDC changes (70 % updates and 10 % deletes of
//! existing keys, 20 % inserts of new keys; keys uniform, skewed to recent rows, or recent
//! only: `cdc_core::testing::bench`) into a large table, applied by
//!
//! - `cdc`: `IcebergSink::apply` (merge-on-read, position deletes: one snapshot);
//! - `cow`: the same sink in copy-on-write mode;
//! - `floor`: the least work any merge-on-read writer must do, without a table format: read
//!   the key column of every data file whose key range holds a changed key, find the changed
//!   rows, write the position-delete Parquet file and the new rows' Parquet file (arrow-rs,
//!   Snappy), no manifests, no commit;
//!
//! and (in `tests/readers/pyiceberg_upsert.py`) by pyiceberg's `Table.upsert` + `Table.delete`
//! of the same rows, the peer. Each mode runs in its own process on its own table, built the
//! same way (files of 100 k rows, one snapshot each); after `cdc`/`cow` a full iceberg-rust scan
//! of the result is timed (read-after-write) and its digest printed. Peak memory is `VmHWM`.
//!
//! ```text
//! cargo run --release -p cdc-iceberg --example iceberg_bench -- <cdc|cow|floor|setup> <dir> [rows] [changes] [uniform|skewed|recent]
//! ```
//!
//! `setup` only builds the table and writes the change batch to `<dir>/changes.parquet` (an `op`
//! column: `u` upsert, `d` delete) for the pyiceberg peer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cdc_core::model::TableId;
use cdc_core::sink::TableSink;
use cdc_core::testing::bench::{change_keys, peak_rss_mib, Accounts, KeyDistribution};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, WriteMode};
use futures::TryStreamExt;
use iceberg::spec::TableMetadata;
use iceberg::{NamespaceIdent, TableIdent};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const FILE_ROWS: usize = 100_000;

fn accounts() -> Accounts {
    Accounts::new(None)
}

fn table_id() -> TableId {
    Accounts::table()
}

fn schema() -> SchemaRef {
    accounts().schema
}

fn rows(ids: &[i64], version: i64) -> RecordBatch {
    accounts().rows(ids, version)
}

/// The change batch: (updated ids, deleted ids, inserted ids), the same keys as every format's
/// benchmark draws ([`change_keys`]).
fn changes(
    table_rows: usize,
    changes: usize,
    distribution: KeyDistribution,
) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let keys = change_keys(table_rows as i64, changes as i64, distribution);
    (keys.updates, keys.deletes, keys.inserts)
}

fn warehouse(dir: &str, mode: WriteMode) -> Result<IcebergWarehouse, BoxError> {
    let config = IcebergSinkConfig {
        write_mode: mode,
        ..IcebergSinkConfig::default()
    };
    Ok(IcebergWarehouse::new(&format!("{dir}/wh"), config)?)
}

/// Builds the table: `rows` rows in files of [`FILE_ROWS`], one snapshot each.
async fn setup(
    dir: &str,
    table_rows: usize,
    mode: WriteMode,
) -> Result<IcebergWarehouse, BoxError> {
    let wh = warehouse(dir, mode)?;
    let mut sink = wh.sink(&table_id());
    let start = Instant::now();
    for (n, first) in (0..table_rows).step_by(FILE_ROWS).enumerate() {
        let ids: Vec<i64> = (first as i64..(first + FILE_ROWS).min(table_rows) as i64).collect();
        sink.apply(&accounts().change_set(rows(&ids, 0), &[], n as i64))
            .await?;
    }
    eprintln!(
        "setup: {table_rows} rows in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(wh)
}

/// The change batch as one Parquet file with an `op` column, for the pyiceberg peer.
fn write_changes_parquet(
    path: &str,
    table_rows: usize,
    n: usize,
    distribution: KeyDistribution,
) -> Result<(), BoxError> {
    let (updates, deletes, inserts) = changes(table_rows, n, distribution);
    let upserted: Vec<i64> = updates.iter().chain(&inserts).copied().collect();
    let up = rows(&upserted, 1);
    let del = rows(&deletes, 0);
    let batch = arrow_select::concat::concat_batches(&schema(), [&up, &del])?;
    let op: Vec<&str> = std::iter::repeat_n("u", up.num_rows())
        .chain(std::iter::repeat_n("d", del.num_rows()))
        .collect();
    let mut fields: Vec<Field> = schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("op", DataType::Utf8, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(op)));
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path)?, out.schema(), None)?;
    writer.write(&out)?;
    writer.close()?;
    Ok(())
}

async fn metadata(wh: &IcebergWarehouse) -> Result<(String, TableMetadata), BoxError> {
    let location = wh.metadata_location(&table_id()).await?.ok_or("no table")?;
    let metadata = TableMetadata::read_from(wh.file_io(), &location).await?;
    Ok((location, metadata))
}

/// Full iceberg-rust scan: (seconds, rows, sum(id), sum(amount)).
async fn scan(wh: &IcebergWarehouse) -> Result<(f64, usize, i64, f64), BoxError> {
    let (location, metadata) = metadata(wh).await?;
    let table = iceberg::table::Table::builder()
        .metadata(metadata)
        .metadata_location(location)
        .identifier(TableIdent::new(
            NamespaceIdent::new("bench".into()),
            "accounts".into(),
        ))
        .file_io(wh.file_io().clone())
        .runtime(iceberg::Runtime::current())
        .readonly(true)
        .build()?;
    let start = Instant::now();
    let batches: Vec<RecordBatch> = table
        .scan()
        .select_all()
        .build()?
        .to_arrow()
        .await?
        .try_collect()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    let (mut n, mut ids, mut amount) = (0, 0i64, 0f64);
    for b in &batches {
        n += b.num_rows();
        let id = b
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or("id column")?;
        ids += id.iter().flatten().sum::<i64>();
        let a = b
            .column_by_name("amount")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .ok_or("amount column")?;
        amount += a.iter().flatten().sum::<f64>();
    }
    Ok((secs, n, ids, amount))
}

/// The floor: key column of candidate files, changed positions, delete file and new rows.
async fn floor(
    wh: &IcebergWarehouse,
    table_rows: usize,
    n: usize,
    distribution: KeyDistribution,
) -> Result<f64, BoxError> {
    let (_, metadata) = metadata(wh).await?;
    let (updates, deletes, inserts) = changes(table_rows, n, distribution);
    let start = Instant::now();
    // Every data file path (the floor may use the manifests' file list; it is not timed apart).
    let data_dir = format!("{}/data", metadata.location());
    let files: Vec<String> = std::fs::read_dir(&data_dir)?
        .map(|e| e.map(|e| e.path().display().to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let changed: HashSet<i64> = updates.iter().chain(&deletes).copied().collect();
    let (min, max) = (
        *changed.iter().min().ok_or("no keys")?,
        *changed.iter().max().ok_or("no keys")?,
    );
    let mut paths = Vec::new();
    let mut positions = Vec::new();
    for path in files.iter().filter(|p| p.ends_with(".parquet")) {
        let file = std::fs::File::open(path)?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
        let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [0]);
        let mut pos = 0i64;
        for batch in builder.with_projection(mask).build()? {
            let batch = batch?;
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or("id column")?;
            for i in 0..ids.len() {
                let k = ids.value(i);
                if k >= min && k <= max && changed.contains(&k) {
                    paths.push(path.clone());
                    positions.push(pos + i as i64);
                }
            }
            pos += ids.len() as i64;
        }
    }
    let out = format!("{}/floor", metadata.location());
    std::fs::create_dir_all(&out)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let deletes_batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("file_path", DataType::Utf8, false),
            Field::new("pos", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from(paths)),
            Arc::new(Int64Array::from(positions)),
        ],
    )?;
    let upserted: Vec<i64> = updates.iter().chain(&inserts).copied().collect();
    for (name, batch) in [("deletes", deletes_batch), ("data", rows(&upserted, 1))] {
        let file = std::fs::File::create(format!("{out}/{name}.parquet"))?;
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props.clone()))?;
        w.write(&batch)?;
        w.close()?;
    }
    Ok(start.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: iceberg_bench <cdc|cow|floor|setup> <dir> [rows] [changes] [uniform|skewed|recent]";
    let mode = args.get(1).ok_or(usage)?.clone();
    let dir = args.get(2).ok_or(usage)?.clone();
    let table_rows: usize = args.get(3).map_or(Ok(10_000_000), |s| s.parse())?;
    let n: usize = args.get(4).map_or(Ok(1_000_000), |s| s.parse())?;
    let distribution: KeyDistribution = args.get(5).map_or("uniform", |s| s.as_str()).parse()?;
    let write_mode = if mode == "cow" {
        WriteMode::CopyOnWrite
    } else {
        WriteMode::PositionDeletes
    };
    let wh = setup(&dir, table_rows, write_mode).await?;
    let secs = match mode.as_str() {
        "setup" => {
            write_changes_parquet(
                &format!("{dir}/changes.parquet"),
                table_rows,
                n,
                distribution,
            )?;
            println!(
                "{{\"mode\":\"setup\",\"catalog\":\"{}\",\"peak_rss_mib\":{:.0}}}",
                wh.catalog_path(),
                peak_rss_mib()
            );
            return Ok(());
        }
        "floor" => floor(&wh, table_rows, n, distribution).await?,
        "cdc" | "cow" => {
            let (updates, deletes, inserts) = changes(table_rows, n, distribution);
            let upserted: Vec<i64> = updates.iter().chain(&inserts).copied().collect();
            let set = accounts().change_set(rows(&upserted, 1), &deletes, 1_000_000);
            let mut sink = wh.sink(&table_id());
            let start = Instant::now();
            sink.apply(&set).await?;
            start.elapsed().as_secs_f64()
        }
        other => return Err(format!("unknown mode `{other}`; {usage}").into()),
    };
    let rss = peak_rss_mib();
    let scan_json = if mode == "floor" {
        String::new()
    } else {
        let (scan_secs, rows_after, ids, amount) = scan(&wh).await?;
        format!(
            ",\"scan_s\":{scan_secs:.3},\"rows_after\":{rows_after},\"sum_id\":{ids},\"sum_amount\":{amount:.2}"
        )
    };
    println!(
        "{{\"mode\":\"{mode}\",\"rows\":{table_rows},\"changes\":{n},\"apply_s\":{secs:.3},\"peak_rss_mib\":{rss:.0}{scan_json}}}"
    );
    Ok(())
}
