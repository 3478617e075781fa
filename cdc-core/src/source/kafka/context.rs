//! The consumer's context: partition ends from librdkafka's statistics, and (in a consumer
//! group) the partitions rebalances assign and revoke, handed to the source between reads.

use std::collections::HashMap;
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;

/// A topic-partition.
pub(super) type TopicPartition = (String, i32);

/// What rebalances changed since the source last looked.
#[derive(Debug, Default)]
struct GroupChanges {
    /// Assigned by the group, waiting to be assigned at their tables' checkpoints.
    pub assigned: Vec<TopicPartition>,
    /// Taken away: records of theirs not yet committed are dropped.
    pub revoked: Vec<TopicPartition>,
}

/// The consumer's context.
#[derive(Default)]
pub(super) struct SourceContext {
    /// Partition ends (high watermarks) from librdkafka's periodic statistics, so lag in
    /// offsets costs no request of its own.
    pub ends: Mutex<HashMap<TopicPartition, i64>>,
    group: Mutex<GroupChanges>,
    /// Whether a rebalance has given this member its share (even none).
    pub joined: std::sync::atomic::AtomicBool,
}

impl SourceContext {
    fn changes(&self) -> std::sync::MutexGuard<'_, GroupChanges> {
        self.group.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the partitions assigned since the last call.
    pub fn take_assigned(&self) -> Vec<TopicPartition> {
        std::mem::take(&mut self.changes().assigned)
    }

    /// Takes the partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<TopicPartition> {
        std::mem::take(&mut self.changes().revoked)
    }

    /// Whether partitions wait to be positioned.
    pub fn has_assigned(&self) -> bool {
        !self.changes().assigned.is_empty()
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                if partition >= 0 && p.hi_offset >= 0 {
                    ends.insert((name.clone(), partition), p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    /// Does not assign what the group assigns: the partitions wait (the group's rebalance with
    /// them) until the source has read their tables' checkpoints and assigns them there
    /// (`rd_kafka_incremental_assign` may be called outside this callback, and the group
    /// completes the rebalance then). The group's committed offsets never position anything,
    /// and no fetch starts anywhere else first. What the group revokes is let go at once: the
    /// batch being read is not committed yet, and its records of those partitions are dropped.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions = topic_partitions(tpl);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(partitions = ?partitions, "the consumer group assigned partitions");
                self.joined
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if partitions.is_empty() {
                    // Nothing to position: the rebalance completes now.
                    assign(consumer, cooperative, &TopicPartitionList::new())
                } else {
                    self.changes().assigned.extend(partitions);
                    Ok(())
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                tracing::info!(partitions = ?partitions, lost, "the consumer group revoked partitions");
                let mut group = self.changes();
                // Only partitions assigned by the source are in librdkafka's assignment.
                let mut held = TopicPartitionList::new();
                for (topic, partition) in &partitions {
                    let tp = (topic.clone(), *partition);
                    if !group.assigned.contains(&tp) {
                        held.add_partition(topic, *partition);
                    }
                }
                group.assigned.retain(|tp| !partitions.contains(tp));
                group.revoked.extend(partitions);
                drop(group);
                match cooperative {
                    true => consumer.incremental_unassign(&held),
                    false => consumer.unassign(),
                }
            }
            other => Err(KafkaError::Rebalance(other.into())),
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "consumer group rebalance failed");
        }
    }
}

/// Adds `list` (partitions at their offsets) to what `consumer` reads, the way the group's
/// protocol wants it: incrementally (cooperative), or as the whole assignment (eager).
pub(super) fn assign<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    cooperative: bool,
    list: &TopicPartitionList,
) -> rdkafka::error::KafkaResult<()> {
    match cooperative {
        true => consumer.incremental_assign(list),
        false => consumer.assign(list),
    }
}

/// The topic-partitions of `list`.
pub(super) fn topic_partitions(list: &TopicPartitionList) -> Vec<TopicPartition> {
    (list.elements().iter())
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}
