//! The Kafka streaming source (feature `kafka`): rdkafka with a bundled librdkafka.
//!
//! Partitions are assigned explicitly (every matching partition), or by a consumer group the
//! source joins (`join_group`: cooperative-sticky rebalancing over the matching topics), and
//! positioned from the tables' committed checkpoints either way: the table, not the consumer
//! group, is the source of truth. Group offsets are committed after each table commit only so
//! that monitoring sees the lag. Micro-batches end at a number of records, a number of bytes
//! or a time limit, whichever comes first.
//!
//! Any librdkafka property can be passed through (`security.protocol`, `sasl.mechanism`,
//! `sasl.username`, `sasl.password`, `ssl.ca.location`, ...); values are never logged. For AWS
//! MSK with IAM, use `security.protocol=SASL_SSL` and `sasl.mechanism=OAUTHBEARER` with a token
//! provider (see docs/operations.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::Ordering;
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

mod context;

use context::{SourceContext, TopicPartition};

/// Settings of the Kafka source.
#[derive(Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topics to read: a regex matched against whole topic names.
    pub topics: String,
    /// Consumer group: the one joined with `join_group`; otherwise used only to report
    /// committed offsets (lag monitoring).
    pub group_id: String,
    /// Join `group_id` and read the partitions its rebalances assign (cooperative-sticky,
    /// unless `partition.assignment.strategy` is set), instead of every matching partition.
    pub join_group: bool,
    /// Further librdkafka properties (security, SASL, SSL, timeouts). Never logged.
    pub properties: HashMap<String, String>,
    /// Go on from the log start when a checkpoint is older than it (retention deleted
    /// records not yet applied), logging the gap, instead of failing with
    /// [`Error::OffsetGap`].
    pub allow_gaps: bool,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group_id", &self.group_id)
            .field("join_group", &self.join_group)
            .field("properties (keys only)", &KeysOnly(&self.properties))
            .field("allow_gaps", &self.allow_gaps)
            .finish()
    }
}

/// How often librdkafka reports the statistics partition ends come from, unless set.
const STATISTICS_INTERVAL_MS: &str = "5000";

/// Reads change events from Kafka.
pub struct KafkaSource {
    consumer: StreamConsumer<SourceContext>,
    topics: Regex,
    brokers: String,
    topic_names: HashMap<String, Arc<str>>,
    allow_gaps: bool,
    /// Whether a consumer group assigns the partitions.
    join_group: bool,
    /// The topics subscribed to, in a consumer group.
    subscribed: BTreeSet<String>,
    /// Next offset expected per assigned and positioned topic and partition (`None`: from its
    /// beginning). Records of partitions not here are not read.
    positions: HashMap<Arc<str>, HashMap<i32, Option<i64>>>,
    /// Wait before consuming again after a transient consumer error (doubles per error in a
    /// row, up to [`MAX_RETRY_WAIT`]).
    retry_wait: Duration,
}

/// First wait after a transient consumer error.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
/// Longest wait between attempts while the broker stays unavailable.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

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
            // An offset retention deleted is an error the source reports with the missing
            // range, unless gaps are allowed: then the log start.
            .set(
                "auto.offset.reset",
                if config.allow_gaps {
                    "earliest"
                } else {
                    "error"
                },
            )
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        if config.join_group {
            client.set("partition.assignment.strategy", "cooperative-sticky");
        }
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let consumer: StreamConsumer<SourceContext> = client
            .create_with_context(SourceContext::default())
            .map_err(|e| kafka_err(&config.brokers, "cannot create the consumer", e))?;
        Ok(KafkaSource {
            consumer,
            topics,
            brokers: config.brokers.clone(),
            topic_names: HashMap::new(),
            allow_gaps: config.allow_gaps,
            join_group: config.join_group,
            subscribed: BTreeSet::new(),
            positions: HashMap::new(),
            retry_wait: FIRST_RETRY_WAIT,
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

    /// Assigns `partitions`, each starting at its next offset (or the beginning). A next
    /// offset the broker's retention already deleted is an [`Error::OffsetGap`] (with gaps
    /// allowed: logged, and the partition starts at its log start).
    pub fn assign(&mut self, partitions: &[((String, i32), Option<i64>)]) -> Result<()> {
        let list = self.positioned(partitions)?;
        self.consumer
            .assign(&list)
            .map_err(|e| kafka_err(&self.brokers, "cannot assign partitions", e))
    }

    /// Adds `partitions` to those assigned, positioned as [`KafkaSource::assign`] does.
    pub fn assign_more(&mut self, partitions: &[((String, i32), Option<i64>)]) -> Result<()> {
        let list = self.positioned(partitions)?;
        self.consumer
            .incremental_assign(&list)
            .map_err(|e| kafka_err(&self.brokers, "cannot assign new partitions", e))
    }

    /// Subscribes (in a consumer group) to the topics of `partitions` as well as those already
    /// subscribed to: the group then assigns their partitions among its members.
    fn subscribe(&mut self, partitions: &[(TopicPartition, Option<i64>)]) -> Result<()> {
        let before = self.subscribed.len();
        (self.subscribed).extend(partitions.iter().map(|((topic, _), _)| topic.clone()));
        if self.subscribed.len() == before {
            return Ok(());
        }
        let topics: Vec<&str> = self.subscribed.iter().map(String::as_str).collect();
        tracing::info!(topics = ?topics, "subscribing as a member of the consumer group");
        self.consumer
            .subscribe(&topics)
            .map_err(|e| kafka_err(&self.brokers, "cannot subscribe", e))
    }

    /// Assigns partitions the group gave this member, each at its next offset, checked against
    /// retention as [`KafkaSource::assign`] does; the group's rebalance completes with it.
    pub fn assign_from_group(
        &mut self,
        partitions: &[(TopicPartition, Option<i64>)],
    ) -> Result<()> {
        let list = self.positioned(partitions)?;
        context::assign(&self.consumer, self.cooperative(), &list)
            .map_err(|e| kafka_err(&self.brokers, "cannot assign partitions", e))?;
        tracing::info!(partitions = ?context::topic_partitions(&list), "reading assigned partitions from their tables' checkpoints");
        Ok(())
    }

    /// Whether the group rebalances incrementally (always, outside a group).
    fn cooperative(&self) -> bool {
        !self.join_group
            || !matches!(
                self.consumer.rebalance_protocol(),
                rdkafka::consumer::RebalanceProtocol::Eager
            )
    }

    /// Moves partitions this source reads back to earlier offsets (a batch another writer
    /// overtook is read again): each is taken out of the assignment and put back at its
    /// offset, so no fetch at the old position survives. Others are left alone.
    pub fn rewind(&mut self, partitions: &[(TopicPartition, Option<i64>)]) -> Result<()> {
        let mine: Vec<(TopicPartition, Option<i64>)> = (partitions.iter())
            .filter(|((topic, partition), _)| {
                (self.positions.get(topic.as_str())).is_some_and(|p| p.contains_key(partition))
            })
            .cloned()
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let list = self.positioned(&mine)?;
        let moved = self
            .consumer
            .incremental_unassign(&list)
            .and_then(|()| self.consumer.incremental_assign(&list));
        moved.map_err(|e| kafka_err(&self.brokers, "cannot move partitions back", e))
    }

    /// Forgets partitions the group revoked and drops their records from `records` (read
    /// but not committed: the partition's next owner reads them again from the table's
    /// checkpoint). Returns whether any was revoked.
    fn let_go_of_revoked(
        context: &SourceContext,
        positions: &mut HashMap<Arc<str>, HashMap<i32, Option<i64>>>,
        records: &mut Vec<RawRecord>,
    ) -> bool {
        let revoked = context.take_revoked();
        for (topic, partition) in &revoked {
            if let Some(partitions) = positions.get_mut(topic.as_str()) {
                partitions.remove(partition);
            }
        }
        let is_revoked = |r: &RawRecord| {
            (revoked.iter())
                .any(|(topic, partition)| *partition == r.partition && topic.as_str() == &*r.topic)
        };
        records.retain(|r| !is_revoked(r));
        !revoked.is_empty()
    }

    /// The partition's end (high watermark), asked of the broker.
    pub fn end_offset_now(&self, topic: &str, partition: i32) -> Result<i64> {
        let (_, high) = (self.consumer)
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|e| kafka_err(topic, "cannot read the partition's offsets", e))?;
        Ok(high)
    }

    /// `partitions` at their next offsets, checked against retention.
    fn positioned(
        &mut self,
        partitions: &[((String, i32), Option<i64>)],
    ) -> Result<TopicPartitionList> {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in partitions {
            let next = match next {
                Some(at) => Some(self.past_retention(topic, *partition, *at)?),
                None => None,
            };
            self.positions
                .entry(Arc::from(topic.as_str()))
                .or_default()
                .insert(*partition, next);
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            list.add_partition_offset(topic, *partition, offset)
                .map_err(|e| kafka_err(topic, "cannot assign", e))?;
            self.topic_names
                .insert(topic.clone(), Arc::from(topic.as_str()));
        }
        Ok(list)
    }

    /// Where `topic`/`partition` can be read from for next offset `at`: `at` itself, unless
    /// retention deleted it (the log start is past it): then a gap error, or with gaps
    /// allowed the log start.
    fn past_retention(&self, topic: &str, partition: i32, at: i64) -> Result<i64> {
        let (log_start, _) = self
            .consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|e| kafka_err(topic, "cannot read the partition's offsets", e))?;
        if at >= log_start {
            return Ok(at);
        }
        if self.allow_gaps {
            tracing::warn!(
                topic,
                partition,
                first = at,
                last = log_start - 1,
                "offsets deleted by retention before they were applied; going on without them (gaps allowed)"
            );
            crate::metrics::offsets_skipped(topic, partition, log_start - at);
            return Ok(log_start);
        }
        Err(Error::OffsetGap {
            table: None,
            topic: topic.to_string(),
            partition,
            first: at,
            last: log_start - 1,
            reason: format!("the broker's log starts at {log_start}: retention deleted them"),
        })
    }

    /// What a consumer error means: `None` for a transient one librdkafka recovers from by
    /// itself (broker down or restarted, leader moved, timeouts), after which consuming goes
    /// on; the error to stop with otherwise (retention passed a position, authentication or
    /// authorization refused, a fatal client error).
    fn consumer_error(&self, e: rdkafka::error::KafkaError) -> Option<Error> {
        use rdkafka::types::RDKafkaErrorCode as Code;
        let code = e.rdkafka_error_code();
        let fatal = matches!(e, rdkafka::error::KafkaError::MessageConsumptionFatal(_))
            || matches!(
                code,
                Some(
                    Code::AutoOffsetReset
                        | Code::Fatal
                        | Code::Authentication
                        | Code::SaslAuthenticationFailed
                        | Code::TopicAuthorizationFailed
                        | Code::GroupAuthorizationFailed
                        | Code::ClusterAuthorizationFailed
                        | Code::InvalidConfig
                )
            );
        fatal.then(|| self.fetch_error(e))
    }

    /// The error for a consumer that could not go on: the gap retention made, when a
    /// partition's position is now before its log start.
    fn fetch_error(&self, e: rdkafka::error::KafkaError) -> Error {
        use rdkafka::types::RDKafkaErrorCode;
        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
            for (topic, partitions) in &self.positions {
                for (partition, next) in partitions {
                    if let Some(at) = next {
                        if let Err(gap) = self.past_retention(topic, *partition, *at) {
                            return gap;
                        }
                    }
                }
            }
        }
        kafka_err(&self.brokers, "cannot consume", e)
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
            // Newly assigned partitions are positioned before anything else is read.
            if self.join_group && self.consumer.context().has_assigned() {
                break;
            }
            let received = tokio::time::timeout(left, self.consumer.recv()).await;
            // Rebalances happen inside `recv`.
            let context = self.consumer.context();
            if Self::let_go_of_revoked(context, &mut self.positions, &mut records) {
                bytes = records.iter().map(RawRecord::size).sum();
            }
            let message = match received {
                Err(_) => break,
                Ok(Err(e)) => {
                    if let Some(fatal) = self.consumer_error(e.clone()) {
                        return Err(fatal);
                    }
                    tracing::warn!(
                        brokers = %self.brokers,
                        error = %e,
                        retry_in_ms = self.retry_wait.as_millis() as u64,
                        "consumer error; consuming again"
                    );
                    crate::metrics::consumer_error();
                    tokio::time::sleep(self.retry_wait.min(left)).await;
                    self.retry_wait = (self.retry_wait * 2).min(MAX_RETRY_WAIT);
                    continue;
                }
                Ok(Ok(m)) => m,
            };
            self.retry_wait = FIRST_RETRY_WAIT;
            first.get_or_insert_with(Instant::now);
            let topic = self
                .topic_names
                .entry(message.topic().to_string())
                .or_insert_with(|| Arc::from(message.topic()))
                .clone();
            // A partition not positioned yet (or let go of): not this batch's to read.
            let Some(next) = (self.positions.get_mut(message.topic()))
                .and_then(|partitions| partitions.get_mut(&message.partition()))
            else {
                continue;
            };
            if let Some(expected) = *next {
                if message.offset() < expected {
                    // Fetched before a rewind took effect: read again later, in order.
                    continue;
                }
                if message.offset() > expected {
                    // Transaction markers, compaction; anything else is a bug worth seeing.
                    tracing::debug!(
                        topic = message.topic(),
                        partition = message.partition(),
                        expected,
                        got = message.offset(),
                        "offsets skipped by the broker"
                    );
                }
            }
            *next = Some(message.offset() + 1);
            let record = RawRecord {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(Bytes::copy_from_slice),
                value: message.payload().map(Bytes::copy_from_slice),
                value_schema: None,
                key_schema: None,
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
            // Partitions this source reads only: in a group, others report their own.
            let Some(mine) = self.positions.get(topic.as_str()) else {
                continue;
            };
            for (p, next) in parts.iter().filter(|(p, _)| mine.contains_key(p)) {
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
        match self.join_group {
            true => self.subscribe(positions),
            false => self.assign(positions),
        }
    }

    async fn add(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        match self.join_group {
            true => self.subscribe(positions),
            false => self.assign_more(positions),
        }
    }

    fn take_assigned(&mut self) -> Vec<(String, i32)> {
        self.consumer.context().take_assigned()
    }

    fn is_assigned(&self) -> bool {
        !self.join_group || self.consumer.context().joined.load(Ordering::Relaxed)
    }

    async fn start_assigned(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        self.assign_from_group(positions)
    }

    async fn rewind(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        KafkaSource::rewind(self, positions)
    }

    async fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Vec<RawRecord>>> {
        KafkaSource::next_batch(self, limits).await.map(Some)
    }

    fn committed(&mut self, checkpoint: &Checkpoint) {
        if let Err(e) = self.commit_for_monitoring(checkpoint) {
            tracing::warn!(error = %e, "cannot report consumer-group offsets");
        }
    }

    /// The high watermark of librdkafka's last statistics, for a partition this source reads.
    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(topic)?.get(&partition)?;
        let ends = (self.consumer.context().ends.lock()).unwrap_or_else(|e| e.into_inner());
        ends.get(&(topic.to_string(), partition)).copied()
    }
}
