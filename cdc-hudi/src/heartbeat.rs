//! Heartbeats of pending instants (`.hoodie/.heartbeat/<instant>`, as Hudi's own writers keep
//! them): a writer creates one before planning an instant, rewrites it every
//! [`HudiSinkConfig::heartbeat_interval_ms`](crate::HudiSinkConfig::heartbeat_interval_ms)
//! while it writes, and deletes it after completing the instant. The file holds the writer id
//! and the writer's interval in milliseconds, one a line; Hudi's own writers read only its
//! modification time.
//!
//! A pending instant is rolled back only when its heartbeat has expired (not refreshed for
//! [`TOLERABLE_MISSES`] intervals, or missing) or it belongs to our own writer id (a restarted
//! pipeline rolls back its crashed predecessor at once). Another writer's instant with a live
//! heartbeat is a conflict, never a deletion.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::files::{self, TableStore, HOODIE_DIR};

/// Directory of the heartbeat files.
pub const HEARTBEAT_DIR: &str = ".heartbeat";
/// Refreshes a heartbeat may miss before it counts as expired (Hudi's
/// `hoodie.client.heartbeat.tolerable.misses` default).
pub const TOLERABLE_MISSES: u32 = 2;

/// Path of an instant's heartbeat, relative to the table root.
pub fn path(instant: &str) -> String {
    files::join(&files::join(HOODIE_DIR, HEARTBEAT_DIR), instant)
}

/// Keeps the heartbeat of one pending instant fresh until [`Heartbeat::stop`] or drop.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    store: TableStore,
    path: String,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Creates the heartbeat of `instant` and refreshes it every `interval` in the background;
    /// `None` when `instant` already has one (another writer picked the same instant time).
    pub async fn start(
        store: &TableStore,
        instant: &str,
        writer_id: &str,
        interval: Duration,
    ) -> Result<Option<Heartbeat>> {
        let path = path(instant);
        let body = Bytes::from(format!("{writer_id}\n{}\n", interval.as_millis()));
        if !store.create(&path, body.clone()).await? {
            return Ok(None);
        }
        let (bg_store, bg_path) = (store.clone(), path.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = bg_store.put(&bg_path, body.clone(), false).await {
                    tracing::warn!(error = %e, "refreshing a heartbeat failed");
                }
            }
        });
        Ok(Some(Heartbeat {
            store: store.clone(),
            path,
            task,
        }))
    }

    /// Stops refreshing and deletes the heartbeat (after the instant completed or was undone).
    pub async fn stop(&self) -> Result<()> {
        self.task.abort();
        self.store.delete(&self.path).await
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What an instant's heartbeat says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Beat {
    /// Writer id (empty when the file names none, as Hudi's own writers leave it).
    pub writer_id: String,
    /// Whether it was refreshed recently enough.
    pub live: bool,
}

/// Reads the heartbeat of `instant`; `None` when there is none. A heartbeat naming no interval
/// is judged by `default_interval`.
pub(crate) async fn read(
    store: &TableStore,
    instant: &str,
    default_interval: Duration,
    now: DateTime<Utc>,
) -> Result<Option<Beat>> {
    let Some((body, modified)) = store.get_with_modified(&path(instant)).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&body);
    let mut lines = text.lines();
    let writer_id = lines.next().unwrap_or("").trim().to_string();
    let interval = lines
        .next()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .map_or(default_interval, Duration::from_millis);
    Ok(Some(Beat {
        writer_id,
        live: is_live(modified, interval, now),
    }))
}

/// Whether a heartbeat last written at `modified` is still live at `now`.
pub(crate) fn is_live(modified: DateTime<Utc>, interval: Duration, now: DateTime<Utc>) -> bool {
    let limit = interval.saturating_mul(TOLERABLE_MISSES);
    let limit = chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX);
    now.signed_duration_since(modified) <= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_after_tolerable_misses() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let i = Duration::from_secs(10);
        assert!(is_live(t0, i, t0 + chrono::Duration::seconds(20)));
        assert!(!is_live(t0, i, t0 + chrono::Duration::seconds(21)));
        assert_eq!(
            path("20260101000000000"),
            ".hoodie/.heartbeat/20260101000000000"
        );
    }
}
