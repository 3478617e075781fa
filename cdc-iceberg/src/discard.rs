//! Commit attempts that lose the catalog's compare-and-swap leave files nothing will ever
//! reference: [`discard`] deletes them before the change set is redone on the new metadata.
//! Without that, every lost race would leave a full set of orphan files.
//!
//! A SQLite compare-and-swap that updated no row is definitive: the attempt's metadata file is
//! not, and will never be, the table's. Nothing else references the files the attempt wrote
//! (the new data and delete files, its manifests, its manifest list and its metadata file).

use iceberg::io::FileIO;
use iceberg::spec::{ManifestStatus, Snapshot};

use crate::error::Result;
use crate::table::{manifest_entries, manifest_list};

/// Deletes what a commit attempt that lost the race wrote: its metadata file (`metadata_file`,
/// SQLite catalog only: a REST catalog writes its own) and, when it added `snapshot`, that
/// snapshot's manifest list, the manifests it wrote and the files they list as added. Files
/// the snapshot carried over from its parent (older manifests, existing and deleted entries)
/// are not touched.
///
/// Best effort: a file that cannot be listed or deleted is logged and left to
/// [`crate::maintenance::remove_orphan_files`]; the conflict is still retried. Returns the
/// files deleted.
pub(crate) async fn discard(
    table: &str,
    io: &FileIO,
    metadata_file: Option<&str>,
    snapshot: Option<&Snapshot>,
) -> Vec<String> {
    let mut files = match snapshot {
        Some(snapshot) => match snapshot_files(table, io, snapshot).await {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(table, error = %e, "cannot list the files of a lost commit attempt; they are left to orphan cleanup");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    files.extend(metadata_file.map(str::to_string));
    let mut deleted = Vec::with_capacity(files.len());
    for path in files {
        match io.delete(&path).await {
            Ok(()) => deleted.push(path),
            Err(e) => {
                tracing::warn!(table, path, error = %e, "cannot delete a file of a lost commit attempt")
            }
        }
    }
    tracing::debug!(
        table,
        files = deleted.len(),
        "deleted the files of a lost commit attempt"
    );
    deleted
}

/// The files `snapshot` added (see [`discard`]): its manifest list, the manifests it wrote and
/// the files they list as added.
async fn snapshot_files(table: &str, io: &FileIO, snapshot: &Snapshot) -> Result<Vec<String>> {
    let id = snapshot.snapshot_id();
    let mut files = Vec::new();
    for manifest in manifest_list(table, io, snapshot).await? {
        if manifest.added_snapshot_id != id {
            continue;
        }
        let entries = manifest_entries(table, io, &manifest).await?;
        files.extend(
            entries
                .iter()
                .filter(|e| e.status() == ManifestStatus::Added)
                .map(|e| e.file_path().to_string()),
        );
        files.push(manifest.manifest_path.clone());
    }
    files.push(snapshot.manifest_list().to_string());
    Ok(files)
}
