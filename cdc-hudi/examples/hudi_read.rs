//! Sync raw change events into Hudi, then read the result back with hudi-rs: the snapshot, the
//! timeline, the table as of the oldest commit the cleaner keeps (time travel), and what the
//! last commit changed (incremental query).
//!
//! `cargo run -p cdc-hudi --example hudi_read -- [SOURCE_DIR] [WAREHOUSE_DIR]`
//! (defaults: the bundled sample events, and a fresh temporary warehouse).

use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::source::raw::RawFileSource;
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use hudi::table::{QueryType, ReadOptions, Table};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let source_dir = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample/topics").to_string()
    });
    let warehouse_dir = match args.next() {
        Some(d) => d,
        None => std::env::temp_dir()
            .join(format!("cdc-lake-hudi-read-{}", std::process::id()))
            .to_string_lossy()
            .into_owned(),
    };
    let warehouse = HudiWarehouse::new(&warehouse_dir, HudiSinkConfig::default())?;
    let mut source = RawFileSource::open(&source_dir).await?;
    let mut config = PipelineConfig::default();
    // Small batches, so the table has a few commits to travel between.
    config.limits.max_events = 10;
    let stats = Pipeline::new(config, &warehouse)?
        .run_to_end(&mut source, |_| {})
        .await?;
    println!(
        "synced {} events in {} commits into {warehouse_dir}",
        stats.events_applied, stats.commits
    );

    let location = warehouse.table_location(&TableId::new("public", "customers"));
    let table = Table::new(&location).await?;
    let commits = table.get_timeline().get_completed_commits(false).await?;
    println!(
        "customers: {} ({}), {} commits",
        table.table_name(),
        table.table_type(),
        commits.len()
    );
    let count = |batches: &[arrow_array::RecordBatch]| -> usize {
        batches.iter().map(|b| b.num_rows()).sum()
    };
    let now = table.read(&ReadOptions::new()).await?;
    println!("snapshot: {} rows", count(&now));
    if let Some(last) = commits.last() {
        // Older file versions are cleaned (`commits_retained`), so travel no further back.
        let retained = HudiSinkConfig::default().commits_retained / 2;
        let oldest = &commits[commits.len().saturating_sub(retained)].timestamp;
        let then = table
            .read(&ReadOptions::new().with_as_of_timestamp(oldest))
            .await?;
        println!("as of commit {oldest}: {} rows", count(&then));
        let before_last = &commits[commits.len().saturating_sub(2)].timestamp;
        let changed = table
            .read(
                &ReadOptions::new()
                    .with_query_type(QueryType::Incremental)
                    .with_start_timestamp(before_last)
                    .with_end_timestamp(&last.timestamp),
            )
            .await?;
        println!(
            "changed by the last commit {}: {} rows",
            last.timestamp,
            count(&changed)
        );
    }
    if let Some(batch) = now.first() {
        let preview = batch.slice(0, batch.num_rows().min(3));
        for row in cdc_core::render::render_rows(&preview)? {
            println!("{}", serde_json::Value::Object(row));
        }
    }
    Ok(())
}
