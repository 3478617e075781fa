//! Completing a staged instant: unless another writer got in the way (then the attempt is
//! undone and the engine redoes it on the new table state), the commit metadata (write stats
//! per partition, the Avro schema, the table's whole checkpoint and its Arrow schema) completes
//! the instant; the table state moves on and the cleaner runs.

use std::collections::BTreeMap;

use cdc_core::sink::upsert::Committed;

use crate::error::{HudiSinkError, Result};
use crate::lock::CommitLock;
use crate::table::{
    FileGroup, FileVersion, Latest, TableAt, TableState, ARROW_SCHEMA_KEY, AVRO_SCHEMA_KEY,
    CHECKPOINT_KEY,
};
use crate::timeline::{CommitMetadata, Instant, State, WriteStat};
use crate::write::Staged;

impl TableAt {
    /// Completes `s`'s instant; the new table state.
    pub(crate) async fn complete(&self, s: Staged) -> Result<(Committed, TableState)> {
        let groups: Vec<FileGroup> = s.written.iter().map(|(_, g)| g.clone()).collect();
        let (instant, action) = (s.pending.instant.clone(), s.pending.action);
        // No other writer may check and complete between our check and our completion.
        let lock = CommitLock::acquire(&self.store, &self.config.writer_id, &instant).await?;
        let conflict = s.pending.conflict(&self.store, &s.state, &groups).await;
        let conflict = match conflict {
            Ok(c) => c,
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        if let Some(message) = conflict {
            lock.release().await;
            s.pending.undo(&self.store, &groups).await?;
            return Err(HudiSinkError::Conflict {
                table: self.table.to_string(),
                instant,
                message,
            });
        }
        let replaced = match s.truncate {
            true => replaced_ids(&s.live),
            false => BTreeMap::new(),
        };
        let meta = commit_metadata(&s, &replaced);
        let completed = s.pending.complete(&self.store, &meta).await;
        lock.release().await;
        completed?;
        let mut state = s.state;
        state.timeline.instants.push(Instant {
            time: instant.clone(),
            action: action.to_string(),
            state: State::Completed,
        });
        for id in replaced.values().flatten() {
            state.groups.remove(id);
            state.replaced.insert(id.clone(), instant.clone());
        }
        for g in groups {
            state
                .versions
                .entry(g.file_id.clone())
                .or_default()
                .push(FileVersion {
                    location: g.location(),
                    path: g.path(),
                    instant: instant.clone(),
                });
            state.groups.insert(g.file_id.clone(), g);
        }
        state.latest = Some(Latest {
            logical: s.merged,
            checkpoint: s.checkpoint,
        });
        // Cleaning keeping everything (`None`) keeps every commit readable: no archival then.
        if let Some(earliest_retained) = self.clean(&mut state).await {
            self.archive_old(&mut state, &earliest_retained).await;
        }
        let committed = Committed {
            version: instant,
            rows_written: s.rows_written,
            rows_deleted: s.rows_deleted,
        };
        Ok((committed, state))
    }

    /// Deletes base files no query as of the last `commits_retained` file-changing commits
    /// (or started within `retain_hours`) can read (Hudi's KEEP_LATEST_COMMITS policy).
    /// Failures are logged, never returned: the commit is done, the state still knows every
    /// version not deleted, and the next clean tries again. The oldest commit kept readable.
    async fn clean(&self, state: &mut TableState) -> Option<String> {
        let cfg = &self.config;
        let earliest = crate::clean::earliest_retained(
            state,
            cfg.commits_retained,
            cfg.retain_hours,
            chrono::Utc::now(),
        )?;
        let doomed = crate::clean::doomed(state, &earliest);
        let store = self.store.clone();
        let result = crate::clean::delete_versions(state, doomed, |v| {
            let store = store.clone();
            async move { store.delete_at(&v.location, &v.path).await }
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(table = %self.table, error = %e, "cleaning failed; retried after the next commit");
        }
        Some(earliest)
    }

    /// Archives the oldest instants once the active timeline is long enough (see
    /// [`crate::archive`]). Like cleaning, a failure is logged and retried after the next
    /// commit.
    async fn archive_old(&self, state: &mut TableState, earliest_retained: &str) {
        let cfg = &self.config;
        let instants = crate::archive::to_archive(
            state,
            cfg.archive_min_commits,
            cfg.archive_max_commits,
            Some(earliest_retained),
        );
        if instants.is_empty() {
            return;
        }
        if let Err(e) = self.archive(state, &instants).await {
            tracing::warn!(table = %self.table, error = %e, "archiving the timeline failed; retried after the next commit");
        }
    }
}

/// The commit metadata of `s`: write stats per partition, the replaced file groups of a
/// truncate, the Avro schema, the table's whole checkpoint and its Arrow schema.
fn commit_metadata(s: &Staged, replaced: &BTreeMap<String, Vec<String>>) -> CommitMetadata {
    let mut stats: BTreeMap<String, Vec<WriteStat>> = BTreeMap::new();
    for (stat, group) in &s.written {
        stats
            .entry(group.partition.clone())
            .or_default()
            .push(stat.clone());
    }
    CommitMetadata {
        partition_to_write_stats: stats,
        partition_to_replace_file_ids: s.truncate.then(|| replaced.clone()),
        compacted: false,
        extra_metadata: BTreeMap::from([
            (AVRO_SCHEMA_KEY.to_string(), s.avro.clone()),
            (CHECKPOINT_KEY.to_string(), s.checkpoint.to_json()),
            (
                ARROW_SCHEMA_KEY.to_string(),
                serde_json::to_string(s.merged.as_ref()).expect("schemas serialise"),
            ),
        ]),
        operation_type: match s.truncate {
            true => "INSERT_OVERWRITE_TABLE".into(),
            false => "UPSERT".into(),
        },
    }
}

/// The file ids a truncate replaces, by partition.
fn replaced_ids(live: &[FileGroup]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in live {
        m.entry(g.partition.clone())
            .or_default()
            .push(g.file_id.clone());
    }
    m
}
