//! Table maintenance: finding and removing orphan files, the files of commit attempts that
//! never reached the catalog (a crash between writing files and the catalog swap, a lost
//! conflict).
//!
//! A file is referenced when the current metadata file, a metadata file of its log, or any
//! snapshot it still lists (manifest lists, manifests, and every data and delete file those
//! manifests name, live or deleted) reaches it. Everything else under the table's directory is
//! an orphan.

use std::collections::HashSet;
use std::path::Path;

use cdc_core::model::TableId;
use iceberg::spec::TableMetadata;

use crate::error::{iceberg_err, IcebergSinkError, Result};
use crate::table::manifest_list;
use crate::IcebergWarehouse;

/// Every file the table's current metadata still references.
pub async fn referenced_files(
    warehouse: &IcebergWarehouse,
    table: &TableId,
) -> Result<HashSet<String>> {
    let name = table.to_string();
    let io = warehouse.file_io();
    let Some(current) = warehouse.metadata_location(table).await? else {
        return Ok(HashSet::new());
    };
    let metadata = TableMetadata::read_from(io, &current)
        .await
        .map_err(iceberg_err(&name, format!("reading {current}")))?;
    let mut files = HashSet::from([current.clone()]);
    files.extend(
        metadata
            .metadata_log()
            .iter()
            .map(|m| m.metadata_file.clone()),
    );
    let mut manifests_seen = HashSet::new();
    for snapshot in metadata.snapshots() {
        files.insert(snapshot.manifest_list().to_string());
        for manifest in manifest_list(&name, io, snapshot).await? {
            if !manifests_seen.insert(manifest.manifest_path.clone()) {
                continue;
            }
            let (entries, _) = manifest
                .load_manifest(io)
                .await
                .map_err(iceberg_err(
                    &name,
                    format!("reading {}", manifest.manifest_path),
                ))?
                .into_parts();
            files.extend(entries.iter().map(|e| e.file_path().to_string()));
            files.insert(manifest.manifest_path);
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path.display().to_string());
        }
    }
    Ok(())
}

/// Files under the table's directory that no metadata references, sorted.
pub async fn orphan_files(warehouse: &IcebergWarehouse, table: &TableId) -> Result<Vec<String>> {
    let referenced = referenced_files(warehouse, table).await?;
    let location = warehouse.table_location(table);
    let mut all = Vec::new();
    walk(Path::new(&location), &mut all).map_err(|e| IcebergSinkError::File {
        table: table.to_string(),
        path: location.clone(),
        message: format!("listing the table directory: {e}"),
    })?;
    let mut orphans: Vec<String> = all
        .into_iter()
        .filter(|p| !referenced.contains(p) && !referenced.contains(&format!("file://{p}")))
        .collect();
    orphans.sort();
    Ok(orphans)
}

/// Deletes the table's orphan files last modified before `older_than` (files of a commit still
/// in flight are younger) and returns them.
pub async fn remove_orphan_files(
    warehouse: &IcebergWarehouse,
    table: &TableId,
    older_than: std::time::SystemTime,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for path in orphan_files(warehouse, table).await? {
        let old = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map(|t| t < older_than)
            .unwrap_or(false);
        if old {
            std::fs::remove_file(&path).map_err(|e| IcebergSinkError::File {
                table: table.to_string(),
                path: path.clone(),
                message: format!("removing an orphan file: {e}"),
            })?;
            removed.push(path);
        }
    }
    Ok(removed)
}
