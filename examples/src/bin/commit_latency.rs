//! Does a commit get dearer as the table ages? One-event batches through the whole pipeline
//! (decode, fold, upsert, commit) into one table per format, timing each commit; prints, as one
//! JSON line per format and mark, the median and p90 latency of the `window` commits before each
//! of the marks (e.g. 100, 1 000 and 10 000 commits).
//!
//! ```text
//! commit_latency <warehouse dir> <format: delta|iceberg|hudi> <mark>... [--window N]
//!                [--delta-property KEY=VALUE]... [--iceberg-property KEY=VALUE]...
//! ```
//! The events are the throughput benchmark's backlog (`cdc_core::testing::backlog`): a snapshot
//! of 1 000 rows in the first batch, then one change per commit (70 % updates, 20 % inserts,
//! 10 % deletes).

use std::collections::HashMap;
use std::time::Instant;

use cdc_core::decode::TableHint;
use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::sink::Warehouse;
use cdc_core::testing::backlog::{generate, BacklogSpec};

const SNAPSHOT_ROWS: u64 = 1_000;

fn open(
    format: &str,
    dir: &str,
    table_properties: HashMap<String, String>,
) -> Result<Box<dyn Warehouse>, Box<dyn std::error::Error>> {
    Ok(match format {
        "delta" => {
            let config = cdc_delta::DeltaSinkConfig {
                table_properties,
                ..Default::default()
            };
            Box::new(cdc_delta::DeltaWarehouse::new(dir, config)?)
        }
        "iceberg" => {
            let config = cdc_iceberg::IcebergSinkConfig {
                table_properties,
                ..Default::default()
            };
            Box::new(cdc_iceberg::IcebergWarehouse::new(dir, config)?)
        }
        "hudi" => Box::new(cdc_hudi::HudiWarehouse::new(dir, Default::default())?),
        other => return Err(format!("unknown format `{other}`").into()),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: commit_latency <warehouse dir> <format> <mark>... [--window N]";
    let (Some(dir), Some(format)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let window: usize = match args.iter().position(|a| a == "--window") {
        Some(i) => args.get(i + 1).ok_or(usage)?.parse()?,
        None => 20,
    };
    let property_flag = format!("--{format}-property");
    let table_properties = args
        .windows(2)
        .filter(|w| w[0] == property_flag)
        .filter_map(|w| w[1].split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let marks: Vec<usize> = args[2..]
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let last = *marks.iter().max().ok_or(usage)?;
    let spec = BacklogSpec {
        snapshot_rows: SNAPSHOT_ROWS,
        changes: last as u64,
        seed: 11,
        with_schema: true,
    };
    let records = generate(&spec).records();
    let table = TableId::new("public", "customers");
    let hint = TableHint {
        schema: None,
        key_columns: Some(vec!["id".into()]),
    };
    let config = PipelineConfig {
        table_hints: HashMap::from([(table, hint)]),
        ..Default::default()
    };
    let warehouse = open(format, dir, table_properties)?;
    let mut pipeline = Pipeline::new(config, warehouse.as_ref())?;
    let (snapshot, changes) = records.split_at(SNAPSHOT_ROWS as usize);
    pipeline.process_batch(snapshot).await?;
    let mut latencies = Vec::with_capacity(last);
    for record in changes {
        let start = Instant::now();
        pipeline.process_batch(std::slice::from_ref(record)).await?;
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        let n = latencies.len();
        if marks.contains(&n) {
            let mut recent = latencies[n.saturating_sub(window)..].to_vec();
            recent.sort_by(f64::total_cmp);
            println!(
                "{}",
                serde_json::json!({
                    "format": format, "commits": n + 1, "window": recent.len(),
                    "median_ms": percentile(&recent, 0.5), "p90_ms": percentile(&recent, 0.9),
                })
            );
        }
    }
    Ok(())
}
