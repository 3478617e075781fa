//! Completing a staged instant: unless another writer got in the way (then the attempt is
//! undone and the engine redoes it on the new table state), the commit metadata (write stats
//! per partition, the Avro schema, the table's whole checkpoint and its Arrow schema) completes
//! the instant; the table state moves on and the cleaner runs.

use std::collections::BTreeMap;

use cdc_core::sink::upsert::Committed;

use crate::clean_instant::CleanPlan;
use crate::error::{HudiSinkError, Result};
use crate::instant::Pending;
use crate::lock::CommitLock;
use crate::table::{
    FileGroup, FileVersion, Latest, TableAt, TableState, ARROW_SCHEMA_KEY, AVRO_SCHEMA_KEY,
    CHECKPOINT_KEY,
};
use crate::timeline::{CommitMetadata, Instant, State, WriteStat, CLEAN};
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
            false => replaced_ids(&s.clustered),
        };
        let meta = commit_metadata(&s, &replaced);
        s.pending.complete(&self.store, &meta, lock).await?;
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
    /// (or started within `retain_hours`) can read (Hudi's KEEP_LATEST_COMMITS policy), as a
    /// `clean` instant. Failures are logged, never returned: the commit is done, the state
    /// still knows every version not deleted, and the next clean tries again. The oldest
    /// commit kept readable.
    async fn clean(&self, state: &mut TableState) -> Option<String> {
        let cfg = &self.config;
        if !crate::clean::clean_due(state, cfg.clean_every) {
            return None;
        }
        let earliest = crate::clean::earliest_retained(
            state,
            cfg.commits_retained,
            cfg.retain_hours,
            chrono::Utc::now(),
        )?;
        let doomed = crate::clean::doomed(state, &earliest);
        if doomed.is_empty() {
            return Some(earliest);
        }
        if let Err(e) = self.clean_instant(state, doomed, &earliest).await {
            tracing::warn!(table = %self.table, error = %e, "cleaning failed; retried after the next commit");
        }
        Some(earliest)
    }

    /// One `clean` instant: the plan in flight, the files deleted, the metadata completing it
    /// (see [`crate::clean_instant`]). A failed delete undoes the instant (the files already
    /// gone are out of the state; the next clean plans the rest).
    async fn clean_instant(
        &self,
        state: &mut TableState,
        doomed: Vec<(String, usize)>,
        earliest: &str,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let root = self.location.trim_end_matches('/');
        let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, cut) in &doomed {
            for v in state.versions.get(id).into_iter().flatten().take(*cut) {
                let partition = v.path.rsplit_once('/').map_or("", |(p, _)| p);
                let full = format!("{root}/{}", v.path);
                files.entry(partition.to_string()).or_default().push(full);
            }
        }
        let last = state.timeline.completed_writes().next_back();
        let plan = CleanPlan {
            instant: crate::timeline::next_instant_time(
                state.timeline.last_time(),
                chrono::Utc::now(),
            ),
            earliest_retained: earliest.to_string(),
            last_completed: last.map(|i| i.time.clone()).unwrap_or_default(),
            files,
        };
        let body = bytes::Bytes::from(plan.plan_bytes());
        let pending =
            Pending::start_with(&self.store, &plan.instant, CLEAN, &self.config, body).await?;
        let store = self.store.clone();
        let deleted = crate::clean::delete_versions(state, doomed, |v| {
            let store = store.clone();
            async move { store.delete_at(&v.location, &v.path).await }
        })
        .await;
        if let Err(e) = deleted {
            pending.undo(&self.store, &[]).await?;
            return Err(e);
        }
        let all: Vec<String> = plan.files.values().flatten().cloned().collect();
        let took = started.elapsed().as_millis() as i64;
        let meta = bytes::Bytes::from(plan.metadata_bytes(&all, took));
        pending.complete_with(&self.store, meta, None).await?;
        state.timeline.instants.push(Instant {
            time: plan.instant,
            action: CLEAN.to_string(),
            state: State::Completed,
        });
        Ok(())
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
        partition_to_replace_file_ids: (s.truncate || !replaced.is_empty())
            .then(|| replaced.clone()),
        compacted: false,
        extra_metadata: BTreeMap::from([
            (AVRO_SCHEMA_KEY.to_string(), s.avro.clone()),
            (CHECKPOINT_KEY.to_string(), s.checkpoint.to_json()),
            (
                ARROW_SCHEMA_KEY.to_string(),
                serde_json::to_string(s.merged.as_ref()).expect("schemas serialise"),
            ),
        ]),
        operation_type: match (s.truncate, s.clustered.is_empty()) {
            (true, _) => "INSERT_OVERWRITE_TABLE".into(),
            (false, false) => "CLUSTER".into(),
            (false, true) => "UPSERT".into(),
        },
    }
}

/// The file ids of `live` (what a truncate or a clustering replaces), by partition.
fn replaced_ids(live: &[FileGroup]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in live {
        m.entry(g.partition.clone())
            .or_default()
            .push(g.file_id.clone());
    }
    m
}
