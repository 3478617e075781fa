//! Hudi in the upsert benchmark: the sink (copy-on-write, the only Hudi table type it writes),
//! with file groups sized to about 100 000 rows like the other formats' files (Hudi's default
//! 120 MB groups would hold millions of rows), read back with hudi-rs.

use std::time::Instant;

use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use hudi::table::{ReadOptions, Table};

use super::{table_id, BoxError};

fn config() -> HudiSinkConfig {
    HudiSinkConfig {
        max_file_size: 6 << 20,
        small_file_limit: 5 << 20,
        record_size_estimate: 60,
        commits_retained: 0,
        ..HudiSinkConfig::default()
    }
}

/// The warehouse at `dir`.
pub fn warehouse(dir: &str) -> Result<HudiWarehouse, BoxError> {
    Ok(HudiWarehouse::new(dir, config())?)
}

/// The latest base file of every file group.
pub async fn data_files(dir: &str) -> Result<Vec<String>, BoxError> {
    let wh = warehouse(dir)?;
    let root = std::path::PathBuf::from(wh.table_location(&table_id()));
    let groups = wh.sink(&table_id()).file_groups().await?;
    Ok(groups
        .iter()
        .map(|g| root.join(g.path()).display().to_string())
        .collect())
}

/// A snapshot read through hudi-rs: digest and time.
pub async fn digest(dir: &str) -> Result<serde_json::Value, BoxError> {
    let wh = warehouse(dir)?;
    let table = Table::new(&wh.table_location(&table_id())).await?;
    let start = Instant::now();
    let batches = table.read(&ReadOptions::new()).await?;
    let secs = start.elapsed().as_secs_f64();
    super::digest_of(&batches, secs)
}
