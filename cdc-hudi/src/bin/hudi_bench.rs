//! Upsert benchmark for Hudi (feature `bench`): a batch of CDC changes (70 % updates, 20 %
//! inserts, 10 % deletes) into a large copy-on-write table, applied by cdc-hudi and by the
//! floor: rewriting only the touched base files' rows with arrow-rs/parquet directly, without
//! any table format. Each mode runs in its own process (so peak memory is its own) on its own
//! copy of the same base table; `cdc-hudi/bench/hudi_upsert.sh` drives it.
//!
//! ```text
//! hudi_bench setup <dir> <rows> <changes> <uniform|skewed|recent>
//! hudi_bench <cdc|floor> <table dir> <setup dir>
//! ```
//!
//! File groups are sized to about 100 000 rows (like the Delta benchmark's files), so that
//! pruning by key range can matter; Hudi's default 120 MB groups would hold millions of rows.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{BooleanArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::TableSink;
use cdc_core::testing::bench::{change_keys, peak_rss_mib, Accounts, ChangeKeys};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CHUNK_ROWS: usize = 100_000;

fn accounts() -> Accounts {
    Accounts::new(Some("UTC"))
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

fn config() -> HudiSinkConfig {
    HudiSinkConfig {
        max_file_size: 6 << 20,
        small_file_limit: 5 << 20,
        record_size_estimate: 60,
        commits_retained: 0,
        ..HudiSinkConfig::default()
    }
}

fn write_parquet(path: &std::path::Path, batch: &RecordBatch) -> Result<(), BoxError> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path)?,
        batch.schema(),
        Some(props),
    )?;
    w.write(batch)?;
    w.close()?;
    Ok(())
}

fn read_parquet(path: &std::path::Path) -> Result<RecordBatch, BoxError> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path)?,
    )?
    .build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let schema = batches.first().map(|b| b.schema()).ok_or("empty file")?;
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

async fn setup(dir: &str, n: i64, changes: i64, dist: &str) -> Result<(), BoxError> {
    let wh = HudiWarehouse::new(&format!("{dir}/base"), config())?;
    let mut sink = wh.sink(&table_id());
    let start = Instant::now();
    for (offset, chunk) in (0..n).collect::<Vec<_>>().chunks(CHUNK_ROWS).enumerate() {
        sink.apply(&accounts().change_set(rows(chunk, 0), &[], offset as i64))
            .await?;
    }
    let groups = sink.file_groups().await?;
    eprintln!(
        "base table of {n} rows in {} file groups in {:.1}s",
        groups.len(),
        start.elapsed().as_secs_f64()
    );

    // Distinct existing keys for updates and deletes, new keys for inserts.
    let ChangeKeys {
        updates,
        deletes,
        inserts,
    } = change_keys(n, changes, dist.parse()?);
    let mut upsert_ids = updates;
    upsert_ids.extend(inserts);
    let d = std::path::Path::new(dir);
    write_parquet(&d.join("upserts.parquet"), &rows(&upsert_ids, 1))?;
    let key_schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    write_parquet(
        &d.join("deletes.parquet"),
        &RecordBatch::try_new(key_schema, vec![Arc::new(Int64Array::from(deletes))])?,
    )?;
    Ok(())
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    let col = batch.column_by_name("id").expect("id column");
    col.as_any()
        .downcast_ref::<Int64Array>()
        .expect("int64 ids")
        .values()
        .to_vec()
}

fn load_changes(setup_dir: &str) -> Result<ChangeSet, BoxError> {
    let d = std::path::Path::new(setup_dir);
    let upserts = read_parquet(&d.join("upserts.parquet"))?;
    let upserts = RecordBatch::try_new(schema(), upserts.columns().to_vec())?;
    let deletes = read_parquet(&d.join("deletes.parquet"))?;
    Ok(accounts().change_set(upserts, &ids(&deletes), 1_000_000))
}

async fn run_cdc(table_dir: &str, changes: &ChangeSet) -> Result<serde_json::Value, BoxError> {
    let wh = HudiWarehouse::new(table_dir, config())?;
    let mut sink = wh.sink(&table_id());
    let start = Instant::now();
    let outcome = sink.apply(changes).await?;
    Ok(serde_json::json!({
        "seconds": start.elapsed().as_secs_f64(),
        "outcome": format!("{outcome:?}"),
    }))
}

/// The floor: the base files whose key range (footer) holds a changed key are read, the
/// changed keys dropped, the kept rows written back; the upserts are written as new files.
async fn run_floor(table_dir: &str, changes: &ChangeSet) -> Result<serde_json::Value, BoxError> {
    let wh = HudiWarehouse::new(table_dir, config())?;
    let groups = wh.sink(&table_id()).file_groups().await?;
    let root = std::path::PathBuf::from(wh.table_location(&table_id()));
    let start = Instant::now();
    let mut changed: Vec<i64> = ids(&changes.upserts);
    changed.extend(ids(&changes.deletes));
    changed.sort_unstable();
    let set: HashSet<i64> = changed.iter().copied().collect();
    let out = root.join("floor");
    std::fs::create_dir_all(&out)?;
    let mut touched = 0;
    for g in &groups {
        let Some((lo, hi)) = g.int_range else {
            continue;
        };
        let a = changed.partition_point(|&k| k < lo);
        let b = changed.partition_point(|&k| k <= hi);
        if a == b {
            continue;
        }
        touched += 1;
        let batch = read_parquet(&root.join(g.path()))?;
        let keep: BooleanArray = ids(&batch).iter().map(|k| Some(!set.contains(k))).collect();
        let kept = arrow_select::filter::filter_record_batch(&batch, &keep)?;
        write_parquet(&out.join(&g.file_name), &kept)?;
    }
    for (i, chunk) in (0..changes.upserts.num_rows())
        .step_by(CHUNK_ROWS)
        .enumerate()
    {
        let len = CHUNK_ROWS.min(changes.upserts.num_rows() - chunk);
        write_parquet(
            &out.join(format!("upserts-{i}.parquet")),
            &changes.upserts.slice(chunk, len),
        )?;
    }
    Ok(serde_json::json!({
        "seconds": start.elapsed().as_secs_f64(),
        "files_rewritten": touched,
        "file_groups": groups.len(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: hudi_bench setup <dir> <rows> <changes> <uniform|skewed|recent> | hudi_bench <cdc|floor> <table dir> <setup dir>";
    match args.first().map(String::as_str) {
        Some("setup") if args.len() == 5 => {
            setup(&args[1], args[2].parse()?, args[3].parse()?, &args[4]).await
        }
        Some(mode @ ("cdc" | "floor")) if args.len() == 3 => {
            let changes = load_changes(&args[2])?;
            let mut result = match mode {
                "cdc" => run_cdc(&args[1], &changes).await?,
                _ => run_floor(&args[1], &changes).await?,
            };
            result["mode"] = mode.into();
            result["peak_rss_mib"] = peak_rss_mib().into();
            println!("{result}");
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
