//! The tables a pipeline writes: opened, and a batch's change sets committed, several tables
//! at once. Tables are independent (each its own sink, checkpoint and commits), and a commit on
//! an object store is a chain of round trips: one table after another, a stream over many
//! tables would wait out every chain in turn.

use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{Pipeline, TableState};
use crate::error::{Error, Result};
use crate::fold::ChangeSet;
use crate::model::{Checkpoint, TableId};
use crate::sink::{CommitOutcome, TableSchema, TableSink, Warehouse};

/// Tables opened or committing at once: enough to overlap the round trips of a handful of
/// tables, few enough that the files their commits rewrite stay a bounded amount of memory.
pub(crate) const TABLES_AT_ONCE: usize = 8;

/// A sink just opened, with what its table holds.
type Opened = (TableId, Box<dyn TableSink>, Option<TableSchema>, Checkpoint);

impl Pipeline<'_> {
    pub(super) async fn open_table(&mut self, table: &TableId) -> Result<()> {
        if self.tables.contains_key(table) {
            return Ok(());
        }
        self.open_tables([table.clone()]).await
    }

    /// Opens those of `tables` not open yet, several at once. On an error the others opened
    /// stay open; the first error is returned.
    pub(super) async fn open_tables(
        &mut self,
        tables: impl IntoIterator<Item = TableId>,
    ) -> Result<()> {
        let new: std::collections::BTreeSet<TableId> = (tables.into_iter())
            .filter(|t| !self.tables.contains_key(t))
            .collect();
        // Futures of named functions, gathered first: a lazily mapped iterator's closures
        // make the pipeline's future not provably `Send`.
        let opening: Vec<_> = (new.into_iter())
            .map(|table| open_one(self.warehouse, table))
            .collect();
        let opened: Vec<Result<Opened>> = futures::stream::iter(opening)
            .buffer_unordered(TABLES_AT_ONCE)
            .collect()
            .await;
        let mut first_error = None;
        for o in opened {
            let (table, sink, schema, checkpoint) = match o {
                Ok(o) => o,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let schema = schema.map(|s| self.source_view(&table, &s));
            self.teach_decoder(&table, schema.as_ref())?;
            let state = TableState {
                sink,
                schema,
                checkpoint,
            };
            self.tables.insert(table, state);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Commits each table's change set (several tables at once) and records what each did.
    /// A table whose commit fails does not stop the others; the first error is returned after
    /// all finished, with every commit that landed recorded.
    pub(super) async fn apply_folded(&mut self, folded: Vec<ChangeSet>) -> Result<()> {
        let mut by_table: std::collections::HashMap<TableId, ChangeSet> =
            (folded.into_iter()).map(|c| (c.table.clone(), c)).collect();
        let mut applying = Vec::with_capacity(by_table.len());
        for (table, state) in self.tables.iter_mut() {
            if let Some(changes) = by_table.remove(table) {
                applying.push(apply_one(changes, &mut state.sink));
            }
        }
        let applied: Vec<(ChangeSet, Duration, Result<CommitOutcome>)> =
            futures::stream::iter(applying)
                .buffer_unordered(TABLES_AT_ONCE)
                .collect()
                .await;
        debug_assert!(by_table.is_empty(), "every folded table is open");
        let mut first_error = None;
        for (changes, took, outcome) in applied {
            match outcome {
                Err(e @ Error::StaleBatch { .. }) => {
                    tracing::warn!(error = %e, "batch dropped; reading its partitions again from the table");
                    self.overtaken.push(changes.checkpoint.clone());
                    self.tables.remove(&changes.table);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
                Ok(outcome) => self.record_applied(&changes, took, &outcome),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Records what one table's commit did: metrics, totals, the table's checkpoint and schema.
    fn record_applied(&mut self, changes: &ChangeSet, took: Duration, outcome: &CommitOutcome) {
        let table = &changes.table;
        let mut record = crate::metrics::CommitRecord {
            table,
            committed: false,
            events: changes.events as u64,
            rows_upserted: 0,
            rows_deleted: 0,
            took,
            max_source_ts_ms: changes.max_source_ts_ms,
        };
        if let CommitOutcome::Committed {
            version,
            rows_written,
            rows_deleted,
        } = outcome
        {
            (record.committed, record.rows_upserted, record.rows_deleted) =
                (true, *rows_written, *rows_deleted);
            self.stats.commits += 1;
            self.stats.events_applied += changes.events as u64;
            self.stats.rows_upserted += rows_written;
            self.stats.rows_deleted += rows_deleted;
            self.last_commits.insert(table.clone(), version.clone());
        }
        record.record();
        self.stats.last_source_ts_ms = self.stats.last_source_ts_ms.max(changes.max_source_ts_ms);
        let holds = TableSchema {
            schema: changes.schema.clone(),
            key_columns: changes.key_columns.to_vec(),
        };
        let view = self.source_view(table, &holds);
        let state = self.tables.get_mut(table).expect("opened");
        state.checkpoint.merge(&changes.checkpoint);
        state.schema = Some(view);
    }
}

async fn open_one(warehouse: &dyn Warehouse, table: TableId) -> Result<Opened> {
    let mut sink = warehouse.open(&table).await?;
    let schema = sink.schema().await?;
    let checkpoint = sink.committed_checkpoint().await?.unwrap_or_default();
    Ok((table, sink, schema, checkpoint))
}

async fn apply_one(
    changes: ChangeSet,
    sink: &mut Box<dyn TableSink>,
) -> (ChangeSet, Duration, Result<CommitOutcome>) {
    let started = Instant::now();
    let outcome = sink.apply(&changes).await;
    (changes, started.elapsed(), outcome)
}
