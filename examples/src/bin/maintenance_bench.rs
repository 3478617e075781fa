//! What maintenance does for a table a stream wrote one event at a time: `--commits` (1 000)
//! one-event commits through the whole pipeline into one table of `format` (the sink's own
//! maintenance off), then the format's maintenance run once. Before and after, the table's
//! live files are counted and a full scan by the format's Rust reader (delta-rs over
//! DataFusion, iceberg-rust, hudi-rs) is timed (median of `--scans`, 5); each scan must hold
//! the rows the reference sink holds for the same events, and so must a time-travel read of
//! the version before maintenance. Prints one JSON line.
//!
//! With `--auto` the sink's own maintenance stays on (its default schedule), and the files
//! and scan before the final run show what a stream's table looks like with it.
//!
//! ```text
//! maintenance_bench <warehouse dir> <format: delta|iceberg|hudi> [--commits N] [--scans K] [--auto]
//! ```

use std::collections::HashMap;
use std::time::Instant;

use arrow_array::{Array, RecordBatch};
use cdc_core::decode::TableHint;
use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::sink::{MemoryWarehouse, Warehouse};
use cdc_core::source::RawRecord;
use cdc_core::testing::backlog::{generate, BacklogSpec};
use futures::TryStreamExt;

const SNAPSHOT_ROWS: u64 = 1_000;

type Error = Box<dyn std::error::Error>;

/// Where the table is and what its format reads of it.
struct Lake {
    format: String,
    dir: String,
    table: TableId,
    /// The sinks' own maintenance on.
    auto: bool,
}

impl Lake {
    fn warehouse(&self) -> Result<Box<dyn Warehouse>, Error> {
        Ok(match self.format.as_str() {
            "delta" if self.auto => Box::new(cdc_delta::DeltaWarehouse::new(
                &self.dir,
                Default::default(),
            )?),
            "delta" => Box::new(cdc_delta::DeltaWarehouse::new(&self.dir, delta_config())?),
            "iceberg" if self.auto => Box::new(cdc_iceberg::IcebergWarehouse::new(
                &self.dir,
                Default::default(),
            )?),
            "iceberg" => Box::new(cdc_iceberg::IcebergWarehouse::new(
                &self.dir,
                iceberg_config(),
            )?),
            "hudi" if self.auto => {
                Box::new(cdc_hudi::HudiWarehouse::new(&self.dir, Default::default())?)
            }
            "hudi" => {
                let config = cdc_hudi::HudiSinkConfig {
                    cluster_every: 0,
                    ..Default::default()
                };
                Box::new(cdc_hudi::HudiWarehouse::new(&self.dir, config)?)
            }
            other => return Err(format!("unknown format `{other}`").into()),
        })
    }

    /// The table's current version (Delta version, Iceberg snapshot, Hudi instant).
    async fn version(&self) -> Result<String, Error> {
        Ok(match self.format.as_str() {
            "delta" => {
                let url = delta_warehouse(&self.dir)?.table_url(&self.table);
                let t = deltalake::open_table(url).await?;
                t.version().unwrap_or_default().to_string()
            }
            "iceberg" => {
                let t = self.iceberg_table().await?;
                t.metadata()
                    .current_snapshot_id()
                    .unwrap_or_default()
                    .to_string()
            }
            _ => {
                let hoodie = std::path::Path::new(&self.dir).join("public/customers/.hoodie");
                let mut times: Vec<String> = std::fs::read_dir(hoodie)?
                    .filter_map(|e| {
                        let name = e.ok()?.file_name().to_string_lossy().into_owned();
                        let (time, action) = name.split_once('.')?;
                        matches!(action, "commit" | "replacecommit").then(|| time.to_string())
                    })
                    .collect();
                times.sort();
                times.pop().unwrap_or_default()
            }
        })
    }

    /// Every row, as of `version` (else the latest), and the number of live data files read.
    async fn scan(&self, version: Option<&str>) -> Result<(RecordBatch, usize), Error> {
        match self.format.as_str() {
            "delta" => {
                use deltalake::datafusion::prelude::SessionContext;
                let url = delta_warehouse(&self.dir)?.table_url(&self.table);
                let mut t = deltalake::open_table(url).await?;
                if let Some(v) = version {
                    t.load_version(v.parse()?).await?;
                }
                let files = t.snapshot()?.log_data().num_files();
                let ctx = SessionContext::new();
                t.update_datafusion_session(&ctx.state())?;
                let batches = ctx.read_table(t.table_provider().await?)?.collect().await?;
                Ok((concat(batches)?, files))
            }
            "iceberg" => {
                let t = self.iceberg_table().await?;
                let mut scan = t.scan().select_all();
                if let Some(v) = version {
                    scan = scan.snapshot_id(v.parse()?);
                }
                let plan = scan.build()?;
                let files = plan
                    .plan_files()
                    .await?
                    .try_collect::<Vec<_>>()
                    .await?
                    .len();
                let batches: Vec<RecordBatch> = plan.to_arrow().await?.try_collect().await?;
                Ok((concat(batches)?, files))
            }
            _ => {
                let location = std::path::Path::new(&self.dir).join("public/customers");
                let t = hudi::table::Table::new(location.to_str().ok_or("path")?).await?;
                let mut options = hudi::table::ReadOptions::new();
                if let Some(v) = version {
                    options = options.with_as_of_timestamp(v);
                }
                let rows = concat(t.read(&options).await?)?;
                let files = distinct(&rows, "_hoodie_file_name")?;
                Ok((rows, files))
            }
        }
    }

    async fn iceberg_table(&self) -> Result<iceberg::table::Table, Error> {
        let warehouse = cdc_iceberg::IcebergWarehouse::new(&self.dir, iceberg_config())?;
        Ok(warehouse
            .read_only_table(&self.table)
            .await?
            .ok_or("no table")?)
    }

    /// The format's maintenance, once.
    async fn maintain(&self) -> Result<serde_json::Value, Error> {
        Ok(match self.format.as_str() {
            "delta" => {
                let warehouse = delta_warehouse(&self.dir)?;
                let options = cdc_delta::optimize::OptimizeOptions::for_target(128 << 20);
                let done = cdc_delta::optimize::optimize(&warehouse, &self.table, &options).await?;
                serde_json::json!({"optimize": {"files": done.files, "rows": done.rows}})
            }
            "iceberg" => {
                let warehouse = cdc_iceberg::IcebergWarehouse::new(&self.dir, iceberg_config())?;
                let options = cdc_iceberg::compact::CompactOptions::default();
                let done =
                    cdc_iceberg::compact::compact_files(&warehouse, &self.table, &options).await?;
                serde_json::json!({"compact": done.map(|c| (c.data_files, c.delete_files))})
            }
            _ => {
                let warehouse = cdc_hudi::HudiWarehouse::new(&self.dir, Default::default())?;
                let options = cdc_hudi::cluster::ClusterOptions::default();
                let done = cdc_hudi::cluster::cluster(&warehouse, &self.table, &options).await?;
                serde_json::json!({"cluster": done.map(|c| (c.groups, c.rows))})
            }
        })
    }
}

fn delta_config() -> cdc_delta::DeltaSinkConfig {
    cdc_delta::DeltaSinkConfig {
        optimize_every: 0,
        vacuum_every: 0,
        ..Default::default()
    }
}

fn delta_warehouse(dir: &str) -> Result<cdc_delta::DeltaWarehouse, Error> {
    Ok(cdc_delta::DeltaWarehouse::new(dir, delta_config())?)
}

fn iceberg_config() -> cdc_iceberg::IcebergSinkConfig {
    cdc_iceberg::IcebergSinkConfig {
        compact_every: 0,
        ..Default::default()
    }
}

fn concat(batches: Vec<RecordBatch>) -> Result<RecordBatch, Error> {
    let schema = batches.first().ok_or("no rows")?.schema();
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

fn distinct(rows: &RecordBatch, column: &str) -> Result<usize, Error> {
    let col = arrow_cast::cast(
        rows.column_by_name(column).ok_or("no column")?,
        &arrow_schema::DataType::Utf8,
    )?;
    let col = col
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .ok_or("utf8")?;
    let set: std::collections::HashSet<&str> = (0..col.len()).map(|i| col.value(i)).collect();
    Ok(set.len())
}

/// `(id, name)` of every row, sorted: what two reads of the same rows agree on.
fn fingerprint(rows: &RecordBatch) -> Result<Vec<(String, String)>, Error> {
    let text = |c: &str| -> Result<Vec<String>, Error> {
        let col = arrow_cast::cast(
            rows.column_by_name(c).ok_or("no column")?,
            &arrow_schema::DataType::Utf8,
        )?;
        let col = col
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .ok_or("utf8")?
            .clone();
        Ok((0..col.len()).map(|i| col.value(i).to_string()).collect())
    };
    let mut rows: Vec<(String, String)> = text("id")?.into_iter().zip(text("name")?).collect();
    rows.sort();
    Ok(rows)
}

/// The median of `scans` full scans in ms, checking each against `expected`.
async fn timed_scans(
    lake: &Lake,
    scans: usize,
    expected: &[(String, String)],
) -> Result<(f64, usize), Error> {
    let mut times = Vec::with_capacity(scans);
    let mut files = 0;
    for _ in 0..scans {
        let start = Instant::now();
        let (rows, n) = lake.scan(None).await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        files = n;
        if fingerprint(&rows)? != expected {
            return Err("a scan differs from the reference sink".into());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], files))
}

fn flag(args: &[String], name: &str, default: usize) -> Result<usize, Error> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).ok_or("flag value")?.parse()?),
        None => Ok(default),
    }
}

async fn sync(
    warehouse: &dyn Warehouse,
    table: &TableId,
    records: &[RawRecord],
    one_at_a_time: bool,
) -> Result<(), Error> {
    let hint = TableHint {
        schema: None,
        key_columns: Some(vec!["id".into()]),
    };
    let config = PipelineConfig {
        table_hints: HashMap::from([(table.clone(), hint)]),
        ..Default::default()
    };
    let mut pipeline = Pipeline::new(config, warehouse)?;
    let (snapshot, changes) = records.split_at(SNAPSHOT_ROWS as usize);
    pipeline.process_batch(snapshot).await?;
    match one_at_a_time {
        true => {
            for record in changes {
                pipeline.process_batch(std::slice::from_ref(record)).await?;
            }
        }
        false => pipeline.process_batch(changes).await?,
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: maintenance_bench <warehouse dir> <format> [--commits N] [--scans K]";
    let (Some(dir), Some(format)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let commits = flag(&args, "--commits", 1_000)?;
    let scans = flag(&args, "--scans", 5)?.max(1);
    let spec = BacklogSpec {
        snapshot_rows: SNAPSHOT_ROWS,
        changes: commits as u64,
        seed: 11,
        with_schema: true,
    };
    let records = generate(&spec).records();
    let lake = Lake {
        format: format.clone(),
        dir: dir.clone(),
        table: TableId::new("public", "customers"),
        auto: args.iter().any(|a| a == "--auto"),
    };
    let reference = MemoryWarehouse::new();
    sync(&reference, &lake.table, &records, false).await?;
    let expected = fingerprint(&reference.table(&lake.table).ok_or("reference")?.rows)?;

    let warehouse = lake.warehouse()?;
    let start = Instant::now();
    sync(warehouse.as_ref(), &lake.table, &records, true).await?;
    let sync_s = start.elapsed().as_secs_f64();
    let (before_ms, files_before) = timed_scans(&lake, scans, &expected).await?;
    let version_before = lake.version().await?;
    let start = Instant::now();
    let done = lake.maintain().await?;
    let maintain_s = start.elapsed().as_secs_f64();
    let (after_ms, files_after) = timed_scans(&lake, scans, &expected).await?;
    let (old, _) = lake.scan(Some(&version_before)).await?;
    if fingerprint(&old)? != expected {
        return Err("time travel to the version before maintenance differs".into());
    }
    println!(
        "{}",
        serde_json::json!({
            "format": format, "commits": commits + 1, "auto": lake.auto, "sync_s": sync_s,
            "files_before": files_before, "scan_ms_before": before_ms,
            "maintenance": done, "maintenance_s": maintain_s,
            "files_after": files_after, "scan_ms_after": after_ms,
            "time_travel_before_maintenance": "equal",
        })
    );
    Ok(())
}
