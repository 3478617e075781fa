//! Property tests of the decoder: arbitrary bytes, mutated real events and random rows never
//! panic, and a failed record leaves nothing behind in the batch.

use std::sync::Arc;

use bytes::Bytes;
use cdc_core::decode::{DebeziumJsonDecoder, DecoderConfig};
use cdc_core::model::TableId;
use cdc_core::source::RawRecord;
use cdc_core::testing::Scenario;
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
