//! Sync raw change events into Delta Lake, then query the result with SQL through DataFusion.
//!
//! `cargo run -p cdc-lake-examples --bin delta_sql -- [SOURCE_DIR] [WAREHOUSE_DIR]`
//! (defaults: the bundled sample events, and a fresh temporary warehouse).

use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::source::raw::RawFileSource;
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};
use deltalake::datafusion::prelude::SessionContext;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let source_dir = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample/topics").to_string()
    });
    let warehouse_dir = match args.next() {
        Some(d) => d,
        None => std::env::temp_dir()
            .join(format!("cdc-lake-delta-sql-{}", std::process::id()))
            .to_string_lossy()
            .into_owned(),
    };
    let warehouse = DeltaWarehouse::new(&warehouse_dir, DeltaSinkConfig::default())?;
    let mut source = RawFileSource::open(&source_dir).await?;
    let stats = Pipeline::new(PipelineConfig::default(), &warehouse)?
        .run_to_end(&mut source, |_| {})
        .await?;
    println!(
        "synced {} events in {} commits into {warehouse_dir}",
        stats.events_applied, stats.commits
    );

    let table = warehouse
        .sink(&TableId::new("public", "customers"))
        .load()
        .await?
        .ok_or("no customers table in the source")?;
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    ctx.register_table("customers", table.table_provider().await?)?;
    ctx.sql(
        "SELECT count(*) AS customers, sum(balance) AS total_balance, \
         count(email) AS with_email, max(updated_at) AS last_update FROM customers",
    )
    .await?
    .show()
    .await?;
    ctx.sql("SELECT id, name, balance FROM customers ORDER BY balance DESC NULLS LAST LIMIT 5")
        .await?
        .show()
        .await?;
    Ok(())
}
