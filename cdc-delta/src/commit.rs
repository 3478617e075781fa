//! The Delta commit of a staged attempt: the actions with one `txn` per source topic-partition
//! and the table's whole checkpoint in `commitInfo`, written as the next version of the log
//! only if no other writer took that version (the engine then loads the table again and redoes
//! the change set on the new version).
//!
//! The commit is written with delta-rs's log store, but not through its `CommitBuilder`: that
//! rebuilds the snapshot's list of every file after each commit, a cost that grows with the
//! table. The driver's own [`FileIndex`](crate::files::FileIndex) takes the commit's actions
//! instead, and log checkpoints and expired-log cleanup run here at the table's intervals.

use cdc_core::sink::upsert::Committed;
use deltalake::kernel::transaction::{CommitData, TransactionError, PROTOCOL};
use deltalake::kernel::{Action, Transaction};
use deltalake::logstore::{CommitOrBytes, LogStoreRef};
use deltalake::protocol::checkpoints::{cleanup_expired_logs_for, create_checkpoint};
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt;
use deltalake::DeltaTableError;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use crate::error::Result;
use crate::schema;
use crate::table::{app_id, Loaded, TableLocation, CHECKPOINT_COMMIT_INFO};
use crate::write::Staged;

/// Expired log entries are looked for after one commit in this many.
const CLEANUP_EVERY: u64 = 100;

impl TableLocation {
    /// Commits the staged actions as a `MERGE` with a `txn` per source topic-partition and the
    /// whole checkpoint in `commitInfo`, as the version after the one the attempt read.
    ///
    /// Returns the table as the commit left it, for the next attempt.
    pub(crate) async fn commit_staged(&self, s: Staged) -> Result<(Committed, Loaded)> {
        self.commit_as(s, merge()).await
    }

    /// Commits what [`crate::optimize`] staged: an `OPTIMIZE` that keeps the checkpoint.
    pub(crate) async fn commit_optimized(&self, s: Staged) -> Result<(Committed, Loaded)> {
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: i64::try_from(self.config.target_file_size).unwrap_or(i64::MAX),
        };
        self.commit_as(s, operation).await
    }

    async fn commit_as(&self, s: Staged, operation: DeltaOperation) -> Result<(Committed, Loaded)> {
        let Staged {
            mut state,
            actions,
            offsets,
            checkpoint,
            rows_written,
            rows_deleted,
        } = s;
        let now = now_millis();
        let txns = offsets
            .offsets
            .iter()
            .flat_map(|(topic, parts)| {
                parts.iter().map(move |(p, next)| {
                    Transaction::new_with_last_update(app_id(topic, *p), *next, Some(now))
                })
            })
            .collect();
        let metadata = HashMap::from([(
            CHECKPOINT_COMMIT_INFO.to_string(),
            serde_json::Value::String(checkpoint.to_json()),
        )]);
        let data = CommitData::new(actions, operation, metadata, txns);
        let snapshot = state
            .table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        PROTOCOL
            .can_commit(snapshot, &data.actions, &data.operation)
            .map_err(|e| self.delta_err("checking the protocol")(e.into()))?;
        let version = state.version + 1;
        self.write_commit(&state.table.log_store(), version, &data)
            .await?;

        Arc::make_mut(&mut state.files).apply(&data.actions);
        state.version = version;
        state.checkpoint = checkpoint;
        if data
            .actions
            .iter()
            .any(|a| matches!(a, Action::Metadata(_)))
        {
            // The new schema lives in the delta-rs snapshot: load it (rare, so the cost of
            // listing the files once is fine).
            state
                .table
                .update_incremental(Some(version))
                .await
                .map_err(self.delta_err("loading the evolved schema"))?;
            let snapshot = state
                .table
                .snapshot()
                .map_err(self.delta_err("reading the snapshot"))?;
            state.logical = Arc::new(schema::logical_schema(&snapshot.schema())?);
        }
        self.maintain_log(&mut state, version).await;
        let committed = Committed {
            version: version.to_string(),
            rows_written,
            rows_deleted,
        };
        Ok((committed, state))
    }

    /// Writes `data` as log entry `version`; fails as a conflict when the version exists.
    async fn write_commit(
        &self,
        log_store: &LogStoreRef,
        version: u64,
        data: &CommitData,
    ) -> Result<()> {
        let err = |e: TransactionError| self.delta_err("committing")(DeltaTableError::from(e));
        let bytes = data.get_bytes().map_err(err)?;
        let operation_id = Uuid::new_v4();
        // As delta-rs does: stores with conditional puts take the bytes, the others commit by
        // renaming a temporary file that must not exist yet.
        let entry = if ["DefaultLogStore", "LakeFSLogStore"].contains(&log_store.name().as_str()) {
            CommitOrBytes::LogBytes(bytes)
        } else {
            let name = format!("_commit_{}.json.tmp", Uuid::new_v4());
            let path = Path::from_iter(["_delta_log", name.as_str()]);
            log_store
                .object_store(Some(operation_id))
                .put(&path, bytes.into())
                .await
                .map_err(|e| self.delta_err("writing the commit")(e.into()))?;
            CommitOrBytes::TmpCommit(path)
        };
        match log_store
            .write_commit_entry(version, entry.clone(), operation_id)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(abort) = log_store
                    .abort_commit_entry(version, entry, operation_id)
                    .await
                {
                    tracing::warn!(table = %self.table, error = %abort, "removing an unused commit file");
                }
                Err(err(e))
            }
        }
    }

    /// A log checkpoint every `delta.checkpointInterval` commits (see
    /// [`DEFAULT_CHECKPOINT_INTERVAL`]) and expired-log cleanup
    /// every [`CLEANUP_EVERY`]. Both only make later loads cheaper, so a failure is a warning,
    /// not a failed commit. A checkpoint loads the table at `version` (as writing it needs
    /// every file anyway), which also brings the kept delta-rs table up to date.
    async fn maintain_log(&self, state: &mut Loaded, version: u64) {
        let Ok(snapshot) = state.table.snapshot() else {
            return;
        };
        let config = snapshot.table_config();
        let set = snapshot
            .metadata()
            .configuration()
            .contains_key(CHECKPOINT_INTERVAL);
        let (interval, cleanup) = (
            match set {
                true => config.checkpoint_interval().get(),
                false => DEFAULT_CHECKPOINT_INTERVAL,
            },
            config.enable_expired_log_cleanup(),
        );
        let retention = config.log_retention_duration().as_millis() as i64;
        if (version + 1).is_multiple_of(interval) {
            let checkpointed = async {
                state.table.update_incremental(Some(version)).await?;
                create_checkpoint(&state.table, None).await
            };
            if let Err(e) = checkpointed.await {
                tracing::warn!(table = %self.table, version, error = %e, "writing a log checkpoint");
            }
        }
        if cleanup && version % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            let log_store = state.table.log_store();
            let cutoff = now_millis() - retention;
            if let Err(e) =
                cleanup_expired_logs_for(version, log_store.as_ref(), cutoff, None).await
            {
                tracing::warn!(table = %self.table, version, error = %e, "cleaning up the log");
            }
        }
    }
}

/// The table property that sets how many commits go between log checkpoints.
const CHECKPOINT_INTERVAL: &str = "delta.checkpointInterval";

/// Commits between log checkpoints of a table that does not set [`CHECKPOINT_INTERVAL`]:
/// Delta's own default (Spark's). delta-rs defaults to 100, which leaves a restarted stream
/// reading up to 99 commit files (on S3, a request each) before its first commit.
pub(crate) const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10;

/// The operation cdc-lake's commits record.
fn merge() -> DeltaOperation {
    DeltaOperation::Merge {
        predicate: None,
        merge_predicate: None,
        matched_predicates: vec![],
        not_matched_predicates: vec![],
        not_matched_by_source_predicates: vec![],
    }
}

/// Milliseconds since the epoch (0 before it).
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
