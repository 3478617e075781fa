//! A batch that touches several tables commits them side by side (on an object store each
//! commit is a chain of round trips), and one table's failed commit neither stops the others
//! nor goes unreported.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId};
use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::sink::{CommitOutcome, MemoryWarehouse, TableSchema, TableSink, Warehouse};
use cdc_core::source::RawRecord;
use cdc_core::{Error, Result};

use crate::common::backlog_on_tables;

const TABLES: [&str; 3] = ["customers_a", "customers_b", "customers_c"];

/// The memory warehouse, each of whose commits first waits for every table's commit to begin.
struct Gathered {
    inner: MemoryWarehouse,
    started: Arc<tokio::sync::Barrier>,
    /// This table's commit fails (after the wait).
    failing: Option<TableId>,
}

struct GatheredSink {
    inner: Box<dyn TableSink>,
    started: Arc<tokio::sync::Barrier>,
    fails: bool,
}

#[async_trait]
impl Warehouse for Gathered {
    async fn open(&self, table: &TableId) -> Result<Box<dyn TableSink>> {
        Ok(Box::new(GatheredSink {
            inner: self.inner.open(table).await?,
            started: self.started.clone(),
            fails: self.failing.as_ref() == Some(table),
        }))
    }
}

#[async_trait]
impl TableSink for GatheredSink {
    fn table(&self) -> &TableId {
        self.inner.table()
    }

    async fn schema(&mut self) -> Result<Option<TableSchema>> {
        self.inner.schema().await
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        self.inner.committed_checkpoint().await
    }

    async fn apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        // One commit after another never gets every table's commit begun.
        tokio::time::timeout(Duration::from_secs(10), self.started.wait())
            .await
            .expect("the tables' commits run at once");
        if self.fails {
            return Err(Error::Sink {
                table: self.table().to_string(),
                message: "the store refused the commit".into(),
                source: None,
            });
        }
        self.inner.apply(changes).await
    }
}

/// One backlog's events on each table's topic, and the pipeline settings keyed by `id`.
fn records_and_config() -> (Vec<RawRecord>, PipelineConfig) {
    let (records, config) = backlog_on_tables(&TABLES, 10, 30, 3);
    (records.into_iter().flatten().collect(), config)
}

#[tokio::test]
async fn a_batch_commits_its_tables_at_once() {
    let (records, config) = records_and_config();
    let warehouse = Gathered {
        inner: MemoryWarehouse::new(),
        started: Arc::new(tokio::sync::Barrier::new(TABLES.len())),
        failing: None,
    };
    let mut pipeline = Pipeline::new(config, &warehouse).unwrap();
    pipeline.process_batch(&records).await.unwrap();
    assert_eq!(pipeline.stats().commits, 3);
    let rows: Vec<_> = (TABLES.iter())
        .map(|t| warehouse.inner.table(&TableId::new("public", *t)).unwrap())
        .map(|t| t.sorted_rows().unwrap())
        .collect();
    assert!(rows[0].num_rows() > 0);
    assert!(
        rows.iter().all(|r| *r == rows[0]),
        "every table the same rows"
    );
}

#[tokio::test]
async fn one_table_failing_to_commit_is_reported_after_the_others_landed() {
    let (records, config) = records_and_config();
    let failing = TableId::new("public", "customers_b");
    let warehouse = Gathered {
        inner: MemoryWarehouse::new(),
        started: Arc::new(tokio::sync::Barrier::new(TABLES.len())),
        failing: Some(failing.clone()),
    };
    let mut pipeline = Pipeline::new(config, &warehouse).unwrap();
    let err = pipeline.process_batch(&records).await.unwrap_err();
    assert!(err.to_string().contains("public.customers_b"), "{err}");
    assert_eq!(pipeline.stats().commits, 2);
    assert!(warehouse.inner.table(&failing).is_none());
    for t in ["customers_a", "customers_c"] {
        let table = warehouse.inner.table(&TableId::new("public", t)).unwrap();
        assert_eq!(table.checkpoint.offsets.len(), 1, "{t} committed");
    }
}
