//! The upsert template, once for every format: load the table (or create it) → skip what is
//! committed → merge the schema → index the changed keys → the format stages its files →
//! fail point / hook → commit with the checkpoint → retry on a conflict. A format supplies an
//! [`UpsertDriver`]; [`UpsertSink`] makes any driver a [`TableSink`].

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;

use super::file_keys::FileKeyCache;
use super::hooks::{FailPoint, HookState, TestHooks};
use super::keys::ChangedKeys;
use super::retry::RetryPolicy;
use crate::error::{Error, Result};
use crate::fold::ChangeSet;
use crate::model::{Checkpoint, TableId};
use crate::schema::merge_schemas;
use crate::sink::{CommitOutcome, TableSchema, TableSink};

/// A loaded table version as the template needs it.
#[derive(Debug, Clone)]
pub struct TableView {
    /// The table's logical schema (`None` for a table created but never written).
    pub schema: Option<SchemaRef>,
    /// Its primary key.
    pub key_columns: Vec<String>,
    /// The checkpoint of its latest commit.
    pub checkpoint: Checkpoint,
}

/// One attempt at a change set, as the template hands it to [`UpsertDriver::stage`].
#[derive(Debug)]
pub struct Attempt<'a, S> {
    /// The change set.
    pub changes: &'a ChangeSet,
    /// The table version the attempt builds on.
    pub state: S,
    /// The table's schema before the change set.
    pub current: Option<SchemaRef>,
    /// The table's schema after it (the current one merged with the change set's).
    pub merged: SchemaRef,
    /// The change set's keys in the merged schema.
    pub keys: Arc<ChangedKeys>,
    /// The table's whole checkpoint after the commit.
    pub checkpoint: Checkpoint,
}

impl<S> Attempt<'_, S> {
    /// Whether the schema changes in this commit.
    pub fn evolved(&self) -> bool {
        self.current.as_ref().is_some_and(|c| **c != *self.merged)
    }
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The format's version / snapshot id / instant.
    pub version: String,
    /// Rows written (upserts).
    pub rows_written: u64,
    /// Rows deleted.
    pub rows_deleted: u64,
}

/// The per-sink state of the template: retry policy, test hooks, and what the process knows
/// of the keys in the table's files.
#[derive(Debug, Clone)]
pub struct CommitControl {
    retry: RetryPolicy,
    hooks: HookState,
    file_keys: Arc<FileKeyCache>,
}

impl CommitControl {
    /// Commits retried by `retry`, with the test hooks `hooks` (off by default).
    pub fn new(retry: RetryPolicy, hooks: TestHooks) -> Self {
        CommitControl {
            retry,
            hooks: HookState::new(hooks),
            file_keys: Arc::new(FileKeyCache::new()),
        }
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// What the process knows of the keys in the table's files.
    pub fn file_keys(&self) -> &Arc<FileKeyCache> {
        &self.file_keys
    }
}

/// What a table format does for the template (see [`crate::sink::upsert`]).
#[async_trait]
pub trait UpsertDriver: Send {
    /// A loaded table version.
    type State: Send;
    /// What an attempt wrote, ready to commit.
    type Staged: Send;
    /// The format's error.
    type Error: From<Error> + Into<Error> + std::fmt::Display + Send + 'static;

    /// The table.
    fn table(&self) -> &TableId;

    /// Retry policy and test hooks.
    fn control(&mut self) -> &mut CommitControl;

    /// The table's latest version, `None` when there is no table yet.
    async fn load_table(&mut self) -> Result<Option<Self::State>, Self::Error>;

    /// Creates the table for its first change set (or takes the one another writer created
    /// meanwhile) and loads it.
    async fn create_table(&mut self, changes: &ChangeSet) -> Result<Self::State, Self::Error>;

    /// Schema, key and checkpoint of a loaded version.
    fn view(&self, state: &Self::State) -> Result<TableView, Self::Error>;

    /// Writes the files of one attempt: new data files, deletes, rewrites.
    async fn stage(
        &mut self,
        attempt: Attempt<'_, Self::State>,
    ) -> Result<Self::Staged, Self::Error>;

    /// Commits what [`UpsertDriver::stage`] wrote, with the attempt's checkpoint, if the table
    /// is still at the version it was staged on; else a conflict error, its files undone.
    async fn commit(&mut self, staged: Self::Staged) -> Result<Committed, Self::Error>;

    /// Every live row of `state` whose key (the first columns of the table's key, `keys`' own
    /// key) is one of `keys`' upserts, or with `every_row` every live row, in `keys`' schema:
    /// what a shape that derives its change set from the rows a table holds reads (see
    /// [`crate::shape::history`]). Formats answer with [`super::lookup_rows`] over the files
    /// [`UpsertDriver::stage`] would read (every file for `every_row`).
    async fn lookup(
        &mut self,
        _state: &Self::State,
        _keys: Arc<ChangedKeys>,
        _every_row: bool,
    ) -> Result<RecordBatch, Self::Error> {
        Err(Error::sink(self.table(), "this format cannot look up a table's rows").into())
    }

    /// Whether `error` means another writer committed first (the attempt is redone).
    fn is_conflict(error: &Self::Error) -> bool;

    /// Forgets what the driver cached of the table (after any error).
    fn reset(&mut self) {}
}

/// Applies `changes` through `driver`: attempts, retried on conflicts by the driver's policy.
pub async fn apply<D: UpsertDriver>(
    driver: &mut D,
    changes: &ChangeSet,
) -> Result<CommitOutcome, D::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = attempt_once(driver, changes).await;
        if result.is_err() {
            driver.reset();
        }
        match result {
            Err(e) if D::is_conflict(&e) => {
                let table = driver.table().clone();
                let retry = driver.control().retry.clone();
                if let Some(end) = retry.settle_conflict(&table, attempt, e).await {
                    return Err(end);
                }
            }
            other => return other,
        }
    }
}

async fn attempt_once<D: UpsertDriver>(
    driver: &mut D,
    changes: &ChangeSet,
) -> Result<CommitOutcome, D::Error> {
    let table = driver.table().clone();
    let state = match driver.load_table().await? {
        Some(s) => s,
        None => driver.create_table(changes).await?,
    };
    let view = driver.view(&state)?;
    if !view.checkpoint.is_empty() && changes.checkpoint.is_covered_by(&view.checkpoint) {
        return Ok(CommitOutcome::AlreadyCommitted);
    }
    changes.check_not_stale(&view.checkpoint)?;
    let merged: SchemaRef = match &view.schema {
        Some(current) => Arc::new(merge_schemas(&table, current, &changes.schema)?),
        None => changes.schema.clone(),
    };
    let resolved;
    let changes = match &changes.history {
        None => changes,
        Some(history) => {
            let keys = history.lookup_keys(changes, &merged)?;
            let every_row = history.ends_every_version();
            let versions = driver.lookup(&state, Arc::new(keys), every_row).await?;
            resolved = history.resolve(changes, &versions)?;
            &resolved
        }
    };
    let file_keys = driver.control().file_keys.clone();
    let keys =
        Arc::new(ChangedKeys::new(changes, &merged, &view.key_columns)?.with_file_keys(file_keys));
    let mut checkpoint = view.checkpoint;
    checkpoint.merge(&changes.checkpoint);
    let attempt = Attempt {
        changes,
        state,
        current: view.schema,
        merged,
        keys,
        checkpoint,
    };
    let staged = driver.stage(attempt).await?;
    driver
        .control()
        .hooks
        .check(&table, FailPoint::AfterDataFiles)?;
    if let Some(hook) = driver.control().hooks.before_commit() {
        (hook.0)().await;
    }
    let committed = driver.commit(staged).await?;
    driver.control().hooks.committed();
    driver
        .control()
        .hooks
        .check(&table, FailPoint::AfterCommit)?;
    tracing::debug!(%table, version = committed.version, rows = committed.rows_written, deleted = committed.rows_deleted, "commit");
    Ok(CommitOutcome::Committed {
        version: committed.version,
        rows_written: committed.rows_written,
        rows_deleted: committed.rows_deleted,
    })
}

/// A [`TableSink`] of any [`UpsertDriver`]; derefs to the driver for its own methods.
#[derive(Debug)]
pub struct UpsertSink<D>(D);

impl<D> UpsertSink<D> {
    /// The sink of `driver`.
    pub fn new(driver: D) -> Self {
        UpsertSink(driver)
    }
}

impl<D> Deref for UpsertSink<D> {
    type Target = D;
    fn deref(&self) -> &D {
        &self.0
    }
}

impl<D> DerefMut for UpsertSink<D> {
    fn deref_mut(&mut self) -> &mut D {
        &mut self.0
    }
}

impl<D: UpsertDriver> UpsertSink<D> {
    async fn view(&mut self) -> Result<Option<TableView>> {
        let loaded = match self.0.load_table().await {
            Ok(l) => l,
            Err(e) => {
                self.0.reset();
                return Err(e.into());
            }
        };
        loaded
            .map(|state| self.0.view(&state).map_err(Into::into))
            .transpose()
    }
}

#[async_trait]
impl<D: UpsertDriver> TableSink for UpsertSink<D> {
    fn table(&self) -> &TableId {
        self.0.table()
    }

    async fn schema(&mut self) -> Result<Option<TableSchema>> {
        Ok(self.view().await?.and_then(|v| {
            v.schema.map(|schema| TableSchema {
                schema,
                key_columns: v.key_columns,
            })
        }))
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        Ok(self.view().await?.map(|v| v.checkpoint))
    }

    async fn apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        apply(&mut self.0, changes).await.map_err(Into::into)
    }
}
