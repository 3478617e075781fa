//! Upsert benchmark for Delta: a batch of CDC changes (70 % updates, 20 % inserts, 10 % deletes)
//! into a large table, applied by cdc-delta (with deletion vectors, the default, and without:
//! `cdc-cow`), by a plain delta-rs MERGE of the same batch (the peer), and by the floor:
//! rewriting only the touched files' rows with arrow-rs/parquet directly, without any table
//! format. Each mode runs in its own process (so peak memory is its own) on its own copy of the
//! same base table; `examples/bench/delta_upsert.sh` drives it. `scan` then times a full read
//! of the written table through DataFusion (deletion vectors make reads pay), and `digest`
//! checks that every mode wrote the same rows.
//!
//! ```text
//! delta_bench setup <dir> <rows> <changes> <uniform|skewed|recent>
//! delta_bench <cdc|cdc-cow|merge|floor> <table dir> <setup dir>
//! delta_bench <scan|digest> <table dir>
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::TableSink;
use cdc_core::testing::bench::{change_keys, cpu_seconds, peak_rss_mib, Accounts, ChangeKeys};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};
use deltalake::datafusion::prelude::SessionContext;

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

fn warehouse(dir: &str) -> Result<DeltaWarehouse, BoxError> {
    Ok(DeltaWarehouse::new(dir, DeltaSinkConfig::default())?)
}

/// cdc-delta without deletion vectors: every touched file is rewritten (copy-on-write).
fn cow_warehouse(dir: &str) -> Result<DeltaWarehouse, BoxError> {
    let config = DeltaSinkConfig {
        deletion_vectors: false,
        ..DeltaSinkConfig::default()
    };
    Ok(DeltaWarehouse::new(dir, config)?)
}

fn write_ipc(path: &std::path::Path, batch: &RecordBatch) -> Result<(), BoxError> {
    let mut w =
        arrow_ipc::writer::FileWriter::try_new(std::fs::File::create(path)?, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    Ok(())
}

fn read_ipc(path: &std::path::Path) -> Result<RecordBatch, BoxError> {
    let r = arrow_ipc::reader::FileReader::try_new(std::fs::File::open(path)?, None)?;
    let schema = r.schema();
    let batches = r.collect::<Result<Vec<_>, _>>()?;
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

async fn setup(dir: &str, n: i64, changes: i64, dist: &str) -> Result<(), BoxError> {
    let base = format!("{dir}/base");
    let wh = warehouse(&base)?;
    let mut sink = wh.sink(&table_id());
    let start = Instant::now();
    for (offset, chunk) in (0..n).collect::<Vec<_>>().chunks(FILE_ROWS).enumerate() {
        sink.apply(&accounts().change_set(rows(chunk, 0), &[], offset as i64))
            .await?;
    }
    eprintln!(
        "base table of {n} rows in {:.1}s",
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
    write_ipc(&d.join("upserts.arrow"), &rows(&upsert_ids, 1))?;
    let key_schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    write_ipc(
        &d.join("deletes.arrow"),
        &RecordBatch::try_new(key_schema, vec![Arc::new(Int64Array::from(deletes))])?,
    )?;
    Ok(())
}

/// The `id` values (first column) of a bench batch.
fn key_values(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("id column is int64")
        .values()
        .to_vec()
}

fn load_changes(setup_dir: &str) -> Result<ChangeSet, BoxError> {
    let d = std::path::Path::new(setup_dir);
    let upserts = read_ipc(&d.join("upserts.arrow"))?;
    let deletes = read_ipc(&d.join("deletes.arrow"))?;
    Ok(accounts().change_set(upserts, &key_values(&deletes), 1_000_000))
}

async fn run_cdc(
    table_dir: &str,
    changes: &ChangeSet,
    deletion_vectors: bool,
) -> Result<serde_json::Value, BoxError> {
    let wh = if deletion_vectors {
        warehouse(table_dir)?
    } else {
        cow_warehouse(table_dir)?
    };
    let mut sink = wh.sink(&table_id());
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let outcome = sink.apply(changes).await?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    // What the commit did to the files: re-added with a deletion vector, removed, added.
    let table = sink.load().await?.ok_or("no table")?;
    let version = table.version().ok_or("no version")?;
    let log = table
        .log_store()
        .read_commit_entry(version)
        .await?
        .ok_or("no commit")?;
    let (mut dvs, mut removed, mut added) = (0, 0, 0);
    for line in log.split(|b| *b == b'\n') {
        let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(add) = action.get("add") {
            if add.get("deletionVector").is_some() {
                dvs += 1;
            } else {
                added += 1;
            }
        } else if action.get("remove").is_some() {
            removed += 1;
        }
    }
    Ok(serde_json::json!({
        "seconds": seconds,
        "cpu_seconds": cpu,
        "outcome": format!("{outcome:?}"),
        "files_with_new_deletion_vector": dvs,
        "files_removed": removed - dvs,
        "files_added": added,
    }))
}

async fn run_merge(table_dir: &str, changes: &ChangeSet) -> Result<serde_json::Value, BoxError> {
    let wh = warehouse(table_dir)?;
    let table = wh.sink(&table_id()).load().await?.ok_or("no table")?;
    // The source: upserts with op 'u', deletes with op 'd' (other columns null).
    let n_del = changes.deletes.num_rows();
    let del_ids = changes.deletes.column(0).clone();
    let deletes = RecordBatch::try_new(
        schema(),
        vec![
            del_ids,
            arrow_array::new_null_array(&DataType::Utf8, n_del),
            arrow_array::new_null_array(&DataType::Float64, n_del),
            arrow_array::new_null_array(&DataType::Timestamp(TimeUnit::Microsecond, None), n_del),
        ],
    )?;
    let with_op = |b: &RecordBatch, op: &str| -> Result<RecordBatch, BoxError> {
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("op", DataType::Utf8, false));
        let mut cols = b.columns().to_vec();
        cols.push(Arc::new(StringArray::from(vec![op; b.num_rows()])));
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
    };
    let source = arrow_select::concat::concat_batches(
        &with_op(&deletes, "d")?.schema(),
        &[with_op(&changes.upserts, "u")?, with_op(&deletes, "d")?],
    )?;
    let ctx = SessionContext::new();
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let df = ctx.read_batch(source)?;
    let (_table, metrics) = table
        .merge(df, "target.id = source.id")
        .with_source_alias("source")
        .with_target_alias("target")
        .when_matched_delete(|d| d.predicate("source.op = 'd'"))?
        .when_matched_update(|u| {
            u.predicate("source.op = 'u'")
                .update("name", "source.name")
                .update("amount", "source.amount")
                .update("updated_at", "source.updated_at")
        })?
        .when_not_matched_insert(|i| {
            i.predicate("source.op = 'u'")
                .set("id", "source.id")
                .set("name", "source.name")
                .set("amount", "source.amount")
                .set("updated_at", "source.updated_at")
        })?
        .await?;
    Ok(serde_json::json!({
        "seconds": start.elapsed().as_secs_f64(),
        "cpu_seconds": cpu_seconds() - cpu,
        "files_removed": metrics.num_target_files_removed,
        "files_added": metrics.num_target_files_added,
    }))
}

/// Copies `input` to `output` without the rows whose key is in `changed`.
fn rewrite_without(
    input: &std::path::Path,
    output: &std::path::Path,
    changed: &HashSet<i64>,
) -> Result<(), BoxError> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(input)?,
    )?
    .build()?;
    let mut writer: Option<parquet::arrow::ArrowWriter<std::fs::File>> = None;
    for batch in reader {
        let batch = batch?;
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ids");
        let keep: BooleanArray = ids
            .iter()
            .map(|id| Some(!id.is_some_and(|id| changed.contains(&id))))
            .collect();
        let kept = arrow_select::filter::filter_record_batch(&batch, &keep)?;
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(output)?,
                kept.schema(),
                Some(snappy()),
            )?),
        };
        w.write(&kept)?;
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(())
}

/// Snappy, as delta-rs writes by default, so the floor compresses like the table formats do.
fn snappy() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build()
}

/// The floor: find the files whose key range holds a changed key (statistics), read them,
/// drop the changed keys, write the kept rows and the upserts as new Parquet files. No table
/// format, no commit.
async fn run_floor(table_dir: &str, changes: &ChangeSet) -> Result<serde_json::Value, BoxError> {
    use deltalake::kernel::scalars::ScalarExt;
    let wh = warehouse(table_dir)?;
    let table = wh.sink(&table_id()).load().await?.ok_or("no table")?;
    let files: Vec<(String, i64, i64)> = table
        .snapshot()?
        .log_data()
        .into_iter()
        .map(|f| {
            let b = |v: Option<serde_json::Value>| {
                v.and_then(|v| v.get("id").and_then(|x| x.as_i64()))
                    .unwrap_or(0)
            };
            (
                f.path().to_string(),
                b(f.min_values().map(|s| s.to_json())),
                b(f.max_values().map(|s| s.to_json())),
            )
        })
        .collect();
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let mut changed = key_values(&changes.upserts);
    changed.extend(key_values(&changes.deletes));
    let set: HashSet<i64> = changed.iter().copied().collect();
    changed.sort_unstable();
    let out_dir = std::path::Path::new(table_dir).join("floor-out");
    std::fs::create_dir_all(&out_dir)?;
    let root = wh
        .table_url(&table_id())
        .to_file_path()
        .map_err(|_| "local table")?;
    // Touched files, rewritten on every core like the table formats do.
    let touched: Vec<(usize, &String)> = files
        .iter()
        .enumerate()
        .filter(|(_, (_, min, max))| {
            let p = changed.partition_point(|k| k < min);
            changed.get(p).is_some_and(|k| k <= max)
        })
        .map(|(i, (path, _, _))| (i, path))
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| -> Result<(), BoxError> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (touched, set, root, out_dir) = (&touched, &set, &root, &out_dir);
                scope.spawn(move || -> Result<(), BoxError> {
                    for (i, path) in touched.iter().skip(t).step_by(threads) {
                        rewrite_without(
                            &root.join(path),
                            &out_dir.join(format!("{i}.parquet")),
                            set,
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "floor thread panicked")??;
        }
        Ok(())
    })?;
    let touched = touched.len();
    let out = std::fs::File::create(out_dir.join("upserts.parquet"))?;
    let mut w =
        parquet::arrow::ArrowWriter::try_new(out, changes.upserts.schema(), Some(snappy()))?;
    w.write(&changes.upserts)?;
    w.close()?;
    Ok(
        serde_json::json!({"seconds": start.elapsed().as_secs_f64(), "cpu_seconds": cpu_seconds() - cpu, "files_touched": touched, "files": files.len()}),
    )
}

/// A full scan of the table through DataFusion (every column read, deletion vectors applied):
/// the best of three runs.
async fn scan(table_dir: &str) -> Result<serde_json::Value, BoxError> {
    let wh = warehouse(table_dir)?;
    let table = wh.sink(&table_id()).load().await?.ok_or("no table")?;
    let files = table.snapshot()?.log_data().into_iter().count();
    let mut best = f64::INFINITY;
    let mut rows = String::new();
    for _ in 0..3 {
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state())?;
        let start = Instant::now();
        ctx.register_table("t", table.table_provider().await?)?;
        let batches = ctx
            .sql("SELECT count(*), sum(id), sum(amount), sum(length(name)), max(updated_at) FROM t")
            .await?
            .collect()
            .await?;
        best = best.min(start.elapsed().as_secs_f64());
        rows = arrow_cast::display::array_value_to_string(batches[0].column(0), 0)?;
    }
    Ok(serde_json::json!({"scan_seconds": best, "rows": rows, "files": files}))
}

/// Count, distinct keys and sums of the table, to check that cdc-delta and MERGE agree.
async fn digest(table_dir: &str) -> Result<serde_json::Value, BoxError> {
    let wh = warehouse(table_dir)?;
    let table = wh.sink(&table_id()).load().await?.ok_or("no table")?;
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    ctx.register_table("t", table.table_provider().await?)?;
    let batches = ctx
        .sql(
            "SELECT count(*) AS n, count(DISTINCT id) AS keys, sum(id) AS id_sum, \
             sum(amount) AS amount_sum, count(name) AS names FROM t",
        )
        .await?
        .collect()
        .await?;
    let b = &batches[0];
    let int =
        |c: usize| arrow_cast::display::array_value_to_string(b.column(c), 0).unwrap_or_default();
    Ok(
        serde_json::json!({"rows": int(0), "keys": int(1), "id_sum": int(2), "amount_sum": int(3), "names": int(4)}),
    )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let report = match args.first().map(String::as_str) {
        Some("setup") if args.len() == 5 => {
            setup(&args[1], args[2].parse()?, args[3].parse()?, &args[4]).await?;
            serde_json::json!({})
        }
        Some("digest") if args.len() == 2 => digest(&args[1]).await?,
        Some("scan") if args.len() == 2 => scan(&args[1]).await?,
        Some(mode @ ("cdc" | "cdc-cow" | "merge" | "floor")) if args.len() == 3 => {
            let changes = load_changes(&args[2])?;
            match mode {
                "cdc" => run_cdc(&args[1], &changes, true).await?,
                "cdc-cow" => run_cdc(&args[1], &changes, false).await?,
                "merge" => run_merge(&args[1], &changes).await?,
                _ => run_floor(&args[1], &changes).await?,
            }
        }
        _ => return Err("usage: delta_bench setup <dir> <rows> <changes> <uniform|skewed|recent> | <cdc|cdc-cow|merge|floor> <table dir> <setup dir> | <scan|digest> <table dir>".into()),
    };
    let mut report = report;
    report["mode"] = serde_json::json!(args[0]);
    report["peak_rss_mib"] = serde_json::json!(peak_rss_mib());
    println!("{report}");
    Ok(())
}
