//! One batch through the pipeline: its records routed to their tables (leaving out what the
//! tables already hold), decoded, and folded into each table's change set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{dead_letter, Pipeline};
use crate::decode::{Decoded, Decoder, Routed};
use crate::error::{Error, Result};
use crate::fold::ChangeSet;
use crate::model::{ChangeBatch, Checkpoint, FirstOffsets, TableId};
use crate::shape::fold_shaped;
use crate::sink::TableSchema;
use crate::source::RawRecord;

impl Pipeline<'_> {
    /// Decodes, folds and commits one batch of records.
    pub async fn process_batch(&mut self, records: &[RawRecord]) -> Result<()> {
        let routed = self.route_batch(records.to_vec()).await?;
        let decoded = decode_routed(self.decoder()?, routed)?;
        let folded = self.fold_decoded(decoded).await?;
        self.apply_folded(folded).await
    }

    /// Routes each record to its table (opening the table), leaving out the records the table
    /// already holds. Records come in runs of one topic-partition: each run is routed, and its
    /// table's checkpoint looked up, once (per record this was a tenth of a backlog's main
    /// thread).
    pub(super) async fn route_batch(&mut self, mut records: Vec<RawRecord>) -> Result<RoutedBatch> {
        let mut tables = Vec::with_capacity(records.len());
        let mut kept = Vec::with_capacity(records.len());
        let mut counts = crate::metrics::ReadCounts::default();
        let mut run: Option<Run> = None;
        for record in &records {
            let current = match run.take() {
                Some(r) if r.holds(record) => r,
                ended => {
                    if let Some(r) = ended {
                        counts.add_many(&r.table, r.events, r.bytes);
                    }
                    self.start_run(record).await?
                }
            };
            let run = run.insert(current);
            run.events += 1;
            run.bytes += record.size() as u64;
            let done = run.next_offset.is_some_and(|next| record.offset < next);
            kept.push(!done);
            if !done {
                tables.push(run.table.clone());
            }
        }
        if let Some(r) = run {
            counts.add_many(&r.table, r.events, r.bytes);
        }
        counts.record();
        self.stats.records_read += records.len() as u64;
        let already = records.len() - tables.len();
        if already > 0 {
            self.stats.records_already_committed += already as u64;
            let mut kept = kept.into_iter();
            records.retain(|_| kept.next().unwrap_or(false));
        }
        Ok(RoutedBatch { tables, records })
    }

    /// The run of records of `record`'s topic-partition: its table (opened) and where the
    /// table's checkpoint says the partition goes on.
    async fn start_run(&mut self, record: &RawRecord) -> Result<Run> {
        let table = self.route(&record.topic);
        let mut next_offset = None;
        if let Some(t) = &table {
            self.open_table(t).await?;
            next_offset = self.tables[&**t]
                .checkpoint
                .next_offset(&record.topic, record.partition);
        }
        Ok(Run {
            topic: record.topic.clone(),
            partition: record.partition,
            table,
            next_offset,
            events: 0,
            bytes: 0,
        })
    }

    /// Sends bad records to the dead-letter location (or fails), then folds each table's
    /// batches into its change set. The decoder learns each table's new schema and key here,
    /// before the next batch is decoded.
    pub(super) async fn fold_decoded(&mut self, decoded: DecodedBatch) -> Result<Vec<ChangeSet>> {
        let DecodedBatch {
            without_row,
            batches,
            ..
        } = decoded;
        // Positions consumed without producing a row (control records, redundant tombstones,
        // dead letters): the checkpoint still moves past them.
        let mut consumed: HashMap<TableId, (Checkpoint, FirstOffsets)> = HashMap::new();
        for (table, record, outcome) in without_row {
            match outcome {
                Ok(_) => self.stats.control_records += 1,
                // A schema the registry did not give is no fault of the record: stop, and
                // read it again once the registry answers.
                Err(e @ Error::SchemaUnavailable { .. }) => return Err(e),
                Err(e) => {
                    let Some((store, prefix)) = &self.dead_letter else {
                        return Err(e);
                    };
                    dead_letter::write_dead_letter(store.as_ref(), prefix, &record, &e).await?;
                    let shown = table.as_ref().map(|t| t.to_string()).unwrap_or_default();
                    tracing::warn!(
                        table = %shown,
                        topic = %record.topic,
                        partition = record.partition,
                        offset = record.offset,
                        error = %e,
                        "record sent to the dead-letter location"
                    );
                    self.stats.dead_lettered += 1;
                    crate::metrics::dead_lettered(table.as_deref());
                }
            }
            if let Some(t) = table {
                let (positions, first) = consumed.entry(TableId::clone(&t)).or_default();
                positions.advance(&record.topic, record.partition, record.offset);
                first.note(&record.topic, record.partition, record.offset);
            }
        }
        let mut by_table: BTreeMap<TableId, Vec<ChangeBatch>> = BTreeMap::new();
        for b in batches {
            by_table.entry(b.table.clone()).or_default().push(b);
        }
        self.open_tables(by_table.keys().cloned()).await?;
        let mut folded = Vec::with_capacity(by_table.len());
        for (table, batches) in by_table {
            let state = &self.tables[&table];
            let shape = self.config.shapes.get(&table).cloned().unwrap_or_default();
            let mut changes = fold_shaped(&table, &shape, state.schema.as_ref(), batches)?;
            if let Some((positions, first)) = consumed.remove(&table) {
                changes.checkpoint.merge(&positions);
                changes.first_offsets.merge(&first);
            }
            // Later schemaless records of this table decode with what the table will have.
            let will_have = self.source_view(
                &table,
                &TableSchema {
                    schema: changes.schema.clone(),
                    key_columns: changes.key_columns.to_vec(),
                },
            );
            self.teach_decoder(&table, Some(&will_have))?;
            folded.push(changes);
        }
        Ok(folded)
    }
}

/// Consecutive records of one topic-partition, as [`Pipeline::route_batch`] routes them.
pub(super) struct Run {
    topic: Arc<str>,
    partition: i32,
    table: Option<Arc<TableId>>,
    /// The table's checkpoint for the partition: records before it are committed.
    next_offset: Option<i64>,
    events: u64,
    bytes: u64,
}

impl Run {
    fn holds(&self, record: &RawRecord) -> bool {
        self.partition == record.partition
            && (Arc::ptr_eq(&self.topic, &record.topic) || self.topic == record.topic)
    }
}

/// A batch's records that still need applying, with the table each routes to.
pub(super) struct RoutedBatch {
    tables: Vec<Option<Arc<TableId>>>,
    records: Vec<RawRecord>,
}

/// A routed batch decoded: the tables' change batches, and what folding still needs of the
/// records that gave no row.
pub(super) struct DecodedBatch {
    /// Records decoded, whatever their outcome.
    pub(super) records: usize,
    /// The records that gave no row (control records, redundant tombstones, failures) with
    /// their tables and outcomes, in order. Rows need nothing more of their records: they are
    /// let go at once rather than carried (and copied as the batch grows) to the fold.
    without_row: Vec<(Option<Arc<TableId>>, RawRecord, Result<Decoded>)>,
    pub(super) batches: Vec<ChangeBatch>,
}

impl DecodedBatch {
    /// Appends `later`, decoded after this batch.
    pub(super) fn extend(&mut self, later: DecodedBatch) {
        self.records += later.records;
        self.without_row.extend(later.without_row);
        self.batches.extend(later.batches);
    }
}

/// Decodes a routed batch and takes the decoder's change batches.
pub(super) fn decode_routed(
    decoder: &mut dyn Decoder,
    routed: RoutedBatch,
) -> Result<DecodedBatch> {
    let pairs: Vec<Routed> = (routed.tables.iter().map(Option::as_deref))
        .zip(&routed.records)
        .collect();
    let mut outcomes = decoder.decode_all(&pairs)?;
    drop(pairs);
    let records = routed.records.len();
    // Only a record that gave no row is kept (a failed one with its bytes, for the dead-letter
    // location, the others without); letting the rest go unmaps the input files while this
    // batch waits for the commit. (Unmapping them on a thread of its own instead measured no
    // faster, and mapped files then piled up: +35 MB peak.)
    let without_row: Vec<_> = (outcomes.iter_mut().enumerate())
        .filter(|(_, outcome)| !matches!(outcome, Ok(Decoded::Row(..) | Decoded::Tombstone(_))))
        .map(|(i, outcome)| {
            let outcome = std::mem::replace(outcome, Ok(Decoded::RedundantTombstone));
            let record = match outcome {
                Ok(_) => routed.records[i].without_bytes(),
                Err(_) => routed.records[i].clone(),
            };
            (routed.tables[i].clone(), record, outcome)
        })
        .collect();
    drop((routed, outcomes));
    let batches = decoder.finish()?;
    Ok(DecodedBatch {
        records,
        without_row,
        batches,
    })
}

/// The decoder did not come back from a decode task that failed (a bug, reported as such).
pub(super) fn lost_decoder() -> Error {
    Error::Config("the decoder was lost to a failed decode task".into())
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "test-util")]
    #[test]
    fn a_decoded_batch_keeps_only_the_records_without_a_row() {
        use super::*;
        use crate::decode::{DebeziumJsonDecoder, DecoderConfig};
        use crate::testing::backlog::{generate, BacklogSpec};
        let backlog = generate(&BacklogSpec {
            snapshot_rows: 3,
            changes: 0,
            seed: 1,
            with_schema: true,
        });
        let mut records = backlog.records();
        records[1].value = Some(bytes::Bytes::from_static(b"{not json"));
        let table = Some(Arc::new(TableId::new("public", "customers")));
        let routed = RoutedBatch {
            tables: vec![table; records.len()],
            records,
        };
        let mut decoder = DebeziumJsonDecoder::new(DecoderConfig::default());
        let decoded = decode_routed(&mut decoder, routed).unwrap();
        assert_eq!(decoded.records, 3);
        let [(table, record, outcome)] = &decoded.without_row[..] else {
            panic!("only the failed record is kept");
        };
        assert!(outcome.is_err());
        assert_eq!(record.offset, 1);
        assert!(
            record.value.is_some(),
            "its bytes, for the dead-letter location"
        );
        assert!(table.is_some());
    }
}
