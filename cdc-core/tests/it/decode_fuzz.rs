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
        value_schema: None,
        key_schema: None,
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
        let raw = r.clone().into_raw();
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

/// The last decoded row of each table, as text: its values, event and unchanged cells.
fn last_rows(d: &mut DebeziumJsonDecoder) -> Vec<String> {
    let batches = d.finish().expect("finish");
    batches
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| {
            let last = b.len() - 1;
            let unchanged: Vec<bool> = (0..b.rows.num_columns())
                .map(|c| b.unchanged.is_unchanged(c, last))
                .collect();
            // Columns only: the schema's metadata maps print in no fixed order.
            let row = b.rows.slice(last, 1);
            let (names, values) = (row.schema().fields().len(), row.columns());
            format!(
                "{} {names}\n{values:?}\n{:?} {unchanged:?}",
                b.table, b.events[last]
            )
        })
        .collect()
}

/// Schema-enabled events of real and generated shapes (the single pass reads them once their
/// schema was seen).
fn wrapped_values() -> &'static [String] {
    static VALUES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    VALUES.get_or_init(|| {
        let spec = cdc_core::testing::backlog::BacklogSpec {
            snapshot_rows: 20,
            changes: 40,
            seed: 7,
            with_schema: true,
        };
        let backlog = cdc_core::testing::backlog::generate(&spec).records();
        ["types", "crud"]
            .iter()
            .flat_map(|s| Scenario::load(s).records())
            .filter_map(|r| r.value)
            .chain(
                backlog
                    .into_iter()
                    .filter_map(|r| r.value)
                    .map(|v| String::from_utf8(v.to_vec()).unwrap()),
            )
            .filter(|v| v.contains(r#","payload":{"before""#))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An edited event decodes the same on the single pass (its schema seen just before) as on
    /// the general path: the same outcome, error text included (but for positions), and the
    /// same row, event and unchanged cells. Edits replace, insert or remove one payload byte.
    #[test]
    fn edited_events_decode_alike_on_both_paths(idx in 0usize..10_000, pos in any::<prop::sample::Index>(), byte in prop::sample::select(b" \"\\{}[],:0123456789.-+eEnulltruefalsx\x01".to_vec()), edit in 0u8..3) {
        let values = wrapped_values();
        let intact = values[idx % values.len()].clone();
        let start = intact.find(r#","payload":"#).unwrap() + 11;
        let mut v = intact.clone().into_bytes();
        let p = start + pos.index(v.len() - start - 1);
        match edit {
            0 => v[p] = byte,
            1 => v.insert(p, byte),
            _ => _ = v.remove(p),
        }
        let topic = cdc_core::testing::backlog::TOPIC;
        let t = TableId::new("public", "customers");
        let rec = |value: Vec<u8>| RawRecord {
            topic: Arc::from(topic),
            partition: 0,
            offset: 5,
            key: Some(Bytes::from_static(br#"{"id":1}"#)),
            value: Some(Bytes::from(value)), value_schema: None, key_schema: None, };
        // Both decoders saw the intact event; a space after `"schema":` keeps the second one's
        // edited event off the single pass (it needs the seen schema text right there).
        let decode = |value: Vec<u8>| {
            let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
            let _ = d.decode(Some(&t), &rec(intact.clone().into_bytes()));
            let rows_before = d.buffered_rows();
            let outcome = d.decode(Some(&t), &rec(value)).map_err(|e| e.to_string());
            // Error positions are the only thing the added space may move.
            let outcome = regex::Regex::new(r" at line \d+ column \d+|from index \d+").unwrap().replace_all(&format!("{outcome:?}"), "").to_string();
            let added = d.buffered_rows() - rows_before;
            (d, outcome, added)
        };
        let spaced = [&v[..10], b" ", &v[10..]].concat();
        let (mut single, single_outcome, single_added) = decode(v);
        let (mut general, general_outcome, general_added) = decode(spaced);
        prop_assert_eq!(&single_outcome, &general_outcome);
        prop_assert_eq!(single_added, general_added);
        if single_added > 0 {
            prop_assert_eq!(last_rows(&mut single), last_rows(&mut general));
        }
    }
}
