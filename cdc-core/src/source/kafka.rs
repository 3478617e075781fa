//! The Kafka streaming source (feature `kafka`): rdkafka with a bundled librdkafka.
//!
//! Partitions are assigned explicitly and positioned from the tables' committed checkpoints:
//! the table, not the consumer group, is the source of truth. Group offsets are committed after
//! each table commit only so that monitoring sees the lag. Micro-batches end at a number of
//! records, a number of bytes or a time limit, whichever comes first.
//!
//! Any librdkafka property can be passed through (`security.protocol`, `sasl.mechanism`,
//! `sasl.username`, `sasl.password`, `ssl.ca.location`, ...); values are never logged. For AWS
//! MSK with IAM, use `security.protocol=SASL_SSL` and `sasl.mechanism=OAUTHBEARER` with a token
//! provider (see docs/operations.md).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use regex::Regex;

use super::RawRecord;
use super::{BatchLimits, Source};
use crate::error::{Error, Result};
use crate::model::Checkpoint;
use crate::secrets::KeysOnly;

/// Settings of the Kafka source.
#[derive(Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topics to read: a regex matched against whole topic names.
    pub topics: String,
    /// Consumer group used only to report committed offsets (lag monitoring).
    pub group_id: String,
    /// Further librdkafka properties (security, SASL, SSL, timeouts). Never logged.
    pub properties: HashMap<String, String>,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group_id", &self.group_id)
            .field("properties (keys only)", &KeysOnly(&self.properties))
            .finish()
    }
}

/// Reads change events from Kafka.
pub struct KafkaSource {
    consumer: StreamConsumer,
    topics: Regex,
    brokers: String,
    topic_names: HashMap<String, Arc<str>>,
}

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics.as_str())
            .finish()
    }
}

fn kafka_err(location: &str, message: &str, e: rdkafka::error::KafkaError) -> Error {
    Error::Source {
        location: location.to_string(),
        message: message.to_string(),
        source: Some(Box::new(e)),
    }
}

impl KafkaSource {
    /// Connects (lazily) with `config`. Fails on a bad regex or bad properties.
    pub fn new(config: &KafkaConfig) -> Result<Self> {
        let topics = Regex::new(&format!("^(?:{})$", config.topics))
            .map_err(|e| Error::Config(format!("bad topic regex `{}`: {e}", config.topics)))?;
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let consumer: StreamConsumer = client
            .create()
            .map_err(|e| kafka_err(&config.brokers, "cannot create the consumer", e))?;
        Ok(KafkaSource {
            consumer,
            topics,
            brokers: config.brokers.clone(),
            topic_names: HashMap::new(),
        })
    }

    /// The topic-partitions whose topic matches the regex.
    pub fn topic_partitions(&self) -> Result<Vec<(String, i32)>> {
        let metadata = self
            .consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| kafka_err(&self.brokers, "cannot fetch metadata", e))?;
        let mut out = Vec::new();
        for topic in metadata.topics() {
            if self.topics.is_match(topic.name()) {
                for p in topic.partitions() {
                    out.push((topic.name().to_string(), p.id()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Assigns `partitions`, each starting at its next offset (or the beginning).
    pub fn assign(&mut self, partitions: &[((String, i32), Option<i64>)]) -> Result<()> {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in partitions {
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            list.add_partition_offset(topic, *partition, offset)
                .map_err(|e| kafka_err(topic, "cannot assign", e))?;
            self.topic_names
                .insert(topic.clone(), Arc::from(topic.as_str()));
        }
        self.consumer
            .assign(&list)
            .map_err(|e| kafka_err(&self.brokers, "cannot assign partitions", e))
    }

    /// The next micro-batch: records until `max_events` or `max_bytes`, or until `max_wait`
    /// has passed since the first record (or since the call, when none came).
    pub async fn next_batch(&mut self, limits: &BatchLimits) -> Result<Vec<RawRecord>> {
        let started = Instant::now();
        let mut first: Option<Instant> = None;
        let mut records = Vec::new();
        let mut bytes = 0usize;
        loop {
            let since = first.unwrap_or(started);
            let left = limits.max_wait.saturating_sub(since.elapsed());
            if left.is_zero() || records.len() >= limits.max_events || bytes >= limits.max_bytes {
                break;
            }
            let message = match tokio::time::timeout(left, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(kafka_err(&self.brokers, "cannot consume", e)),
                Ok(Ok(m)) => m,
            };
            first.get_or_insert_with(Instant::now);
            let topic = self
                .topic_names
                .entry(message.topic().to_string())
                .or_insert_with(|| Arc::from(message.topic()))
                .clone();
            let record = RawRecord {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(Bytes::copy_from_slice),
                value: message.payload().map(Bytes::copy_from_slice),
            };
            bytes += record.size();
            records.push(record);
        }
        Ok(records)
    }

    /// Reports `checkpoint` as the group's committed offsets (monitoring only).
    pub fn commit_for_monitoring(&self, checkpoint: &Checkpoint) -> Result<()> {
        let mut list = TopicPartitionList::new();
        let by_topic: &BTreeMap<String, BTreeMap<i32, i64>> = &checkpoint.offsets;
        for (topic, parts) in by_topic {
            for (p, next) in parts {
                list.add_partition_offset(topic, *p, Offset::Offset(*next))
                    .map_err(|e| kafka_err(topic, "cannot report offsets", e))?;
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        self.consumer
            .commit(&list, CommitMode::Async)
            .map_err(|e| kafka_err(&self.brokers, "cannot report offsets", e))
    }
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    async fn topic_partitions(&mut self) -> Result<Vec<(String, i32)>> {
        KafkaSource::topic_partitions(self)
    }

    async fn start(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        self.assign(positions)
    }

    async fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Vec<RawRecord>>> {
        KafkaSource::next_batch(self, limits).await.map(Some)
    }

    fn committed(&mut self, checkpoint: &Checkpoint) {
        if let Err(e) = self.commit_for_monitoring(checkpoint) {
            tracing::warn!(error = %e, "cannot report consumer-group offsets");
        }
    }
}
