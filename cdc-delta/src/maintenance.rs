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
//! touched, and neither is a file a `remove` names: those are time travel's.
//!
//! [`vacuum`] deletes those too once their retention has passed: every file the current
//! snapshot does not hold (data files and deletion-vector files alike) that a commit removed
//! before the cutoff, or that no entry names and was last written before it; then the log
//! entries older than `delta.logRetentionDuration` up to a checkpoint. Unlike delta-rs's full
//! VACUUM it knows deletion-vector files, so it never deletes one a live file still uses.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use cdc_core::model::TableId;
use deltalake::kernel::DeletionVectorDescriptor;
use deltalake::DeltaTable;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use url::Url;

use crate::error::{DeltaSinkError, Result};
use crate::table::TableLocation;
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
    let listed = list_table(table, delta).await?;
    let root = warehouse.table_url(table);
    let refs = References::read(table, delta, &root, &listed).await?;
    let mut orphans: Vec<(Path, SystemTime)> = listed
        .into_iter()
        .filter(|m| !in_log(&m.location) && !refs.names(&m.location))
        .map(|m| (m.location, m.last_modified.into()))
        .collect();
    orphans.sort();
    Ok(orphans)
}

/// Every object under the table's root.
async fn list_table(table: &TableId, delta: &DeltaTable) -> Result<Vec<object_store::ObjectMeta>> {
    let store = delta.log_store().object_store(None);
    store
        .list(None)
        .try_collect()
        .await
        .map_err(|e| store_error(table, &Path::default(), "listing the table's files", e))
}

/// The table at its latest version; no table there is an error.
async fn load(warehouse: &DeltaWarehouse, table: &TableId) -> Result<DeltaTable> {
    let at = warehouse.location(table);
    at.load()
        .await?
        .ok_or_else(|| layout(table, format!("no Delta table at {}", at.location())))
}

/// What the log's remaining entries and the current snapshot say of the table's files.
#[derive(Default)]
struct References {
    /// Data and deletion-vector files of the current snapshot.
    live: HashSet<Path>,
    /// Files a `remove` names, with the latest time one removed them (its `deletionTimestamp`,
    /// else its commit's time), in milliseconds.
    removed: HashMap<Path, i64>,
    /// Every file an entry names.
    named: HashSet<Path>,
}

impl References {
    async fn read(
        table: &TableId,
        delta: &DeltaTable,
        root: &Url,
        listed: &[object_store::ObjectMeta],
    ) -> Result<Self> {
        let mut refs = References::default();
        let snapshot = delta.snapshot().map_err(|e| delta_error(table, root, e))?;
        for file in snapshot.log_data() {
            let remove = file.remove_action(true);
            refs.live.insert(data_path(table, &remove.path)?);
            refs.live
                .extend(dv_path(table, remove.deletion_vector.as_ref(), root)?);
        }
        let store = delta.log_store().object_store(None);
        let commits = listed
            .iter()
            .filter(|m| in_log(&m.location) && m.location.extension() == Some("json"));
        for commit in commits {
            let read = async { store.get(&commit.location).await?.bytes().await };
            let bytes = (read.await)
                .map_err(|e| store_error(table, &commit.location, "reading a log entry", e))?;
            let committed = commit.last_modified.timestamp_millis();
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let action: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
                    layout(
                        table,
                        format!("log entry {} is not JSON lines: {e}", commit.location),
                    )
                })?;
                refs.add_action(table, root, &action, committed)?;
            }
        }
        Ok(refs)
    }

    /// Notes the files one log action names.
    fn add_action(
        &mut self,
        table: &TableId,
        root: &Url,
        action: &serde_json::Value,
        committed: i64,
    ) -> Result<()> {
        for kind in ["add", "remove", "cdc"] {
            let Some(named) = action.get(kind) else {
                continue;
            };
            let mut files = Vec::new();
            if let Some(path) = named.get("path").and_then(|p| p.as_str()) {
                files.push(data_path(table, path)?);
            }
            if let Some(dv) = named.get("deletionVector").filter(|dv| !dv.is_null()) {
                let dv: DeletionVectorDescriptor = serde_json::from_value(dv.clone())
                    .map_err(|e| layout(table, format!("a deletion vector in the log: {e}")))?;
                files.extend(dv_path(table, Some(&dv), root)?);
            }
            if kind == "remove" {
                let at = (named.get("deletionTimestamp"))
                    .and_then(|t| t.as_i64())
                    .unwrap_or(committed);
                for file in &files {
                    let latest = self.removed.entry(file.clone()).or_insert(at);
                    *latest = (*latest).max(at);
                }
            }
            self.named.extend(files);
        }
        Ok(())
    }

    /// Whether anything names `file`.
    fn names(&self, file: &Path) -> bool {
        self.live.contains(file) || self.named.contains(file)
    }

    /// Whether no version inside the retention window can read `file` any more: not live, and
    /// removed before `cutoff` (ms), or (never removed by an entry still there, or never named)
    /// last written before it.
    fn expired(&self, file: &object_store::ObjectMeta, cutoff: i64) -> bool {
        if self.live.contains(&file.location) {
            return false;
        }
        match self.removed.get(&file.location) {
            Some(&removed) => removed < cutoff,
            None => file.last_modified.timestamp_millis() < cutoff,
        }
    }
}

/// Whether `path` is under `_delta_log/`.
fn in_log(path: &Path) -> bool {
    path.parts().next().is_some_and(|p| p.as_ref() == LOG_DIR)
}

/// What [`vacuum`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vacuumed {
    /// Data and deletion-vector files, relative to the table's root, sorted.
    pub files: Vec<String>,
    /// Expired log entries and checkpoints.
    pub log_entries: usize,
}

/// Deletes the files of `table` no version inside the retention window reads (see the module's
/// docs), and the expired log entries. `retention` defaults to the table's
/// `delta.deletedFileRetentionDuration` (a week unless set); `now` is when the window ends.
pub async fn vacuum(
    warehouse: &DeltaWarehouse,
    table: &TableId,
    retention: Option<Duration>,
    now: SystemTime,
) -> Result<Vacuumed> {
    vacuum_at(&warehouse.location(table), retention, now).await
}

/// [`vacuum`] of the table at `at`.
pub(crate) async fn vacuum_at(
    at: &TableLocation,
    retention: Option<Duration>,
    now: SystemTime,
) -> Result<Vacuumed> {
    use deltalake::table::config::TablePropertiesExt;
    let table = &at.table;
    let delta = at
        .load()
        .await?
        .ok_or_else(|| layout(table, format!("no Delta table at {}", at.location())))?;
    let root = at.url.clone();
    let snapshot = delta.snapshot().map_err(|e| delta_error(table, &root, e))?;
    let retention =
        retention.unwrap_or_else(|| snapshot.table_config().deleted_file_retention_duration());
    let cutoff = now
        .checked_sub(retention)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |t| t.as_millis() as i64);
    let store = delta.log_store().object_store(None);
    let listed = list_table(table, &delta).await?;
    let refs = References::read(table, &delta, &root, &listed).await?;
    let mut files: Vec<Path> = (listed.iter())
        .filter(|m| !in_log(&m.location) && refs.expired(m, cutoff))
        .map(|m| m.location.clone())
        .collect();
    files.sort();
    for file in &files {
        store
            .delete(file)
            .await
            .map_err(|e| store_error(table, file, "vacuuming", e))?;
    }
    let log_entries = deltalake::checkpoints::cleanup_metadata(&delta, None)
        .await
        .map_err(|e| delta_error(table, &root, e))?;
    Ok(Vacuumed {
        files: files.iter().map(ToString::to_string).collect(),
        log_entries,
    })
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
