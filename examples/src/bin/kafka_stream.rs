//! Streaming from Kafka with the library API: Debezium topics into Delta tables until Ctrl-C,
//! one commit per table per micro-batch, resuming from the tables' checkpoints on restart.
//!
//! `cargo run -p cdc-lake-examples --bin kafka_stream -- BROKERS TOPIC_REGEX WAREHOUSE_DIR`
//!
//! e.g. `... -- localhost:9092 'dbserver1\.public\..*' /tmp/lake`. Kafka security settings go
//! into `KafkaConfig::properties` (from the environment or a file, never from code).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::source::kafka::{KafkaConfig, KafkaSource};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topics, warehouse] = args.as_slice() else {
        return Err("usage: kafka_stream BROKERS TOPIC_REGEX WAREHOUSE_DIR".into());
    };
    let mut source = KafkaSource::new(&KafkaConfig {
        brokers: brokers.clone(),
        topics: topics.clone(),
        group_id: "cdc-lake-example".into(),
        join_group: false,
        properties: Default::default(),
        allow_gaps: false,
    })?;
    let warehouse = DeltaWarehouse::new(warehouse, DeltaSinkConfig::default())?;

    // A change is visible within about `max_wait` at low load.
    let mut config = PipelineConfig::default();
    config.limits.max_wait = Duration::from_millis(500);
    config.limits.max_events = 50_000;

    let stop = Arc::new(AtomicBool::new(false));
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.store(true, Ordering::Relaxed);
    });
    let mut pipeline = Pipeline::new(config, &warehouse)?;
    let stats = pipeline
        .run_stream(&mut source, &stop, |p| {
            eprintln!(
                "{} records, {} commits, lag {:?}",
                p.stats.records_read,
                p.stats.commits,
                p.stats.lag()
            )
        })
        .await?;
    eprintln!("stopped: {stats:?}");
    Ok(())
}
