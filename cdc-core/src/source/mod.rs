//! Sources of raw Kafka records: the Confluent S3 sink layout on any object store ([`raw`]),
//! and Kafka itself (`kafka`, feature `kafka`), behind one [`Source`] trait the pipeline reads.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::model::Checkpoint;

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod raw;

/// One Kafka record as it was stored: coordinates, key and value bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes, when the key was stored.
    pub key: Option<Bytes>,
    /// Value bytes; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// The Avro writer schema of `value` when it is a plain Avro datum (from an object container
    /// file's header); `None` for JSON and for Confluent-framed Avro (whose frame names it).
    pub value_schema: Option<Arc<str>>,
    /// The same for `key`.
    pub key_schema: Option<Arc<str>>,
}

impl RawRecord {
    /// Bytes this record holds (for batch size limits).
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len)
    }

    /// The record's coordinates and schemas without its key and value (which keep their input
    /// file mapped).
    pub fn without_bytes(&self) -> RawRecord {
        RawRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            key: None,
            value: None,
            value_schema: self.value_schema.clone(),
            key_schema: self.key_schema.clone(),
        }
    }
}

/// Where a batch ends.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchLimits {
    /// Records per batch.
    pub max_events: usize,
    /// Raw bytes per batch.
    pub max_bytes: usize,
    /// Longest wait for more records before committing what is there (streaming sources).
    #[serde(with = "duration_ms")]
    pub max_wait: Duration,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_events: 200_000,
            max_bytes: 128 << 20,
            max_wait: Duration::from_secs(1),
        }
    }
}

/// Where the pipeline reads raw records from: a bounded source (files) that ends, or a
/// streaming one (Kafka) that waits for more.
#[async_trait]
pub trait Source: Send {
    /// The topic-partitions this source reads.
    async fn topic_partitions(&mut self) -> Result<Vec<(String, i32)>>;

    /// Starts each topic-partition at its next offset (`None`: at its beginning); records
    /// before it are already in the tables.
    async fn start(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()>;

    /// Starts more topic-partitions, found after the start, keeping the ones started (by
    /// default a new start: a source whose start replaces nothing).
    async fn add(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        self.start(positions).await
    }

    /// Partitions a consumer group assigned to this source since the last call, waiting to be
    /// started with [`Source::start_assigned`] (none from a source told what to read).
    fn take_assigned(&mut self) -> Vec<(String, i32)> {
        Vec::new()
    }

    /// Whether the source knows which partitions it reads (a consumer group's member: once the
    /// group has given it its share, even none).
    fn is_assigned(&self) -> bool {
        true
    }

    /// Starts partitions [`Source::take_assigned`] returned, each at its next offset.
    async fn start_assigned(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()> {
        self.add(positions).await
    }

    /// Moves started partitions back to these next offsets: a batch another writer overtook is
    /// read again from its table. Partitions this source no longer reads are left alone.
    async fn rewind(&mut self, positions: &[((String, i32), Option<i64>)]) -> Result<()>;

    /// The next records, at most `limits` of them: `None` once a bounded source is exhausted;
    /// empty when a streaming source got nothing within `limits.max_wait`.
    async fn next_batch(&mut self, limits: &BatchLimits) -> Result<Option<Vec<RawRecord>>>;

    /// Whether the source ends and never waits for records (files): the pipeline then reads
    /// and decodes the next batch while the current one is committed.
    fn is_bounded(&self) -> bool {
        false
    }

    /// Told after every batch that the tables hold everything up to `checkpoint` (a Kafka
    /// source reports it as the consumer group's offsets, for lag monitoring).
    fn committed(&mut self, _checkpoint: &Checkpoint) {}

    /// The partition's end offset as last known, for lag in offsets (`None`: unknown).
    fn end_offset(&self, _topic: &str, _partition: i32) -> Option<i64> {
        None
    }
}
