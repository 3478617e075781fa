//! The Kafka source against a real Kafka-compatible broker (tansu on 127.0.0.1): fixture
//! records are produced to their topics, streamed into the reference sink in micro-batches, the
//! stream is stopped midway and restarted from the tables' checkpoints, and the tables end equal
//! to the expected state.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::kafka::{KafkaConfig, KafkaSource};
use cdc_core::testing::{produce_to_kafka, scenario_topics_regex, Scenario, TansuBroker};

use crate::common::assert_expected;

/// Streams `topics` until `expected_records` records were read, or `stop_after` micro-batches
/// were committed.
async fn stream(
    bootstrap: &str,
    topics: &str,
    warehouse: &MemoryWarehouse,
    expected_records: i64,
    stop_after: Option<u64>,
) {
    let config = KafkaConfig {
        brokers: bootstrap.to_string(),
        topics: topics.to_string(),
        group_id: "cdc-lake-test".into(),
        properties: Default::default(),
    };
    let mut source = KafkaSource::new(&config).unwrap();
    let mut pipeline_config = PipelineConfig::default();
    pipeline_config.limits.max_events = 8;
    pipeline_config.limits.max_wait = Duration::from_millis(300);
    let mut pipeline = Pipeline::new(pipeline_config, warehouse).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);
    let stopper = stop.clone();
    pipeline
        .run_stream(&mut source, &stop, move |p| {
            let caught_up = p.stats.records_read as i64 >= expected_records;
            let enough = stop_after.is_some_and(|n| p.stats.batches >= n);
            if caught_up || enough || Instant::now() > deadline {
                stopper.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_from_kafka_and_resumes_from_the_tables() {
    let Some(broker) = TansuBroker::start() else {
        return;
    };
    for name in ["crud", "truncate"] {
        let scenario = Scenario::load(name);
        let total = produce_to_kafka(&broker.bootstrap, &scenario).await;
        let topics = scenario_topics_regex(&scenario);
        let warehouse = MemoryWarehouse::new();
        // A first run stops after 3 micro-batches; the second resumes from the tables.
        stream(&broker.bootstrap, &topics, &warehouse, total, Some(2)).await;
        let partial: i64 = scenario
            .tables
            .iter()
            .filter_map(|(t, _)| warehouse.table(t))
            .map(|t| {
                t.checkpoint
                    .offsets
                    .values()
                    .flat_map(|p| p.values())
                    .sum::<i64>()
            })
            .sum();
        assert!(
            partial > 0 && partial < total,
            "{name}: first run committed {partial} of {total}"
        );
        stream(
            &broker.bootstrap,
            &topics,
            &warehouse,
            total - partial,
            None,
        )
        .await;
        assert_expected(&scenario, &warehouse);
    }
}
