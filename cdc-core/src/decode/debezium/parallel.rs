//! Decoding a batch of records on two threads: the first half by the decoder itself, the
//! second by a fork of it (the same settings, hints and parsed schemas) on a scoped thread.
//! The fork's batches follow the decoder's own, so every table sees its events in order.
//!
//! The one thing a record's decoding takes from the records before it is whether the last
//! event of its partition was a delete (a tombstone after a delete is redundant). The split
//! point is therefore moved past any tombstone whose partition has no earlier record in the
//! second half; the fork's view of those partitions is then exact, and after the batch the
//! decoder takes over the fork's.

use std::collections::HashSet;
use std::sync::Arc;

use super::json::DebeziumJsonDecoder;
use crate::decode::Decoded;
use crate::error::Result;
use crate::model::TableId;
use crate::source::RawRecord;

/// Below this many records one thread decodes them: a thread costs more than it saves.
const MIN_PARALLEL: usize = 8_192;

/// A record to decode and the table its topic routes to.
pub type Routed<'r> = (Option<&'r TableId>, &'r RawRecord);

impl DebeziumJsonDecoder {
    /// Decodes `records` in order (on two threads when there are many); one outcome per
    /// record, as [`DebeziumJsonDecoder::decode`] would give it.
    pub fn decode_all(&mut self, records: &[Routed<'_>]) -> Result<Vec<Result<Decoded>>> {
        let split = match records.len() >= MIN_PARALLEL {
            true => split_point(records),
            false => records.len(),
        };
        if split == records.len() {
            return Ok(records.iter().map(|(t, r)| self.decode(*t, r)).collect());
        }
        let (first, second) = records.split_at(split);
        let mut fork = self.fork();
        let (mut outcomes, later) = std::thread::scope(|s| {
            let later = s.spawn(|| {
                let outcomes: Vec<_> = second.iter().map(|(t, r)| fork.decode(*t, r)).collect();
                (outcomes, fork)
            });
            // Room for the fork's outcomes too: appending them would copy these.
            let mut outcomes = Vec::with_capacity(records.len());
            outcomes.extend(first.iter().map(|(t, r)| self.decode(*t, r)));
            (outcomes, later.join())
        });
        let (later, fork) = later.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        self.absorb(fork)?;
        outcomes.extend(later);
        Ok(outcomes)
    }
}

/// Where the second half starts: the middle, moved on past every tombstone that would open
/// its partition's records in the second half.
fn split_point(records: &[Routed<'_>]) -> usize {
    let mut split = records.len() / 2;
    'scan: loop {
        let mut seen: HashSet<(&Arc<str>, i32)> = HashSet::new();
        for (i, (_, r)) in records.iter().enumerate().skip(split) {
            let partition = (&r.topic, r.partition);
            if r.value.is_none() && !seen.contains(&partition) {
                split = i + 1;
                continue 'scan;
            }
            seen.insert(partition);
        }
        return split;
    }
}

// The generated backlog lives with the test utilities.
#[cfg(all(test, feature = "test-util"))]
mod tests {
    use super::*;
    use crate::decode::DecoderConfig;
    use crate::testing::backlog::{generate, BacklogSpec, TOPIC};

    fn records(events: &[Option<String>]) -> Vec<RawRecord> {
        events
            .iter()
            .enumerate()
            .map(|(offset, e)| RawRecord {
                topic: TOPIC.into(),
                partition: 0,
                offset: offset as i64,
                key: None,
                value: e.clone().map(bytes::Bytes::from),
                value_schema: None,
                key_schema: None,
            })
            .collect()
    }

    #[test]
    fn two_threads_decode_what_one_does() {
        let spec = BacklogSpec {
            snapshot_rows: 6_000,
            changes: 6_000,
            seed: 3,
            with_schema: true,
        };
        let events: Vec<Option<String>> = generate(&spec).events.into_iter().map(Some).collect();
        let records = records(&events);
        let table = TableId::new("public", "customers");
        let routed: Vec<Routed> = records.iter().map(|r| (Some(&table), r)).collect();
        let decode = |parallel: bool| {
            let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
            let outcomes: Vec<Decoded> = match parallel {
                true => d.decode_all(&routed).unwrap(),
                false => routed.iter().map(|(t, r)| d.decode(*t, r)).collect(),
            }
            .into_iter()
            .map(|o| o.unwrap())
            .collect();
            let batches = d.finish().unwrap();
            (outcomes, batches)
        };
        let (one, one_batches) = decode(false);
        let (two, two_batches) = decode(true);
        assert_eq!(one, two);
        assert_eq!(
            two_batches.len(),
            one_batches.len() + 1,
            "the fork's batch follows the decoder's"
        );
        let rows = |b: &[crate::model::ChangeBatch]| {
            let all: Vec<_> = b.iter().map(|b| b.rows.clone()).collect();
            arrow_select::concat::concat_batches(&all[0].schema(), &all).unwrap()
        };
        assert_eq!(rows(&one_batches), rows(&two_batches));
        let ops = |b: &[crate::model::ChangeBatch]| -> Vec<_> {
            b.iter()
                .flat_map(|b| b.events.iter().map(|e| (e.op, e.position.offset)))
                .collect()
        };
        assert_eq!(ops(&one_batches), ops(&two_batches));
    }

    #[test]
    fn the_split_never_separates_a_tombstone_from_its_delete() {
        let mut events: Vec<Option<String>> = vec![Some("{}".into()); 100];
        events[50] = None;
        events[51] = None;
        events[60] = None;
        let records = records(&events);
        let routed: Vec<Routed> = records.iter().map(|r| (None, r)).collect();
        // 50 and 51 open the second half; 60 follows a record of its partition there.
        assert_eq!(split_point(&routed), 52);
        let mut other = records.clone();
        other[53].value = None;
        other[53].partition = 1;
        let routed: Vec<Routed> = other.iter().map(|r| (None, r)).collect();
        assert_eq!(
            split_point(&routed),
            54,
            "partition 1 opens with a tombstone at 53"
        );
    }
}
