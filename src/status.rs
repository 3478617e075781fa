//! What a warehouse holds (feature `query`, the CLI's `cdc-lake status`): every table under
//! `<warehouse>/<schema>/<table>/`, its format (told by the files its format keeps: `_delta_log/`,
//! `metadata/`, `.hoodie/`, `v*.jsonl`), rows, data files, last commit and checkpoint.

use cdc_core::model::{Checkpoint, TableId};
use cdc_core::source::raw::object_store_from_url;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::query::{BoxError, Tables};
use crate::Format;

/// One table's state.
#[derive(Debug, Clone)]
pub struct TableStatus {
    /// The table.
    pub table: TableId,
    /// Its format.
    pub format: Format,
    /// Live rows (deletes applied), as the format's reader counts them.
    pub rows: u64,
    /// Data files of the current version (Iceberg: data and delete files), where the format
    /// says.
    pub files: Option<u64>,
    /// The format's name for the current version (Delta version, Iceberg snapshot id, Hudi
    /// instant, jsonl version).
    pub version: Option<String>,
    /// When the current version was committed (RFC 3339, UTC; Hudi: its instant time).
    pub committed_at: Option<String>,
    /// Next offset per topic-partition.
    pub checkpoint: Checkpoint,
}

/// The state of every table of `warehouse` (only those of `format`, when given).
pub async fn status(
    warehouse: &str,
    format: Option<Format>,
    settings: Option<&str>,
) -> Result<Vec<TableStatus>, BoxError> {
    let mut out = Vec::new();
    for (table, found) in list_tables(warehouse).await? {
        if format.is_some_and(|f| f != found) {
            continue;
        }
        out.push(Box::pin(table_status(warehouse, found, settings, table)).await?);
    }
    Ok(out)
}

/// `<schema>/<table>` directories of the warehouse with the format their files show.
async fn list_tables(warehouse: &str) -> Result<Vec<(TableId, Format)>, BoxError> {
    let (store, root) = object_store_from_url(warehouse)?;
    let mut tables = Vec::new();
    for schema in child_dirs(store.as_ref(), &root).await? {
        let schema_dir = root.clone().join(schema.as_str());
        for name in child_dirs(store.as_ref(), &schema_dir).await? {
            let dir = schema_dir.clone().join(name.as_str());
            let listed = store.list_with_delimiter(Some(&dir)).await?;
            let dirs: Vec<&str> = (listed.common_prefixes.iter())
                .filter_map(|p| p.filename())
                .collect();
            let jsonl = (listed.objects.iter())
                .any(|o| o.location.filename().is_some_and(|f| f.ends_with(".jsonl")));
            let format = if dirs.contains(&"_delta_log") {
                Format::Delta
            } else if dirs.contains(&".hoodie") {
                Format::Hudi
            } else if dirs.contains(&"metadata") {
                Format::Iceberg
            } else if jsonl {
                Format::Jsonl
            } else {
                continue;
            };
            tables.push((TableId::new(schema.as_str(), name.as_str()), format));
        }
    }
    Ok(tables)
}

/// The names of the directories right under `dir`.
async fn child_dirs(store: &dyn ObjectStore, dir: &Path) -> Result<Vec<String>, BoxError> {
    let listed = store.list_with_delimiter(Some(dir)).await?;
    let mut names: Vec<String> = (listed.common_prefixes.iter())
        .filter_map(|p| p.filename().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// One table's state in `format`.
async fn table_status(
    warehouse: &str,
    format: Format,
    settings: Option<&str>,
    table: TableId,
) -> Result<TableStatus, BoxError> {
    let tables = Tables {
        warehouse,
        format: Some(format),
        settings,
    };
    let counted = Box::pin(tables.run(&format!("select count(*) from {table}"))).await?;
    let rows = counted
        .first()
        .and_then(|b| {
            let column = b.column(0).as_any();
            column.downcast_ref::<datafusion::arrow::array::Int64Array>()
        })
        .map_or(0, |c| c.value(0) as u64);
    let opened = crate::open_warehouse_with(format, warehouse, settings)?;
    let mut sink = opened.open(&table).await?;
    let checkpoint = sink.committed_checkpoint().await?.unwrap_or_default();
    let mut status = TableStatus {
        table,
        format,
        rows,
        files: None,
        version: None,
        committed_at: None,
        checkpoint,
    };
    describe(warehouse, settings, &mut status).await?;
    Ok(status)
}

/// Fills in the files, version and commit time the format keeps.
async fn describe(
    warehouse: &str,
    settings: Option<&str>,
    status: &mut TableStatus,
) -> Result<(), BoxError> {
    let _ = settings;
    match status.format {
        Format::Jsonl => {
            let dir = warehouse.strip_prefix("file://").unwrap_or(warehouse);
            let loaded = cdc_core::sink::JsonlWarehouse::new(dir).load(&status.table)?;
            status.version = loaded.map(|t| t.version.to_string());
            status.files = Some(1);
        }
        #[cfg(feature = "delta")]
        Format::Delta => {
            let opened = crate::delta_warehouse(warehouse, settings)?;
            if let Some(loaded) = opened.sink(&status.table).load().await? {
                status.version = loaded.version().map(|v| v.to_string());
                status.files = Some(loaded.get_file_uris()?.count() as u64);
                let last = loaded.history(Some(1)).await?.next();
                status.committed_at = last.and_then(|c| c.timestamp).and_then(rfc3339);
            }
        }
        #[cfg(feature = "iceberg")]
        Format::Iceberg => {
            let opened = crate::iceberg_warehouse(warehouse, settings)?;
            if let Some(location) = opened.metadata_location(&status.table).await? {
                let metadata = read_iceberg_metadata(&opened, &location).await?;
                if let Some(snapshot) = metadata.current_snapshot() {
                    let summary = &snapshot.summary().additional_properties;
                    let count = |key: &str| summary.get(key).and_then(|v| v.parse::<u64>().ok());
                    status.files = count("total-data-files")
                        .map(|data| data + count("total-delete-files").unwrap_or(0));
                    status.version = Some(snapshot.snapshot_id().to_string());
                    status.committed_at = rfc3339(snapshot.timestamp_ms());
                }
            }
        }
        #[cfg(feature = "hudi")]
        Format::Hudi => {
            let opened = crate::query::open_with_hudi_rs(warehouse, settings, &status.table);
            let Some(loaded) = opened.await? else {
                return Ok(());
            };
            let slices = loaded
                .get_file_slices(&hudi::table::ReadOptions::new())
                .await?;
            status.files = Some(slices.len() as u64);
            let instant = loaded.get_timeline().get_latest_commit_timestamp().ok();
            status.version = instant.clone();
            status.committed_at = instant;
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
    Ok(())
}

/// An Iceberg table's metadata file, read through the warehouse's file I/O.
#[cfg(feature = "iceberg")]
async fn read_iceberg_metadata(
    warehouse: &cdc_iceberg::IcebergWarehouse,
    location: &str,
) -> Result<iceberg::spec::TableMetadata, BoxError> {
    let bytes = warehouse.file_io().new_input(location)?.read().await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Milliseconds since the epoch as RFC 3339 UTC.
#[cfg_attr(not(any(feature = "delta", feature = "iceberg")), allow(dead_code))]
fn rfc3339(ms: i64) -> Option<String> {
    let at = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
