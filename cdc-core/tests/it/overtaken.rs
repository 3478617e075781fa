//! Another writer commits part of a batch between the pipeline's reading of a table and its
//! commit (a consumer group moved the partition): the batch is not applied over the newer rows
//! but dropped, and its partition read again from the table's checkpoint.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use cdc_core::decode::TableHint;
use cdc_core::model::TableId;
use cdc_core::pipeline::{BatchLimits, Pipeline, PipelineConfig};
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::{RawRecord, Source};
use cdc_core::testing::backlog::{generate, BacklogSpec};
use cdc_core::Result;

/// Hands out `records` five at a time; before the second batch, `other` (another writer's
/// pipeline on the same warehouse) applies offsets 5..8.
struct Overtaken<'w> {
    records: Vec<RawRecord>,
    next: usize,
    other: Option<Pipeline<'w>>,
    rewound_to: Vec<i64>,
}

#[async_trait]
impl Source for Overtaken<'_> {
    async fn topic_partitions(&mut self) -> Result<Vec<(String, i32)>> {
        Ok(vec![(self.records[0].topic.to_string(), 0)])
    }

    async fn start(&mut self, _: &[((String, i32), Option<i64>)]) -> Result<()> {
        Ok(())
    }

    async fn rewind(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        for (_, next) in positions {
            let next = next.expect("the table has a checkpoint");
            self.rewound_to.push(next);
            self.next = next as usize;
        }
        Ok(())
    }

    async fn next_batch(&mut self, _: &BatchLimits) -> Result<Option<Vec<RawRecord>>> {
        if self.next == 5 {
            if let Some(mut other) = self.other.take() {
                other.process_batch(&self.records[5..8]).await?;
            }
        }
        if self.next >= self.records.len() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Ok(Some(Vec::new()));
        }
        let end = (self.next + 5).min(self.records.len());
        let batch = self.records[self.next..end].to_vec();
        self.next = end;
        Ok(Some(batch))
    }
}

#[tokio::test]
async fn a_batch_another_writer_overtook_is_read_again_from_the_table() {
    let backlog = generate(&BacklogSpec {
        snapshot_rows: 4,
        changes: 8,
        seed: 5,
        with_schema: true,
    });
    let records = backlog.records();
    assert_eq!(records.len(), 12);
    let warehouse = MemoryWarehouse::new();
    let table = TableId::new("public", "customers");
    let hint = TableHint {
        schema: None,
        key_columns: Some(vec!["id".to_string()]),
    };
    let mut config = PipelineConfig {
        table_hints: HashMap::from([(table.clone(), hint)]),
        ..PipelineConfig::default()
    };
    config.stop_after_batches = Some(3);
    let other = Pipeline::new(config.clone(), &warehouse).unwrap();
    let mut source = Overtaken {
        records: records.clone(),
        next: 0,
        other: Some(other),
        rewound_to: Vec::new(),
    };
    let mut pipeline = Pipeline::new(config.clone(), &warehouse).unwrap();
    let stop = AtomicBool::new(false);
    let run = pipeline.run(&mut source, &stop, |_| {});
    let stats = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("three batches")
        .unwrap();
    // Batches: 0..5 applied; 5..10 overtaken at 8 and dropped; 8..12 applied.
    assert_eq!(source.rewound_to, [8]);
    assert_eq!(stats.commits, 2);
    let written = warehouse.table(&table).unwrap();
    assert_eq!(written.checkpoint.offsets.values().next().unwrap()[&0], 12);

    // Every record applied once, in order: the same table as one writer's.
    let alone = MemoryWarehouse::new();
    let mut one = Pipeline::new(config, &alone).unwrap();
    one.process_batch(&records).await.unwrap();
    let expected = alone.table(&table).unwrap();
    assert_eq!(
        written.sorted_rows().unwrap(),
        expected.sorted_rows().unwrap()
    );
}
