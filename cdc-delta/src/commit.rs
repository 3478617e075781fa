//! The Delta commit of a staged attempt: the actions with one `txn` per source
//! topic-partition and the table's whole checkpoint in `commitInfo`, committed as a `MERGE`
//! so that delta-rs's conflict checker fails it when a concurrent writer changed data (the
//! engine then redoes the change set on the new version).

use cdc_core::sink::upsert::Committed;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::Transaction;
use deltalake::protocol::DeltaOperation;

use crate::error::Result;
use std::sync::Arc;

use crate::schema;
use crate::table::{app_id, Loaded, TableLocation, CHECKPOINT_COMMIT_INFO};
use crate::write::Staged;

/// Expired log entries are looked for after one commit in this many.
const CLEANUP_EVERY: u64 = 100;

impl TableLocation {
    /// Commits the staged actions as a `MERGE` (so delta-rs's conflict checker fails it when a
    /// concurrent writer changed data), with a `txn` per source topic-partition and the whole
    /// checkpoint in `commitInfo`.
    ///
    /// Returns the table as the commit left it (its new snapshot), for the next attempt.
    pub(crate) async fn commit_staged(&self, s: Staged) -> Result<(Committed, Loaded)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .ok();
        let txns = s
            .offsets
            .offsets
            .iter()
            .flat_map(|(topic, parts)| {
                parts.iter().map(move |(p, next)| {
                    Transaction::new_with_last_update(app_id(topic, *p), *next, now)
                })
            })
            .collect();
        let properties = CommitProperties::default()
            .with_metadata([(
                CHECKPOINT_COMMIT_INFO.to_string(),
                serde_json::Value::String(s.checkpoint.to_json()),
            )])
            .with_application_transactions(txns)
            .with_max_retries(0)
            // Expired-log cleanup lists the whole log: once every CLEANUP_EVERY commits, not
            // on each.
            .with_cleanup_expired_logs(Some(
                s.table.version().unwrap_or(0) % CLEANUP_EVERY == CLEANUP_EVERY - 1,
            ));
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: None,
            matched_predicates: vec![],
            not_matched_predicates: vec![],
            not_matched_by_source_predicates: vec![],
        };
        let snapshot = s
            .table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        let finalized = CommitBuilder::from(properties)
            .with_actions(s.actions)
            .build(Some(snapshot), s.table.log_store(), operation)
            .await
            .map_err(self.delta_err("committing"))?;
        let committed = Committed {
            version: finalized.version().to_string(),
            rows_written: s.rows_written,
            rows_deleted: s.rows_deleted,
        };
        let mut table = s.table;
        table.state = Some(finalized.snapshot());
        let snapshot = table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        let logical = Arc::new(schema::logical_schema(&snapshot.schema())?);
        let loaded = Loaded {
            table,
            logical,
            key_columns: s.key_columns,
            checkpoint: s.checkpoint,
        };
        Ok((committed, loaded))
    }
}
