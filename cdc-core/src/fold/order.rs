//! The events of a fold in capture order, and where they are kept meanwhile.

use std::ops::Index;

use crate::model::{Checkpoint, EventMeta, FirstOffsets, Op};

/// Every event of a fold's batches, in batch order, left in the batches' own vectors (copying
/// them into one took a fifth of the fold's time on its thread, with the other core idle).
#[derive(Debug, Default)]
pub(crate) struct Events {
    parts: Vec<Vec<EventMeta>>,
    /// Index of each part's first event.
    starts: Vec<usize>,
    len: usize,
}

impl Events {
    /// Appends `part`'s events after the others.
    pub(crate) fn push(&mut self, part: Vec<EventMeta>) {
        if part.is_empty() {
            return;
        }
        self.starts.push(self.len);
        self.len += part.len();
        self.parts.push(part);
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &EventMeta> {
        self.parts.iter().flatten()
    }
}

impl From<Vec<EventMeta>> for Events {
    fn from(events: Vec<EventMeta>) -> Self {
        let mut all = Events::default();
        all.push(events);
        all
    }
}

impl Index<usize> for Events {
    type Output = EventMeta;

    fn index(&self, i: usize) -> &EventMeta {
        // The last part starting at or before `i` (parts are never empty).
        let part = match self.parts.len() {
            1 => 0,
            _ => self
                .starts
                .partition_point(|&start| start <= i)
                .saturating_sub(1),
        };
        &self.parts[part][i - self.starts[part]]
    }
}

/// Row indices in capture order: each topic-partition in offset order, partitions merged by the
/// database's commit order (then Kafka coordinates). A merge rather than a sort, because the two
/// orders need not agree and only the per-partition one is authoritative. (This orders a copy
/// of `events`: the fold orders its events where the decoders left them.)
pub fn capture_order(events: &[EventMeta]) -> Vec<usize> {
    CaptureOrder::of(&Events::from(events.to_vec())).order
}

/// The events of a batch in capture order, with the positions they cover.
pub(crate) struct CaptureOrder {
    /// Row indices in capture order (see [`capture_order`]).
    pub(crate) order: Vec<usize>,
    /// Every partition's next offset after the events.
    pub(crate) checkpoint: Checkpoint,
    /// Every partition's first offset among the events.
    pub(crate) first_offsets: FirstOffsets,
    /// Some event is a truncate.
    pub(crate) truncates: bool,
}

impl CaptureOrder {
    pub(crate) fn of(events: &Events) -> Self {
        let (mut queues, truncates) = partition_queues(events);
        let (mut checkpoint, mut first_offsets) = (Checkpoint::default(), FirstOffsets::default());
        for q in &queues {
            let (first, last) = (&events[q[0]].position, &events[q[q.len() - 1]].position);
            checkpoint.advance(&first.topic, first.partition, last.offset);
            first_offsets.note(&first.topic, first.partition, first.offset);
        }
        let order = match queues.len() {
            0 => Vec::new(),
            1 => queues.pop().expect("one queue"),
            _ => merge_queues(events, &queues),
        };
        CaptureOrder {
            order,
            checkpoint,
            first_offsets,
            truncates,
        }
    }
}

/// The row indices of each topic-partition, in offset order. Events come in runs of one
/// partition, so the last partition is tried before the map; a queue is sorted only when its
/// offsets came out of order (checked as they come: looking events up again by index was a
/// tenth of the fold). Also says whether some event is a truncate, while they are at hand.
fn partition_queues(events: &Events) -> (Vec<Vec<usize>>, bool) {
    let mut index: foldhash::HashMap<(&str, i32), usize> = Default::default();
    let mut queues: Vec<Queue> = Vec::new();
    let mut last: Option<(&str, i32, usize)> = None;
    let mut truncates = false;
    for (i, e) in events.iter().enumerate() {
        truncates |= e.op == Op::Truncate;
        let tp = (&*e.position.topic, e.position.partition);
        // A run's events share one topic string: the pointer says so before the bytes do.
        let q = match last {
            Some((t, p, q)) if p == tp.1 && (std::ptr::eq(t, tp.0) || t == tp.0) => q,
            _ => *index.entry(tp).or_insert_with(|| {
                queues.push(Queue::default());
                queues.len() - 1
            }),
        };
        last = Some((tp.0, tp.1, q));
        queues[q].push(i, e.position.offset);
    }
    let queues = (queues.into_iter())
        .map(|mut q| {
            if !q.in_order {
                q.rows.sort_by_key(|&i| events[i].position.offset);
            }
            q.rows
        })
        .collect();
    (queues, truncates)
}

/// One topic-partition's rows as they come, and whether their offsets rose all along.
struct Queue {
    rows: Vec<usize>,
    last_offset: i64,
    in_order: bool,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            rows: Vec::new(),
            last_offset: i64::MIN,
            in_order: true,
        }
    }
}

impl Queue {
    fn push(&mut self, row: usize, offset: i64) {
        self.in_order &= offset >= self.last_offset;
        self.last_offset = offset;
        self.rows.push(row);
    }
}

/// The partitions' queues merged by [`SourcePosition::cmp_capture_order`].
///
/// [`SourcePosition::cmp_capture_order`]: crate::model::SourcePosition::cmp_capture_order
fn merge_queues(events: &Events, queues: &[Vec<usize>]) -> Vec<usize> {
    let mut heads = vec![0usize; queues.len()];
    let mut out = Vec::with_capacity(events.len());
    loop {
        let mut best: Option<usize> = None;
        for (q, queue) in queues.iter().enumerate() {
            let Some(&i) = queue.get(heads[q]) else {
                continue;
            };
            best = match best {
                None => Some(q),
                Some(b) => {
                    let j = queues[b][heads[b]];
                    if events[i]
                        .position
                        .cmp_capture_order(&events[j].position)
                        .is_lt()
                    {
                        Some(q)
                    } else {
                        Some(b)
                    }
                }
            };
        }
        let Some(q) = best else { break };
        out.push(queues[q][heads[q]]);
        heads[q] += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DbPosition, SourcePosition};

    fn events(partition: i32, offsets: std::ops::Range<i64>) -> Vec<EventMeta> {
        (offsets.map(|offset| EventMeta {
            op: Op::Update,
            position: SourcePosition {
                topic: "x.s.t".into(),
                partition,
                offset,
                db: DbPosition::Unknown,
            },
            source_ts_ms: None,
            tx_id: None,
            tombstone_of_delete: false,
        }))
        .collect()
    }

    #[test]
    fn events_kept_in_parts_read_as_one_sequence() {
        let mut all = Events::default();
        all.push(events(0, 0..3));
        all.push(Vec::new());
        all.push(events(1, 0..2));
        all.push(events(0, 3..5));
        let flat: Vec<EventMeta> = [events(0, 0..3), events(1, 0..2), events(0, 3..5)].concat();
        assert_eq!(all.len(), flat.len());
        for (i, e) in flat.iter().enumerate() {
            assert_eq!(&all[i], e, "event {i}");
        }
        assert!(all.iter().eq(flat.iter()));
        // Partition 0's five events in offset order, then partition 1's two (no database
        // positions: the Kafka coordinates decide).
        assert_eq!(CaptureOrder::of(&all).order, [0, 1, 2, 5, 6, 3, 4]);
        assert_eq!(capture_order(&flat), [0, 1, 2, 5, 6, 3, 4]);
    }

    #[test]
    fn a_partition_read_out_of_offset_order_is_put_in_order() {
        let mut all = Events::default();
        all.push(events(0, 3..5));
        all.push(events(1, 0..1));
        all.push(events(0, 0..3));
        assert_eq!(CaptureOrder::of(&all).order, [3, 4, 5, 0, 1, 2]);
    }
}
