//! The life of one write instant `t` on the timeline: its heartbeat, then `t.commit.requested`
//! and `t.inflight`; before completion the check that no other writer got in the way (and the
//! undo when one did); then `t.commit` with the commit metadata. Readers see an instant only
//! once its completed file exists.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::config::HudiSinkConfig;
use crate::error::{HudiSinkError, Result};
use crate::files::{self, TableStore, HOODIE_DIR};
use crate::heartbeat::Heartbeat;
use crate::lock::CommitLock;
use crate::table::{FileGroup, TableState};
use crate::timeline::{self, CommitMetadata, State, TableProperties, Timeline, WriteStat};

/// Opens once the instant is in flight: an instant's base files are written only then, since
/// a rollback finds them through the instant (reads and merging need not wait for it).
#[derive(Debug, Clone)]
pub(crate) struct InFlight(tokio::sync::watch::Receiver<Option<bool>>);

/// Tells an [`InFlight`] whether the instant went in flight.
pub(crate) type InFlightSender = tokio::sync::watch::Sender<Option<bool>>;

impl InFlight {
    /// A gate, and what opens (`true`) or fails (`false`) it.
    pub fn new() -> (InFlightSender, InFlight) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (tx, InFlight(rx))
    }

    /// A gate open from the start (the instant went in flight before any file was planned).
    pub fn open() -> InFlight {
        InFlight(tokio::sync::watch::channel(Some(true)).1)
    }

    /// Waits until the instant is in flight; an error when it did not go in flight.
    pub async fn wait(&self, table: &str, instant: &str) -> Result<()> {
        let mut rx = self.0.clone();
        match rx.wait_for(Option::is_some).await.map(|s| *s) {
            Ok(Some(true)) => Ok(()),
            _ => Err(HudiSinkError::Conflict {
                table: table.to_string(),
                instant: instant.to_string(),
                message: "the instant did not go in flight; its base files were not written".into(),
            }),
        }
    }
}

/// An instant in flight.
#[derive(Debug)]
pub(crate) struct Pending {
    pub instant: String,
    pub action: &'static str,
    heartbeat: Heartbeat,
}

impl Pending {
    /// Puts instant `instant` in flight. The heartbeat goes first: another writer seeing the
    /// instant pending must find it live. Every file is created only if absent: two writers
    /// that loaded the same table can pick the same instant time, and the later one must not
    /// take over the other's instant (it gets a [`HudiSinkError::Conflict`] and retries).
    pub async fn start(
        store: &TableStore,
        instant: &str,
        action: &'static str,
        config: &HudiSinkConfig,
    ) -> Result<Pending> {
        Self::start_with(store, instant, action, config, Bytes::new()).await
    }

    /// [`Pending::start`] with `plan` in the requested and inflight files (a clean's plan).
    pub async fn start_with(
        store: &TableStore,
        instant: &str,
        action: &'static str,
        config: &HudiSinkConfig,
        plan: Bytes,
    ) -> Result<Pending> {
        let interval = std::time::Duration::from_millis(config.heartbeat_interval_ms);
        let taken = || HudiSinkError::Conflict {
            table: store.table.to_string(),
            instant: instant.to_string(),
            message: "another writer picked the same instant time".into(),
        };
        let heartbeat = Heartbeat::start(store, instant, &config.writer_id, interval)
            .await?
            .ok_or_else(taken)?;
        // Both at once (a round trip each on S3): the heartbeat already claims the instant
        // time, and a timeline holding an instant's inflight file without its requested one
        // reads as that instant pending, as with both.
        let create = |s: State| {
            let name = files::join(HOODIE_DIR, &timeline::file_name(instant, action, s));
            let plan = plan.clone();
            async move { store.create(&name, plan).await }
        };
        let (requested, inflight) =
            futures::join!(create(State::Requested), create(State::Inflight));
        if !(requested? && inflight?) {
            // Ours is the heartbeat, not the instant: a crashed writer's files.
            heartbeat.stop().await?;
            return Err(taken());
        }
        Ok(Pending {
            instant: instant.to_string(),
            action,
            heartbeat,
        })
    }

    /// Whether another writer got in the way: it completed a write after this attempt loaded
    /// the table, or rolled this instant back. (A check, not a lock: two writers checking at
    /// the same moment can both pass; Hudi itself needs a lock provider for that.)
    pub async fn conflict(
        &self,
        store: &TableStore,
        state: &TableState,
        written: &[FileGroup],
    ) -> Result<Option<String>> {
        // The three looks go out at once (each is a round trip on S3).
        let inflight = timeline::file_name(&self.instant, self.action, State::Inflight);
        let inflight = files::join(HOODIE_DIR, &inflight);
        // Instant files sort by time: list only those after the last one we saw.
        let after = format!("{}.~", state.timeline.last_time().unwrap_or("0"));
        let (there, missing, names) = futures::join!(
            store.exists(&inflight),
            missing_files(store, written),
            store.list_names_after(HOODIE_DIR, &after)
        );
        if !there? {
            return Ok(Some("another writer rolled this instant back".into()));
        }
        if let Some(path) = missing? {
            return Ok(Some(format!(
                "base file {path} of this instant vanished (another writer rolled it back)"
            )));
        }
        let newer = Timeline::from_names(names?.iter().map(String::as_str));
        let other = newer
            .completed_writes()
            .find(|i| i.time != self.instant && !state.timeline.is_completed_write(&i.time))
            .map(|i| format!("another writer completed instant {} meanwhile", i.time));
        Ok(other)
    }

    /// Undoes the attempt: its base files, then its instant files, then its heartbeat.
    pub async fn undo(self, store: &TableStore, written: &[FileGroup]) -> Result<()> {
        for g in written {
            store.delete_at(&g.location(), &g.path()).await?;
        }
        for s in [State::Inflight, State::Requested] {
            let name = timeline::file_name(&self.instant, self.action, s);
            store.delete(&files::join(HOODIE_DIR, &name)).await?;
        }
        self.heartbeat.stop().await
    }

    /// Completes the instant with `meta`, then gives up `lock`.
    pub async fn complete(
        self,
        store: &TableStore,
        meta: &CommitMetadata,
        lock: CommitLock,
    ) -> Result<()> {
        let body = serde_json::to_vec_pretty(meta).expect("metadata serialises");
        self.complete_with(store, Bytes::from(body), Some(lock))
            .await
    }

    /// Completes the instant with `body` as its completed file, then deletes the heartbeat
    /// and gives up `lock` (if any) at once: each is a round trip on S3, and neither waits on
    /// the other once the instant is complete.
    pub async fn complete_with(
        self,
        store: &TableStore,
        body: Bytes,
        lock: Option<CommitLock>,
    ) -> Result<()> {
        let completed = timeline::file_name(&self.instant, self.action, State::Completed);
        let created = store
            .create_once(&files::join(HOODIE_DIR, &completed), body)
            .await;
        let stop = async {
            // Not completed: the heartbeat stays (the instant is still ours to retry or undo).
            if created.is_ok() {
                if let Err(e) = self.heartbeat.stop().await {
                    // It expires on its own.
                    tracing::warn!(table = %store.table, error = %e, "deleting a heartbeat failed");
                }
            }
        };
        let release = async {
            if let Some(lock) = lock {
                lock.release().await;
            }
        };
        futures::join!(stop, release);
        created
    }
}

/// The first of `written`'s base files that is not in the store.
async fn missing_files(store: &TableStore, written: &[FileGroup]) -> Result<Option<String>> {
    let checks: Vec<_> = written
        .iter()
        .map(|g| {
            let (store, location, path) = (store.clone(), g.location(), g.path());
            async move {
                let there = store.exists_at(&location, &path).await?;
                Ok::<_, HudiSinkError>((!there).then_some(path))
            }
        })
        .collect();
    Ok(files::all_at_once(checks)
        .await?
        .into_iter()
        .flatten()
        .next())
}

/// Partition metadata of new partitions (Spark discovers partitions by it). A non-partitioned
/// table has it at the root (depth 0): Hive's and Athena's `HoodieROTablePathFilter` and
/// Spark's listing need it to pick the latest base files.
pub(crate) async fn write_partition_metadata(
    store: &TableStore,
    props: &TableProperties,
    instant: &str,
    written: &[(WriteStat, FileGroup)],
    live: &[FileGroup],
) -> Result<()> {
    if props.partition_fields.is_empty() {
        // A table with live file groups had it written before its first commit completed.
        if live.is_empty() && !store.exists(files::PARTITION_METADATA).await? {
            let text = format!("#partition metadata\ncommitTime={instant}\npartitionDepth=0\n");
            store
                .put(files::PARTITION_METADATA, Bytes::from(text), false)
                .await?;
        }
        return Ok(());
    }
    let new: BTreeMap<&str, &object_store::path::Path> = written
        .iter()
        .filter(|(_, g)| !live.iter().any(|l| l.partition == g.partition))
        .map(|(_, g)| (g.partition.as_str(), &g.dir))
        .collect();
    for (p, dir) in new {
        let depth = p.split('/').count();
        let text = format!("#partition metadata\ncommitTime={instant}\npartitionDepth={depth}\n");
        let location = dir.clone().join(files::PARTITION_METADATA);
        object_store::ObjectStoreExt::put(
            store.store.as_ref(),
            &location,
            Bytes::from(text).into(),
        )
        .await
        .map_err(|source| HudiSinkError::Store {
            table: store.table.clone(),
            path: files::join(p, files::PARTITION_METADATA),
            context: "writing",
            source: Box::new(source),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::memory_store as store;

    #[tokio::test]
    async fn a_second_writer_on_the_same_instant_time_is_a_conflict_and_takes_nothing() {
        let store = store();
        let config = HudiSinkConfig::default();
        let t = "20261204201249575";
        let first = Pending::start(&store, t, timeline::COMMIT, &config)
            .await
            .unwrap();
        let second = Pending::start(&store, t, timeline::COMMIT, &config).await;
        assert!(
            matches!(second, Err(HudiSinkError::Conflict { ref instant, .. }) if instant == t),
            "{second:?}"
        );
        // The first writer's heartbeat and instant files are untouched.
        assert!(store.exists(&crate::heartbeat::path(t)).await.unwrap());
        let inflight = timeline::file_name(t, timeline::COMMIT, State::Inflight);
        assert!(store
            .exists(&files::join(HOODIE_DIR, &inflight))
            .await
            .unwrap());
        first.undo(&store, &[]).await.unwrap();
        assert!(!store.exists(&crate::heartbeat::path(t)).await.unwrap());
    }

    /// A completion whose answer was lost lands on the retry that finds its own file; a
    /// completed file with other contents is an error.
    #[tokio::test]
    async fn a_completion_already_there_is_ours_only_with_our_bytes() {
        let store = store();
        let rel = files::join(HOODIE_DIR, "20261204201249575.commit");
        store.create_once(&rel, Bytes::from("meta")).await.unwrap();
        store.create_once(&rel, Bytes::from("meta")).await.unwrap();
        let other = store.create_once(&rel, Bytes::from("other")).await;
        assert!(
            matches!(other, Err(HudiSinkError::Store { .. })),
            "{other:?}"
        );
    }

    #[tokio::test]
    async fn base_files_wait_until_the_instant_is_in_flight() {
        assert!(InFlight::open().wait("t", "1").await.is_ok());
        let (tx, gate) = InFlight::new();
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait("t", "1").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        tx.send(Some(true)).unwrap();
        assert!(waiting.await.unwrap().is_ok());
        drop(tx);
        assert!(gate.wait("t", "1").await.is_ok(), "stays open");

        let (tx, gate) = InFlight::new();
        tx.send(Some(false)).unwrap();
        assert!(gate.wait("t", "1").await.is_err());
        let (tx, gate) = InFlight::new();
        drop(tx);
        assert!(gate.wait("t", "1").await.is_err(), "never told");
    }

    #[tokio::test]
    async fn an_instant_left_without_heartbeat_is_not_taken_over() {
        let store = store();
        let config = HudiSinkConfig::default();
        let t = "20261204201249575";
        let requested = timeline::file_name(t, timeline::COMMIT, State::Requested);
        store
            .put(&files::join(HOODIE_DIR, &requested), Bytes::new(), false)
            .await
            .unwrap();
        let taken = Pending::start(&store, t, timeline::COMMIT, &config).await;
        assert!(
            matches!(taken, Err(HudiSinkError::Conflict { .. })),
            "{taken:?}"
        );
        // Our heartbeat is gone again: the crashed writer's instant stays expired.
        assert!(!store.exists(&crate::heartbeat::path(t)).await.unwrap());
    }
}
