//! Decode + fold throughput on the `crud` and `types` fixtures, against plain `serde_json`
//! parsing of the same bytes into `serde_json::Value` (the baseline), in the same run.
//!
//! `cargo bench -p cdc-core --features test-util --bench decode_fold`

use std::sync::Arc;

use bytes::Bytes;
use cdc_core::decode::{DebeziumJsonDecoder, DecoderConfig};
use cdc_core::fold::fold;
use cdc_core::model::TableId;
use cdc_core::source::RawRecord;
use cdc_core::testing::Scenario;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn records(name: &str) -> (TableId, Vec<RawRecord>) {
    let scenario = Scenario::load(name);
    let table = scenario.tables[0].0.clone();
    let records = scenario
        .records()
        .into_iter()
        .filter(|r| r.value.is_some())
        .map(|r| RawRecord {
            topic: Arc::from(r.topic.as_str()),
            partition: r.partition,
            offset: r.offset,
            key: r.key.map(Bytes::from),
            value: r.value.map(Bytes::from),
        })
        .collect();
    (table, records)
}

fn bench(c: &mut Criterion) {
    for name in ["crud", "types"] {
        let (table, records) = records(name);
        let bytes: u64 = records.iter().map(|r| r.size() as u64).sum();
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(records.len() as u64));
        group.bench_function("serde_json_value", |b| {
            b.iter(|| {
                for r in &records {
                    let v: serde_json::Value =
                        serde_json::from_slice(r.value.as_ref().unwrap()).unwrap();
                    black_box(v);
                }
            })
        });
        group.bench_function("decode_fold", |b| {
            b.iter(|| {
                let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
                for r in &records {
                    d.decode(Some(&table), r).unwrap();
                }
                let set = fold(&table, None, None, d.finish().unwrap()).unwrap();
                black_box(set);
            })
        });
        group.finish();
        eprintln!("{name}: {} records, {bytes} bytes", records.len());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
