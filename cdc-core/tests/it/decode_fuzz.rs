//! Property tests of the decoder: arbitrary bytes, mutated real events and random rows never
//! panic, and a failed record leaves nothing behind in the batch.

use std::sync::Arc;

use bytes::Bytes;
use std::collections::HashMap;

use cdc_core::decode::{DebeziumJsonDecoder, DecoderConfig, TableHint};
use cdc_core::model::TableId;
use cdc_core::source::RawRecord;
use cdc_core::testing::{schemaless_hints, Scenario};
use proptest::prelude::*;

fn record(key: Option<Vec<u8>>, value: Option<Vec<u8>>) -> RawRecord {
    RawRecord {
        topic: Arc::from("dbserver1.public.all_types"),
        partition: 0,
        offset: 1,
        key: key.map(Bytes::from),
        value: value.map(Bytes::from),
    }
}

fn real_values() -> Vec<String> {
    ["types", "types-noschema", "types-unwrap", "toast"]
        .iter()
        .flat_map(|s| Scenario::load(s).records())
        .filter_map(|r| r.value)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
                                   value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256))) {
        let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
        let t = TableId::new("public", "all_types");
        let _ = d.decode(Some(&t), &record(key, value));
        let _ = d.finish();
    }

    #[test]
    fn mutated_events_never_panic_and_roll_back(idx in 0usize..1000, pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let values = real_values();
        let mut v = values[idx % values.len()].clone().into_bytes();
        let p = pos.index(v.len());
        if cut { v.truncate(p) } else { v[p] = byte }
        let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
        let t = TableId::new("public", "all_types");
        let ok = d.decode(Some(&t), &record(Some(br#"{"id":1}"#.to_vec()), Some(v))).is_ok();
        let rows: usize = d.finish().map(|b| b.iter().map(|b| b.rows.num_rows()).sum()).unwrap_or(0);
        if !ok {
            prop_assert_eq!(rows, 0);
        }
    }
}

/// Decodes `records` routing each topic to its table (`routed`, the decoder's single-pass
/// path for envelopes after the first of a schema) or by the events' `source` blocks (the
/// general path); tombstones are always routed.
fn decode_all(
    records: &[cdc_core::testing::FixtureRecord],
    hints: &HashMap<TableId, TableHint>,
    routed: bool,
) -> (Vec<String>, Vec<arrow_array::RecordBatch>) {
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    for (table, hint) in hints {
        d.set_table_hint(table.clone(), hint.clone());
    }
    let mut outcomes = Vec::new();
    for r in records {
        let mut parts = r.topic.rsplit('.');
        let (table, schema) = (parts.next().unwrap(), parts.next().unwrap());
        let t = TableId::new(schema, table);
        let raw = RawRecord {
            topic: Arc::from(r.topic.as_str()),
            partition: r.partition,
            offset: r.offset,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
        };
        let route = (routed || r.value.is_none()).then_some(&t);
        outcomes.push(format!(
            "{:?}",
            d.decode(route, &raw).map_err(|e| e.to_string())
        ));
    }
    let mut rows = Vec::new();
    for b in d.finish().expect("finish") {
        outcomes.push(format!("{:?} {:?} {:?}", b.table, b.events, b.unchanged));
        rows.push(b.rows);
    }
    (outcomes, rows)
}

/// The single-pass path decodes every real event exactly as the general path does, with and
/// without schemas in the records.
#[tokio::test]
async fn single_pass_and_general_path_decode_every_fixture_alike() {
    for s in Scenario::all()
        .into_iter()
        .filter(|s| s.variant() != "unwrap")
    {
        let records = s.records();
        let hints = schemaless_hints(&s).await;
        let ((single, single_rows), (general, general_rows)) = (
            decode_all(&records, &hints, true),
            decode_all(&records, &hints, false),
        );
        assert!(single_rows == general_rows, "{}: rows differ", s.name);
        let first_difference = single.iter().zip(&general).position(|(a, b)| a != b);
        if let Some(i) = first_difference {
            panic!("{}: outcome {i}:\n{}\n{}", s.name, single[i], general[i]);
        }
        assert_eq!(single.len(), general.len(), "{}", s.name);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A mutated event after an intact one of the same schema (so the single-pass path reads
    /// it) never panics, and when it fails nothing of it stays in the batch.
    #[test]
    fn mutated_events_on_the_single_pass_path_roll_back(idx in 0usize..1000, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let values: Vec<String> = Scenario::load("types").records().into_iter().filter_map(|r| r.value).collect();
        let intact = values[idx % values.len()].clone();
        let mut v = intact.clone().into_bytes();
        // Only the payload half: the schema half must match for the single pass to run.
        let start = intact.find(r#","payload":"#).map_or(0, |i| i + 11);
        let p = start + pos.index(v.len() - start);
        v[p] = byte;
        let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
        let t = TableId::new("public", "all_types");
        let key = Some(br#"{"id":1}"#.to_vec());
        let _ = d.decode(Some(&t), &record(key.clone(), Some(intact.into_bytes())));
        let before = d.buffered_rows();
        let ok = d.decode(Some(&t), &record(key, Some(v))).is_ok();
        if !ok {
            prop_assert_eq!(d.buffered_rows(), before);
        }
        let _ = d.finish();
    }
}
