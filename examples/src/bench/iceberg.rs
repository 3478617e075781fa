//! Iceberg in the upsert benchmark: the sink with position deletes (`cdc`) or copy-on-write
//! (`cow`); the peer (pyiceberg) is `examples/bench/pyiceberg_upsert.py`.

use std::time::Instant;

use arrow_array::RecordBatch;
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, WriteMode};
use futures::TryStreamExt;

use super::{table_id, BoxError};

/// The warehouse at `dir` (copy-on-write when `cow`).
pub fn warehouse(dir: &str, cow: bool) -> Result<IcebergWarehouse, BoxError> {
    let config = IcebergSinkConfig {
        write_mode: if cow {
            WriteMode::CopyOnWrite
        } else {
            WriteMode::PositionDeletes
        },
        ..IcebergSinkConfig::default()
    };
    Ok(IcebergWarehouse::new(dir, config)?)
}

async fn table(dir: &str) -> Result<(IcebergWarehouse, iceberg::table::Table), BoxError> {
    let wh = warehouse(dir, false)?;
    let table = wh.read_only_table(&table_id()).await?.ok_or("no table")?;
    Ok((wh, table))
}

/// The table's live data files.
pub async fn data_files(dir: &str) -> Result<Vec<String>, BoxError> {
    let (_, t) = table(dir).await?;
    let tasks: Vec<_> = t
        .scan()
        .select_all()
        .build()?
        .plan_files()
        .await?
        .try_collect()
        .await?;
    Ok(tasks.into_iter().map(|task| task.data_file_path).collect())
}

/// A full iceberg-rust scan (deletes applied): digest and time.
pub async fn digest(dir: &str) -> Result<serde_json::Value, BoxError> {
    let (_, t) = table(dir).await?;
    let start = Instant::now();
    let batches: Vec<RecordBatch> = t
        .scan()
        .select_all()
        .build()?
        .to_arrow()
        .await?
        .try_collect()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    super::digest_of(&batches, secs)
}
