//! Commit attempts that lose the catalog's compare-and-swap, and the one retry loop every
//! writer (the sink, [`crate::maintenance`]) runs them in.
//!
//! A SQLite compare-and-swap that updated no row is definitive: the attempt's metadata file is
//! not, and will never be, the table's. Nothing else references the files the attempt wrote,
//! so [`discard`] deletes them (the new data and delete files, the manifests the attempt
//! wrote, its manifest list and its metadata file) before the change set is redone on the new
//! metadata. Without that, every lost race would leave a full set of orphan files.
//!
//! Retries wait a short jittered exponential backoff ([`backoff`]), so writers that collided
//! do not collide again at once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cdc_core::model::TableId;
use iceberg::io::FileIO;
use iceberg::spec::{ManifestStatus, Snapshot};

use crate::error::{IcebergSinkError, Result};
use crate::table::{manifest_entries, manifest_list};
use crate::IcebergWarehouse;

/// First retry's backoff; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// How long to wait before attempt `attempt + 1` (after `attempt` attempts lost, 1-based): an
/// exponential step with jitter, uniformly in `[step / 2, step]`.
pub(crate) fn backoff(attempt: usize) -> Duration {
    let step = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = step / 2;
    let jitter = (uuid::Uuid::new_v4().as_u128() % (half.as_micros().max(1))) as u64;
    half + Duration::from_micros(jitter)
}

/// The retry policy of one commit: feed each attempt's result to [`Retries::settle`] until it
/// says to stop. Commit conflicts are redone (after [`backoff`]) up to the warehouse's
/// `max_commit_attempts`; every conflict that is retried is counted in
/// [`IcebergWarehouse::conflicts_retried`].
pub(crate) struct Retries<'w> {
    warehouse: &'w IcebergWarehouse,
    table: &'w TableId,
    attempts: usize,
    done: usize,
    last: String,
}

impl<'w> Retries<'w> {
    pub fn new(warehouse: &'w IcebergWarehouse, table: &'w TableId) -> Self {
        Retries {
            warehouse,
            table,
            attempts: warehouse.max_commit_attempts(),
            done: 0,
            last: String::new(),
        }
    }

    /// `Some(result)` when the commit is over (committed, failed, or out of attempts);
    /// `None`, after the backoff, when the attempt is to be redone on the new metadata.
    pub async fn settle<T>(&mut self, result: Result<T>) -> Option<Result<T>> {
        self.done += 1;
        match result {
            Err(e) if e.is_retryable() => {
                tracing::info!(table = %self.table, attempt = self.done, error = %e, "commit conflict; retrying on the new metadata");
                self.last = e.to_string();
                if self.done >= self.attempts {
                    return Some(Err(IcebergSinkError::Conflict {
                        table: self.table.to_string(),
                        attempts: self.attempts,
                        last: std::mem::take(&mut self.last),
                    }));
                }
                self.warehouse.conflicts.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff(self.done)).await;
                None
            }
            other => Some(other),
        }
    }
}

/// Runs `attempt` under [`Retries`] until the commit is over.
pub(crate) async fn with_retries<T, F, Fut>(
    warehouse: &IcebergWarehouse,
    table: &TableId,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut retries = Retries::new(warehouse, table);
    loop {
        if let Some(result) = retries.settle(attempt().await).await {
            return result;
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 1..40 {
            let step = FIRST_BACKOFF
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            let d = backoff(attempt);
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
        let samples: std::collections::HashSet<Duration> = (0..20).map(|_| backoff(5)).collect();
        assert!(samples.len() > 1, "no jitter: {samples:?}");
    }
}
