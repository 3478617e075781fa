//! The contract between the pipeline and a table format: [`TableSink`].
//!
//! # Contract
//!
//! - **Atomicity.** [`TableSink::apply`] makes one [`ChangeSet`] and its checkpoint visible in ONE
//!   atomic commit of the table format (a Delta version, an Iceberg snapshot, a Hudi instant).
//!   Readers see all of it or none of it; a crash at any point leaves the table at the previous
//!   commit, and files written by the failed attempt are never referenced.
//! - **Checkpoint.** The commit stores `changes.checkpoint` merged with the previous one (next
//!   Kafka offset per topic-partition). [`TableSink::committed_checkpoint`] reads it back, and
//!   the pipeline resumes every topic-partition there, so a restart neither skips nor repeats.
//! - **Idempotence.** If the table's checkpoint already covers `changes.checkpoint`,
//!   `apply` changes nothing and returns [`CommitOutcome::AlreadyCommitted`]. Upserts and deletes
//!   are by key, so a set applied twice by some other route still leaves the same rows.
//! - **Semantics of a change set**, in this order: if `truncate`, remove every row; remove the
//!   rows whose key is in `deletes` or `upserts`; add `upserts`. A cell marked in
//!   `upsert_unchanged` keeps the value the table held for that key, or gets the column default
//!   (else null) when the key had no row or `ignore_table_values` marks it.
//! - **Ordering.** `apply` is called with change sets in capture order; a sink must not reorder
//!   commits. Within a set, keys are distinct.
//! - **Schema.** The first `apply` creates the table from `changes.schema` with primary key
//!   `changes.key_columns`. Later sets may carry a wider schema (new columns, widened types; see
//!   [`crate::schema`]): the sink evolves the table in the same commit where the format allows,
//!   fills existing rows of new columns with the column default, and rejects anything else with
//!   [`crate::Error::IncompatibleSchema`].
//! - **Errors.** After an error the sink's state is the last successful commit; the pipeline may
//!   call `apply` again with the same set (for example after a commit conflict), and must call
//!   [`TableSink::committed_checkpoint`] before resuming from anything else.

use arrow_schema::SchemaRef;
use async_trait::async_trait;

use crate::error::Result;
use crate::fold::ChangeSet;
use crate::model::{Checkpoint, TableId};

mod jsonl;
pub mod maintenance;
mod memory;
mod routed;
pub mod upsert;

pub use jsonl::JsonlWarehouse;
pub use memory::{MemTable, MemoryWarehouse};
pub use routed::RoutedWarehouse;

/// A table's schema and primary key as the sink stores them.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Arrow schema of the rows.
    pub schema: SchemaRef,
    /// Primary-key columns.
    pub key_columns: Vec<String>,
}

/// What [`TableSink::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new table version was committed.
    Committed {
        /// The format's version / snapshot id / instant of the commit.
        version: String,
        /// Rows written or rewritten.
        rows_written: u64,
        /// Rows removed.
        rows_deleted: u64,
    },
    /// The table already holds this checkpoint; nothing was done.
    AlreadyCommitted,
}

/// One table of one format. See the [module docs](self) for the contract.
#[async_trait]
pub trait TableSink: Send {
    /// The table.
    fn table(&self) -> &TableId;

    /// The table's schema and key, or `None` when it does not exist yet.
    async fn schema(&mut self) -> Result<Option<TableSchema>>;

    /// The checkpoint of the latest commit, or `None` when the table has none.
    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>>;

    /// Applies one change set with its checkpoint as one atomic commit.
    async fn apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome>;
}

#[async_trait]
impl<S: TableSink + ?Sized> TableSink for Box<S> {
    fn table(&self) -> &TableId {
        (**self).table()
    }
    async fn schema(&mut self) -> Result<Option<TableSchema>> {
        (**self).schema().await
    }
    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        (**self).committed_checkpoint().await
    }
    async fn apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        (**self).apply(changes).await
    }
}

#[async_trait]
impl<S: TableSink + ?Sized> TableSink for &mut S {
    fn table(&self) -> &TableId {
        (**self).table()
    }
    async fn schema(&mut self) -> Result<Option<TableSchema>> {
        (**self).schema().await
    }
    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        (**self).committed_checkpoint().await
    }
    async fn apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        (**self).apply(changes).await
    }
}

/// Opens the sinks of one format in one place (a warehouse path, a catalog).
#[async_trait]
pub trait Warehouse: Send + Sync {
    /// The sink of `table` (whether or not the table exists yet).
    async fn open(&self, table: &TableId) -> Result<Box<dyn TableSink>>;
}

#[doc(hidden)]
pub use upsert::BeforeCommitHook;
