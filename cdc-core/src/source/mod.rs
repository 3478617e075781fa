//! Sources of raw Kafka records: the Confluent S3 sink layout on any object store ([`raw`]),
//! and Kafka itself (`kafka`, feature `kafka`).

use std::sync::Arc;

use bytes::Bytes;

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
}

impl RawRecord {
    /// Bytes this record holds (for batch size limits).
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len)
    }
}
