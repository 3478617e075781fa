//! The Kafka source against a real Kafka-compatible broker (tansu on 127.0.0.1): fixture
//! records are produced to their topics, streamed into the reference sink in micro-batches, the
//! stream is stopped midway and restarted from the tables' checkpoints, and the tables end equal
//! to the expected state.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_core::pipeline::{Pipeline, PipelineConfig, PipelineStats};
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
    stream_allowing_gaps(
        bootstrap,
        topics,
        warehouse,
        expected_records,
        stop_after,
        false,
    )
    .await
    .unwrap();
}

/// [`stream`], with or without gaps allowed, returning what the run ended with.
async fn stream_allowing_gaps(
    bootstrap: &str,
    topics: &str,
    warehouse: &MemoryWarehouse,
    expected_records: i64,
    stop_after: Option<u64>,
    allow_gaps: bool,
) -> cdc_core::Result<PipelineStats> {
    let config = KafkaConfig {
        brokers: bootstrap.to_string(),
        topics: topics.to_string(),
        group_id: "cdc-lake-test".into(),
        join_group: false,
        properties: Default::default(),
        allow_gaps,
    };
    let mut source = KafkaSource::new(&config)?;
    let mut pipeline_config = PipelineConfig::default();
    pipeline_config.limits.max_events = 8;
    pipeline_config.limits.max_wait = Duration::from_millis(300);
    let mut pipeline = Pipeline::new(pipeline_config, warehouse)?;
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

/// A table whose checkpoint the broker's retention has passed (the records after it deleted
/// before they were applied): streaming stops with an error naming the table, partition and
/// missing offsets; with gaps allowed it goes on from the log start and applies the rest.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_retention_passed_is_an_error_unless_gaps_are_allowed() {
    let Some(moto) = cdc_core::testing::MotoServer::start() else {
        return;
    };
    let Some(broker) = TansuBroker::start_on_s3(&moto, "tansu") else {
        return;
    };
    let scenario = Scenario::load("crud");
    produce_to_kafka(&broker.bootstrap, &scenario).await;
    let (table, _) = &scenario.tables[0];
    let topic = scenario
        .records()
        .iter()
        .map(|r| r.topic.clone())
        .find(|t| t.ends_with(&format!(".{}", table.name)))
        .expect("the table's topic");
    let end = scenario
        .records()
        .iter()
        .filter(|r| r.topic == topic)
        .count() as i64;
    let topics = regex::escape(&topic);
    let warehouse = MemoryWarehouse::new();
    stream(&broker.bootstrap, &topics, &warehouse, end, Some(1)).await;
    let next_offset = || {
        warehouse
            .table(table)
            .unwrap()
            .checkpoint
            .next_offset(&topic, 0)
    };
    let checkpoint = next_offset();
    let at = checkpoint.expect("a first batch committed");
    assert!(at + 3 < end, "{at} of {end}");

    // Retention deletes the batches before `at + 3` and moves the log start there.
    delete_records_before(&moto, &topic, at + 3).await;
    let err = stream_allowing_gaps(&broker.bootstrap, &topics, &warehouse, end, None, false)
        .await
        .expect_err("a gap is an error");
    match &err {
        cdc_core::Error::OffsetGap {
            table: Some(t),
            topic: tp,
            partition: 0,
            first,
            last,
            ..
        } => {
            assert_eq!(
                (t.as_str(), tp.as_str()),
                (table.to_string().as_str(), topic.as_str())
            );
            assert_eq!((*first, *last), (at, at + 2));
        }
        other => panic!("not a gap error: {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&format!("offsets {at}..={}", at + 2)),
        "{text}"
    );
    assert_eq!(next_offset(), checkpoint, "nothing applied");

    let stats = stream_allowing_gaps(
        &broker.bootstrap,
        &topics,
        &warehouse,
        end - at - 3,
        None,
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        stats.records_read as i64,
        end - at - 3,
        "the rest, from the log start"
    );
    assert_eq!(next_offset(), Some(end));
}

/// Deletes tansu's record batches of `topic` partition 0 below offset `log_start` and moves
/// its low watermark there, as retention does.
#[cfg(feature = "s3")]
async fn delete_records_before(moto: &cdc_core::testing::MotoServer, topic: &str, log_start: i64) {
    use futures::TryStreamExt;
    use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutPayload};
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("tansu")
        .with_endpoint(&moto.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(cdc_core::testing::MOTO_KEY_ID)
        .with_secret_access_key(cdc_core::testing::MOTO_SECRET)
        .build()
        .unwrap();
    let partition = format!("clusters/tansu_cluster/topics/{topic}/partitions/0000000000");
    let batches: Vec<_> = store
        .list(Some(&Path::from(format!("{partition}/records"))))
        .try_collect()
        .await
        .unwrap();
    let mut deleted = 0;
    for batch in batches {
        let name = batch.location.filename().unwrap().to_string();
        let base: i64 = name.trim_end_matches(".batch").parse().unwrap();
        if base < log_start {
            store.delete(&batch.location).await.unwrap();
            deleted += 1;
        }
    }
    assert_eq!(deleted, log_start, "one batch per record");
    let watermark = Path::from(format!("{partition}/watermark.json"));
    let bytes = store.get(&watermark).await.unwrap().bytes().await.unwrap();
    let mut marks: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    marks["low"] = log_start.into();
    store
        .put(&watermark, PutPayload::from(marks.to_string()))
        .await
        .unwrap();
}

/// A topic created while the stream runs is picked up (no restart) and read from its
/// beginning into its table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_while_streaming_is_read() {
    let Some(broker) = TansuBroker::start() else {
        return;
    };
    let first = Scenario::load("crud");
    let later = Scenario::load("toast");
    let first_total = produce_to_kafka(&broker.bootstrap, &first).await;
    let topics = format!(
        "{}|{}",
        scenario_topics_regex(&first),
        scenario_topics_regex(&later)
    );
    let config = KafkaConfig {
        brokers: broker.bootstrap.clone(),
        topics,
        group_id: "cdc-lake-test".into(),
        join_group: false,
        properties: Default::default(),
        allow_gaps: false,
    };
    let mut source = KafkaSource::new(&config).unwrap();
    let mut pipeline_config = PipelineConfig::default();
    pipeline_config.limits.max_wait = Duration::from_millis(200);
    pipeline_config.partition_refresh = Duration::from_millis(300);
    let warehouse = MemoryWarehouse::new();
    let mut pipeline = Pipeline::new(pipeline_config, &warehouse).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (stopper, bootstrap) = (stop.clone(), broker.bootstrap.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    let later_total = later.records().len() as i64;
    let mut produced = false;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let producer = tokio::spawn(async move {
        // Once the first topic is in, the second is created and filled.
        rx.recv().await;
        produce_to_kafka(&bootstrap, &later).await
    });
    pipeline
        .run_stream(&mut source, &stop, |p| {
            let read = p.stats.records_read as i64;
            if read >= first_total && !produced {
                produced = true;
                tx.send(()).unwrap();
            }
            if read >= first_total + later_total || Instant::now() > deadline {
                stopper.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await
        .unwrap();
    producer.await.unwrap();
    assert_expected(&first, &warehouse);
    assert_expected(&Scenario::load("toast"), &warehouse);
}

/// The broker stops and comes back on the same port mid-stream: the stream waits for it
/// (consumer errors retried, not an exit) and ends with every record applied once.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_waits_for_a_restarted_broker() {
    let Some(moto) = cdc_core::testing::MotoServer::start() else {
        return;
    };
    let Some(mut broker) = TansuBroker::start_on_s3(&moto, "tansu") else {
        return;
    };
    let scenario = Scenario::load("crud");
    let total = produce_to_kafka(&broker.bootstrap, &scenario).await;
    let warehouse = MemoryWarehouse::new();
    let config = KafkaConfig {
        brokers: broker.bootstrap.clone(),
        topics: scenario_topics_regex(&scenario),
        group_id: "cdc-lake-test".into(),
        join_group: false,
        properties: Default::default(),
        allow_gaps: false,
    };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // The restart runs beside the stream; the broker comes back from it when the stream is
    // done (dropping it stops it).
    let restart = tokio::task::spawn_blocking(move || {
        rx.recv().unwrap();
        broker.restart(Duration::from_secs(2));
        broker
    });
    let mut source = KafkaSource::new(&config).unwrap();
    let mut pipeline_config = PipelineConfig::default();
    pipeline_config.limits.max_events = 8;
    pipeline_config.limits.max_wait = Duration::from_millis(200);
    let mut pipeline = Pipeline::new(pipeline_config, &warehouse).unwrap();
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(90);
    let stream = pipeline
        .run_stream(&mut source, &stop, |p| {
            if p.stats.batches == 2 {
                tx.send(()).unwrap();
            }
            // Slow enough that the restart lands mid-stream.
            std::thread::sleep(Duration::from_millis(50));
            if p.stats.records_read as i64 >= total || Instant::now() > deadline {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await;
    let _broker = restart.await.unwrap();
    let stats = stream.expect("the stream outlives the restart");
    assert_eq!(stats.records_read as i64, total);
    assert_expected(&scenario, &warehouse);
}
