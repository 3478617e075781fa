//! The reference sink: a table held in memory that implements the [`TableSink`] contract exactly.
//! Format adapters are tested against what it produces for the same events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use async_trait::async_trait;

use super::upsert::{resolve_upserts, ChangedKeys, Touch};
use super::{CommitOutcome, TableSchema, TableSink, Warehouse};
use crate::error::{Error, Result};
use crate::fold::{encode_keys, key_converter, key_indices, ChangeSet};
use crate::model::{Checkpoint, TableId};
use crate::schema::{evolve_batch, merge_schemas};

/// One table's rows, schema, key and checkpoint.
#[derive(Debug, Clone)]
pub struct MemTable {
    /// Table id.
    pub table: TableId,
    /// Schema.
    pub schema: SchemaRef,
    /// Primary key.
    pub key_columns: Vec<String>,
    /// All rows, in no particular order.
    pub rows: RecordBatch,
    /// Committed checkpoint.
    pub checkpoint: Checkpoint,
    /// Number of commits.
    pub version: u64,
}

impl MemTable {
    /// An empty table created from a change set's schema and key.
    pub fn create(changes: &ChangeSet) -> Self {
        MemTable {
            table: changes.table.clone(),
            schema: changes.schema.clone(),
            key_columns: changes.key_columns.to_vec(),
            rows: RecordBatch::new_empty(changes.schema.clone()),
            checkpoint: Checkpoint::default(),
            version: 0,
        }
    }

    /// Applies a change set per the [`TableSink`] contract.
    pub fn apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        let table = &self.table;
        if !self.checkpoint.is_empty() && changes.checkpoint.is_covered_by(&self.checkpoint) {
            return Ok(CommitOutcome::AlreadyCommitted);
        }
        changes.check_not_stale(&self.checkpoint)?;
        let merged: SchemaRef = Arc::new(merge_schemas(table, &self.schema, &changes.schema)?);
        let existing = if changes.truncate {
            RecordBatch::new_empty(merged.clone())
        } else {
            evolve_batch(table, &self.rows, &merged)?
        };
        let resolved_history;
        let changes = match &changes.history {
            None => changes,
            Some(history) => {
                let keys = history.lookup_keys(changes, &merged)?;
                let every_row = history.ends_every_version();
                let held: Vec<bool> = (keys.find(&existing)?.iter())
                    .map(|t| every_row || t.is_some())
                    .collect();
                let versions =
                    arrow_select::filter::filter_record_batch(&existing, &BooleanArray::from(held))
                        .map_err(|e| Error::arrow(format!("versions in {table}"), e))?;
                resolved_history = history.resolve(changes, &versions)?;
                &resolved_history
            }
        };
        let keys = ChangedKeys::new(changes, &merged, &self.key_columns)?;
        let mut keep = vec![true; existing.num_rows()];
        let mut old_row = vec![None; keys.upserts.num_rows()];
        let mut rows_deleted = 0u64;
        for (i, touch) in keys.find(&existing)?.into_iter().enumerate() {
            match touch {
                None => {}
                Some(Touch::Delete) => {
                    keep[i] = false;
                    rows_deleted += 1;
                }
                Some(Touch::Upsert(j)) => {
                    keep[i] = false;
                    old_row[j] = Some(i);
                }
            }
        }
        let resolved = resolve_upserts(changes, &keys, &existing, &old_row)?;
        let kept = arrow_select::filter::filter_record_batch(&existing, &BooleanArray::from(keep))
            .map_err(|e| Error::arrow(format!("removing rows of {table}"), e))?;
        self.rows = arrow_select::concat::concat_batches(&merged, [&kept, &resolved])
            .map_err(|e| Error::arrow(format!("writing rows of {table}"), e))?;
        self.schema = merged;
        self.checkpoint.merge(&changes.checkpoint);
        self.version += 1;
        Ok(CommitOutcome::Committed {
            version: self.version.to_string(),
            rows_written: resolved.num_rows() as u64,
            rows_deleted,
        })
    }

    /// The rows ordered by primary key.
    pub fn sorted_rows(&self) -> Result<RecordBatch> {
        let keys = key_indices(&self.table, &self.schema, &self.key_columns)?;
        let converter = key_converter(&self.table, &self.schema, &keys)?;
        let encoded = encode_keys(&self.table, &converter, &self.rows, &keys)?;
        let mut order: Vec<u32> = (0..self.rows.num_rows() as u32).collect();
        order.sort_by(|&a, &b| encoded.row(a as usize).cmp(&encoded.row(b as usize)));
        arrow_select::take::take_record_batch(&self.rows, &UInt32Array::from(order))
            .map_err(|e| Error::arrow(format!("sorting {}", self.table), e))
    }
}

/// In-memory tables, shared between the sinks it opens and whoever inspects them.
#[derive(Debug, Clone, Default)]
pub struct MemoryWarehouse {
    tables: Arc<Mutex<BTreeMap<TableId, MemTable>>>,
}

impl MemoryWarehouse {
    /// An empty warehouse.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of one table.
    pub fn table(&self, table: &TableId) -> Option<MemTable> {
        self.tables
            .lock()
            .expect("not poisoned")
            .get(table)
            .cloned()
    }

    /// Ids of all tables.
    pub fn table_ids(&self) -> Vec<TableId> {
        self.tables
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Warehouse for MemoryWarehouse {
    async fn open(&self, table: &TableId) -> Result<Box<dyn TableSink>> {
        Ok(Box::new(MemorySink {
            table: table.clone(),
            tables: self.tables.clone(),
        }))
    }
}

/// The sink of one in-memory table.
#[derive(Debug)]
pub struct MemorySink {
    table: TableId,
    tables: Arc<Mutex<BTreeMap<TableId, MemTable>>>,
}

#[async_trait]
impl TableSink for MemorySink {
    fn table(&self) -> &TableId {
        &self.table
    }

    async fn schema(&mut self) -> Result<Option<TableSchema>> {
        Ok(self
            .tables
            .lock()
            .expect("not poisoned")
            .get(&self.table)
            .map(|t| TableSchema {
                schema: t.schema.clone(),
                key_columns: t.key_columns.clone(),
            }))
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        Ok(self
            .tables
            .lock()
            .expect("not poisoned")
            .get(&self.table)
            .map(|t| t.checkpoint.clone()))
    }

    async fn apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        let mut tables = self.tables.lock().expect("not poisoned");
        // Work on a copy so a failed apply leaves the last commit in place.
        let mut t = tables
            .get(&self.table)
            .cloned()
            .unwrap_or_else(|| MemTable::create(changes));
        let outcome = t.apply(changes)?;
        tables.insert(self.table.clone(), t);
        Ok(outcome)
    }
}
