//! Table maintenance:
//! - [`compact`] rewrites the live rows (data files with their position deletes applied) into
//!   clean data files, in one `replace` snapshot that keeps the checkpoint: merge-on-read
//!   tables collect a delete file per commit, and readers pay for each of them.
//! - [`expire_snapshots`] drops old snapshots from the metadata and deletes the files only they
//!   reached (time travel to them ends). The newest snapshot carrying the source checkpoint,
//!   and any snapshots of other writers on top of it, are always kept.
//! - [`orphan_files`] / [`remove_orphan_files`] find and remove the files of commit attempts
//!   that never reached the catalog (a crash between writing files and the catalog swap, a lost
//!   conflict).
//!
//! Each commits like the sink: a new metadata file, swapped into the catalog only if the
//! pointer is still the one read, redone on conflict.
//!
//! A file is referenced when the current metadata file, a metadata file of its log, or any
//! snapshot it still lists (manifest lists, manifests, and every data and delete file those
//! manifests list as live) reaches it. Everything else under the table's directory is
//! an orphan.

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use cdc_core::model::TableId;
use iceberg::spec::{TableMetadata, TableMetadataBuilder};

use cdc_core::sink::upsert::{ChangedKeys, RowRemoval};

use crate::commit::{evolve_metadata, write_snapshot, NextMetadata, Staged};
use crate::error::{iceberg_err, IcebergSinkError, Result};
use crate::rewrite::RollingWriter;
use crate::storage;
use crate::table::{checkpoint_ancestry, manifest_entries, manifest_list, FileCache, Loaded};
use crate::warehouse::IcebergWarehouse;
use crate::write::{locate_rows, Plan};

/// What [`compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// The new snapshot.
    pub snapshot_id: i64,
    /// Data files before and after.
    pub data_files: (usize, usize),
    /// Position-delete files removed.
    pub delete_files: usize,
    /// Live rows (written into the new files).
    pub rows: u64,
}

pub(crate) async fn load(warehouse: &IcebergWarehouse, table: &TableId) -> Result<Option<Loaded>> {
    let Some(pointer) = warehouse.pointer(table).await? else {
        return Ok(None);
    };
    Ok(Some(
        Loaded::load(
            &table.to_string(),
            warehouse.file_io(),
            pointer,
            &mut FileCache::default(),
        )
        .await?,
    ))
}

/// Rewrites the table's live rows into clean data files (no position deletes left) in one
/// `replace` snapshot. `None` when there is nothing to compact (no table, or at most one data
/// file and no delete file).
pub async fn compact(warehouse: &IcebergWarehouse, table: &TableId) -> Result<Option<Compacted>> {
    let retry = warehouse.retry_policy();
    retry
        .run(table, IcebergSinkError::is_retryable, || async {
            let name = table.to_string();
            let io = warehouse.file_io();
            let Some(loaded) = load(warehouse, table).await? else {
                return Ok(None);
            };
            if loaded.delete_files.is_empty() && loaded.data_files.len() <= 1 {
                return Ok(None);
            }
            let merged = loaded.logical.clone();
            let mut staged = Staged {
                remove_all: true,
                replace: true,
                checkpoint: loaded.checkpoint(&name)?.to_json(),
                ..Staged::default()
            };
            let evolved = evolve_metadata(&name, &loaded, &staged)?;
            // Streamed: one data file's live rows at a time, written with rollover.
            let mut out = RollingWriter::new(table, io, &evolved.metadata, merged.clone());
            let keys = std::sync::Arc::new(ChangedKeys::none(table, &merged, &loaded.key_columns)?);
            let plan = Plan {
                removal: RowRemoval::Rewrite,
                rewrite_all: true,
            };
            let mut cache = FileCache::default();
            locate_rows(table, io, &loaded, &keys, plan, &mut cache, &mut out).await?;
            let rows;
            (staged.data, rows) = out.finish().await?;
            let next = write_snapshot(&name, io, &loaded, evolved, &staged).await?;
            let snapshot_id = next.snapshot_id().unwrap_or_default();
            warehouse.commit(table, &loaded, &next).await?;
            Ok(Some(Compacted {
                snapshot_id,
                data_files: (loaded.data_files.len(), staged.data.len()),
                delete_files: loaded.delete_files.len(),
                rows,
            }))
        })
        .await
}

/// Drops snapshots older than `older_than_ms` (epoch milliseconds) but the newest
/// `retain_last` (at least the current one) and those a branch or tag points at, and deletes the manifest lists, manifests, data
/// and delete files that only they reached. Returns the deleted files.
pub async fn expire_snapshots(
    warehouse: &IcebergWarehouse,
    table: &TableId,
    older_than_ms: i64,
    retain_last: usize,
) -> Result<Vec<String>> {
    let name = table.to_string();
    let io = warehouse.file_io();
    let retry = warehouse.retry_policy();
    let expired = retry
        .run(table, IcebergSinkError::is_retryable, || async {
            let Some(loaded) = load(warehouse, table).await? else {
                return Ok(None);
            };
            let metadata = &loaded.metadata;
            let mut snapshots: Vec<_> = metadata.snapshots().cloned().collect();
            snapshots.sort_by_key(|s| std::cmp::Reverse(s.sequence_number()));
            let keep_current = metadata.current_snapshot_id();
            // The newest snapshot carrying the source checkpoint, and every snapshot between it
            // and the current one (another engine's snapshots on top), stay: the checkpoint is
            // found by walking parent links from the current snapshot.
            let mut keep: HashSet<i64> = checkpoint_ancestry(&name, metadata)?
                .iter()
                .map(|s| s.snapshot_id())
                .collect();
            // Tags and branch heads stay: removing their snapshot would drop the ref.
            keep.extend(ref_heads(metadata));
            let drop: Vec<i64> = snapshots
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    *i >= retain_last.max(1)
                        && s.timestamp_ms() < older_than_ms
                        && Some(s.snapshot_id()) != keep_current
                        && !keep.contains(&s.snapshot_id())
                })
                .map(|(_, s)| s.snapshot_id())
                .collect();
            if drop.is_empty() {
                return Ok(None);
            }
            let before = referenced_by(&name, io, metadata).await?;
            let built = TableMetadataBuilder::new_from_metadata(
                metadata.clone(),
                Some(loaded.metadata_location.clone()),
            )
            .remove_snapshots(&drop)
            .build()
            .map_err(iceberg_err(&name, "removing snapshots"))?;
            let next = NextMetadata {
                metadata: built.metadata,
                updates: built.changes,
                snapshot: None,
            };
            let committed = warehouse.commit(table, &loaded, &next).await?;
            // What the table references after the commit as committed (a REST catalog may keep
            // snapshots another writer's refs still need): only files no longer reached go.
            let after = referenced_by(&name, io, &committed.metadata).await?;
            Ok(Some(before.difference(&after).cloned().collect::<Vec<_>>()))
        })
        .await?;
    let mut removed = expired.unwrap_or_default();
    removed.sort();
    for path in &removed {
        io.delete(path)
            .await
            .map_err(iceberg_err(&name, format!("deleting {path}")))?;
    }
    Ok(removed)
}

/// The snapshots refs (branches, tags) point at. iceberg-rust keeps the refs to itself; the
/// spec's JSON has them.
fn ref_heads(metadata: &TableMetadata) -> Vec<i64> {
    let json = serde_json::to_value(metadata).unwrap_or_default();
    let refs = json.get("refs").and_then(|r| r.as_object());
    refs.into_iter()
        .flatten()
        .filter_map(|(_, r)| r.get("snapshot-id")?.as_i64())
        .collect()
}

/// Files reached from the snapshots of `metadata` (manifest lists, manifests, data and delete
/// files; not metadata files).
async fn referenced_by(
    table: &str,
    io: &iceberg::io::FileIO,
    metadata: &TableMetadata,
) -> Result<HashSet<String>> {
    let mut files = HashSet::new();
    let mut manifests_seen = HashSet::new();
    for snapshot in metadata.snapshots() {
        files.insert(snapshot.manifest_list().to_string());
        for manifest in manifest_list(table, io, snapshot).await? {
            if !manifests_seen.insert(manifest.manifest_path.clone()) {
                continue;
            }
            let entries = manifest_entries(table, io, &manifest).await?;
            files.extend(
                entries
                    .iter()
                    .filter(|e| e.is_alive())
                    .map(|e| e.file_path().to_string()),
            );
            files.insert(manifest.manifest_path);
        }
    }
    Ok(files)
}

/// Every file the table's current metadata still references.
pub async fn referenced_files(
    warehouse: &IcebergWarehouse,
    table: &TableId,
) -> Result<HashSet<String>> {
    Ok(located_references(warehouse, table)
        .await?
        .map(|(_, files)| files)
        .unwrap_or_default())
}

/// The table's location and every file its current metadata still references; `None` without
/// a table.
async fn located_references(
    warehouse: &IcebergWarehouse,
    table: &TableId,
) -> Result<Option<(String, HashSet<String>)>> {
    let name = table.to_string();
    let io = warehouse.file_io();
    let Some(pointer) = warehouse.pointer(table).await? else {
        return Ok(None);
    };
    let metadata = match pointer.metadata {
        Some(metadata) => metadata,
        None => TableMetadata::read_from(io, &pointer.location)
            .await
            .map_err(iceberg_err(&name, format!("reading {}", pointer.location)))?,
    };
    let mut files = referenced_by(&name, io, &metadata).await?;
    files.insert(pointer.location);
    files.extend(
        metadata
            .metadata_log()
            .iter()
            .map(|m| m.metadata_file.clone()),
    );
    Ok(Some((metadata.location().to_string(), files)))
}

fn walk(dir: &Path, out: &mut Vec<(String, SystemTime)>) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push((path.display().to_string(), entry.metadata()?.modified()?));
        }
    }
    Ok(())
}

/// Every file under a table's location (a local directory or an object store URL) with its
/// last modification time.
async fn list_table_files(table: &TableId, location: &str) -> Result<Vec<(String, SystemTime)>> {
    if storage::is_remote(location) {
        let dir = format!("{}/", location.trim_end_matches('/'));
        return (storage::LakeStorage::default().list(&dir).await).map_err(|e| {
            IcebergSinkError::File {
                table: table.to_string(),
                path: location.to_string(),
                message: format!("listing the table's files: {e}"),
            }
        });
    }
    let dir = location.strip_prefix("file://").unwrap_or(location);
    let mut all = Vec::new();
    walk(Path::new(dir), &mut all).map_err(|e| IcebergSinkError::File {
        table: table.to_string(),
        path: dir.to_string(),
        message: format!("listing the table directory: {e}"),
    })?;
    Ok(all)
}

/// Files under the table's location that no metadata references, with their modification
/// times, sorted (with a REST catalog, its metadata files are never listed).
async fn orphans_with_times(
    warehouse: &IcebergWarehouse,
    table: &TableId,
) -> Result<Vec<(String, SystemTime)>> {
    let Some((location, referenced)) = located_references(warehouse, table).await? else {
        return Ok(Vec::new());
    };
    let all = list_table_files(table, &location).await?;
    // A REST catalog writes the metadata files and may keep old ones for its own history
    // without listing them in the metadata log: they are the catalog's to delete.
    let catalog_owns_metadata = warehouse.config().rest.is_some();
    let mut orphans: Vec<(String, SystemTime)> = all
        .into_iter()
        .filter(|(p, _)| !referenced.contains(p) && !referenced.contains(&format!("file://{p}")))
        .filter(|(p, _)| !(catalog_owns_metadata && p.ends_with(".metadata.json")))
        .collect();
    orphans.sort();
    Ok(orphans)
}

/// Files under the table's location that no metadata references, sorted (with a REST
/// catalog, its metadata files are never listed).
pub async fn orphan_files(warehouse: &IcebergWarehouse, table: &TableId) -> Result<Vec<String>> {
    let orphans = orphans_with_times(warehouse, table).await?;
    Ok(orphans.into_iter().map(|(p, _)| p).collect())
}

/// Deletes the table's orphan files last modified before `older_than` (files of a commit still
/// in flight are younger) and returns them.
pub async fn remove_orphan_files(
    warehouse: &IcebergWarehouse,
    table: &TableId,
    older_than: SystemTime,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (path, modified) in orphans_with_times(warehouse, table).await? {
        if modified < older_than {
            warehouse
                .file_io()
                .delete(&path)
                .await
                .map_err(|e| IcebergSinkError::File {
                    table: table.to_string(),
                    path: path.clone(),
                    message: format!("removing an orphan file: {e}"),
                })?;
            removed.push(path);
        }
    }
    Ok(removed)
}
