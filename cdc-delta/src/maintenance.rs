//! The files of Delta commit attempts that never reached the log.
//!
//! A commit writes its data and deletion-vector files first and its log entry last. A process
//! killed in between, or an attempt abandoned after losing to another writer, leaves files
//! that no log entry names and no reader ever sees. [`orphan_files`] finds them under the
//! table's location, on any object store; [`remove_orphan_files`] deletes those older than a
//! cutoff (a younger one may belong to a commit still in flight).
//!
//! A file is referenced when an entry still in `_delta_log/` names it (`add`, `remove` or
//! `cdc`, and the deletion vectors of `add` and `remove`), or the table's current snapshot
//! holds it (its entry may survive only in a checkpoint). `_delta_log/` itself is never
//! touched, and neither is a file a `remove` names: those are time travel's, and VACUUM's to
//! delete once their retention has passed.

use std::collections::HashSet;
use std::time::SystemTime;

use cdc_core::model::TableId;
use deltalake::kernel::DeletionVectorDescriptor;
use deltalake::DeltaTable;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use url::Url;

use crate::error::{DeltaSinkError, Result};
use crate::warehouse::DeltaWarehouse;

/// The log's directory under the table's root.
const LOG_DIR: &str = "_delta_log";

/// Files under the table's location that no log entry and no live snapshot file references,
/// as paths relative to the table's root, sorted. A location without a table is an error.
pub async fn orphan_files(warehouse: &DeltaWarehouse, table: &TableId) -> Result<Vec<String>> {
    let delta = load(warehouse, table).await?;
    let orphans = orphans_with_times(warehouse, table, &delta).await?;
    Ok(orphans.into_iter().map(|(p, _)| p.to_string()).collect())
}

/// Deletes the table's orphan files last modified before `older_than` and returns them.
pub async fn remove_orphan_files(
    warehouse: &DeltaWarehouse,
    table: &TableId,
    older_than: SystemTime,
) -> Result<Vec<String>> {
    let delta = load(warehouse, table).await?;
    let store = delta.log_store().object_store(None);
    let mut removed = Vec::new();
    for (path, modified) in orphans_with_times(warehouse, table, &delta).await? {
        if modified < older_than {
            store
                .delete(&path)
                .await
                .map_err(|e| store_error(table, &path, "removing an orphan file", e))?;
            removed.push(path.to_string());
        }
    }
    Ok(removed)
}

/// The orphans of `delta` (the table loaded) with their modification times, sorted.
async fn orphans_with_times(
    warehouse: &DeltaWarehouse,
    table: &TableId,
    delta: &DeltaTable,
) -> Result<Vec<(Path, SystemTime)>> {
    let store = delta.log_store().object_store(None);
    let listed: Vec<_> = store
        .list(None)
        .try_collect()
        .await
        .map_err(|e| store_error(table, &Path::default(), "listing the table's files", e))?;
    let root = warehouse.table_url(table);
    let referenced = referenced(table, delta, &root, &listed).await?;
    let mut orphans: Vec<(Path, SystemTime)> = listed
        .into_iter()
        .filter(|m| {
            m.location
                .parts()
                .next()
                .is_none_or(|p| p.as_ref() != LOG_DIR)
        })
        .filter(|m| !referenced.contains(&m.location))
        .map(|m| (m.location, m.last_modified.into()))
        .collect();
    orphans.sort();
    Ok(orphans)
}

/// The table at its latest version; no table there is an error.
async fn load(warehouse: &DeltaWarehouse, table: &TableId) -> Result<DeltaTable> {
    let at = warehouse.location(table);
    at.load()
        .await?
        .ok_or_else(|| layout(table, format!("no Delta table at {}", at.location())))
}

/// Every file the log's remaining entries and the current snapshot name.
async fn referenced(
    table: &TableId,
    delta: &DeltaTable,
    root: &Url,
    listed: &[object_store::ObjectMeta],
) -> Result<HashSet<Path>> {
    let mut files = HashSet::new();
    let snapshot = delta.snapshot().map_err(|e| delta_error(table, root, e))?;
    for file in snapshot.log_data() {
        let remove = file.remove_action(true);
        files.insert(data_path(table, &remove.path)?);
        files.extend(dv_path(table, remove.deletion_vector.as_ref(), root)?);
    }
    let store = delta.log_store().object_store(None);
    let commits = listed.iter().filter(|m| {
        m.location
            .parts()
            .next()
            .is_some_and(|p| p.as_ref() == LOG_DIR)
            && m.location.extension() == Some("json")
    });
    for commit in commits {
        let read = async { store.get(&commit.location).await?.bytes().await };
        let bytes = (read.await)
            .map_err(|e| store_error(table, &commit.location, "reading a log entry", e))?;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let action: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
                layout(
                    table,
                    format!("log entry {} is not JSON lines: {e}", commit.location),
                )
            })?;
            for kind in ["add", "remove", "cdc"] {
                let Some(named) = action.get(kind) else {
                    continue;
                };
                if let Some(path) = named.get("path").and_then(|p| p.as_str()) {
                    files.insert(data_path(table, path)?);
                }
                if let Some(dv) = named.get("deletionVector").filter(|dv| !dv.is_null()) {
                    let dv: DeletionVectorDescriptor = serde_json::from_value(dv.clone())
                        .map_err(|e| layout(table, format!("a deletion vector in the log: {e}")))?;
                    files.extend(dv_path(table, Some(&dv), root)?);
                }
            }
        }
    }
    Ok(files)
}

/// A data file's path as the log writes it (relative and URL-encoded) in the table's store.
fn data_path(table: &TableId, path: &str) -> Result<Path> {
    Path::from_url_path(path)
        .map_err(|e| layout(table, format!("data file path `{path}` in the log: {e}")))
}

/// The file of a deletion vector stored in one (`None` when inline or absent).
fn dv_path(
    table: &TableId,
    dv: Option<&DeletionVectorDescriptor>,
    root: &Url,
) -> Result<Option<Path>> {
    use deltalake::kernel::StorageType;
    match dv {
        Some(dv) if dv.storage_type != StorageType::Inline => crate::dv::store_path(dv, root)
            .map(Some)
            .map_err(|e| layout(table, e.to_string())),
        _ => Ok(None),
    }
}

fn layout(table: &TableId, message: String) -> DeltaSinkError {
    DeltaSinkError::Layout {
        table: table.to_string(),
        message,
    }
}

fn store_error(table: &TableId, path: &Path, what: &str, e: object_store::Error) -> DeltaSinkError {
    layout(table, format!("{what} ({path}): {e}"))
}

fn delta_error(table: &TableId, root: &Url, e: deltalake::DeltaTableError) -> DeltaSinkError {
    DeltaSinkError::Delta {
        table: table.to_string(),
        location: root.to_string(),
        context: "finding orphan files",
        source: Box::new(e),
    }
}
