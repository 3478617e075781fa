//! Decode + fold throughput on the `crud` and `types` fixtures, against plain `serde_json`
//! parsing of the same bytes into `serde_json::Value` (the baseline), in the same run; and
//! decode alone on a generated backlog of the `crud` fixture's shape (schema-enabled and
//! schemaless), against a scan of the same bytes that only counts their quotes (the floor:
//! touching every byte once), on one core and on two (`decode_all`).
//!
//! Avro: the same scenarios captured with Confluent's `AvroConverter`, decoded into the same
//! columns, beside the JSON decode of the JSON captures and `apache-avro`'s decode of the same
//! bodies into its `Value` trees (what a user would reach for), in the same run.
//!
//! `cargo bench -p cdc-core --features test-util --bench decode_fold`

use std::sync::Arc;

use bytes::Bytes;
use cdc_core::decode::{DebeziumJsonDecoder, DecoderConfig, Routed, TableHint};
use cdc_core::fold::fold;
use cdc_core::model::TableId;
use cdc_core::source::RawRecord;
use cdc_core::testing::backlog::{generate, BacklogSpec};
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
            value_schema: None,
            key_schema: None,
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

fn backlog_records(with_schema: bool) -> Vec<RawRecord> {
    let spec = BacklogSpec {
        snapshot_rows: 10_000,
        changes: 10_000,
        seed: 42,
        with_schema,
    };
    generate(&spec).records()
}

/// The table's schema and key as the schema-enabled events give them, for schemaless ones.
fn customers_hint(table: &TableId) -> TableHint {
    let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
    d.decode(Some(table), &backlog_records(true)[0]).unwrap();
    let batch = d.finish().unwrap().remove(0);
    TableHint {
        schema: Some(batch.rows.schema()),
        key_columns: Some(vec!["id".to_string()]),
    }
}

fn bench_backlog(c: &mut Criterion) {
    let table = TableId::new("public", "customers");
    let hint = customers_hint(&table);
    for (name, with_schema) in [("backlog_schema", true), ("backlog_schemaless", false)] {
        let records = backlog_records(with_schema);
        let bytes: u64 = records.iter().map(|r| r.size() as u64).sum();
        let decoder = || {
            let mut d = DebeziumJsonDecoder::new(DecoderConfig::default());
            d.set_table_hint(table.clone(), hint.clone());
            d
        };
        // Bytes per second; events per second are the record count over the time.
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function("scan_quotes", |b| {
            b.iter(|| {
                let quotes: usize = records
                    .iter()
                    .map(|r| memchr::memchr_iter(b'"', r.value.as_ref().unwrap()).count())
                    .sum();
                black_box(quotes)
            })
        });
        group.bench_function("decode", |b| {
            b.iter(|| {
                let mut d = decoder();
                for r in &records {
                    d.decode(Some(&table), r).unwrap();
                }
                black_box(d.finish().unwrap())
            })
        });
        let routed: Vec<Routed> = records.iter().map(|r| (Some(&table), r)).collect();
        group.bench_function("decode_all_two_threads", |b| {
            b.iter(|| {
                let mut d = decoder();
                d.decode_all(&routed).unwrap();
                black_box(d.finish().unwrap())
            })
        });
        group.finish();
        eprintln!("{name}: {} records, {bytes} bytes", records.len());
    }
}

fn bench_avro(c: &mut Criterion) {
    use cdc_core::testing::avro::AvroScenario;
    for name in ["crud", "types"] {
        let avro = AvroScenario::load(name);
        let table = avro.base.tables[0].0.clone();
        let on_table = |r: &RawRecord| r.value.is_some() && r.topic.ends_with(&*table.name);
        let avro_records: Vec<RawRecord> = avro.records().into_iter().filter(on_table).collect();
        let (_, json_records) = records(name);
        let json_records: Vec<RawRecord> = json_records.into_iter().filter(on_table).collect();
        let registry = avro.registry();
        let schemas: std::collections::HashMap<u32, apache_avro::Schema> = avro
            .schemas()
            .into_iter()
            .map(|(id, text)| (id, apache_avro::Schema::parse_str(&text).unwrap()))
            .collect();
        let mut group = c.benchmark_group(format!("avro_{name}"));
        group.throughput(Throughput::Elements(avro_records.len() as u64));
        // One decoder per path, kept across iterations: schemas parsed once, as in a stream.
        let mut json = DebeziumJsonDecoder::new(DecoderConfig::default());
        group.bench_function("json_decode", |b| {
            b.iter(|| {
                let d = &mut json;
                for r in &json_records {
                    d.decode(Some(&table), r).unwrap();
                }
                black_box(d.finish().unwrap());
            })
        });
        let mut from_avro =
            DebeziumJsonDecoder::new(DecoderConfig::default()).with_schema_registry(registry);
        group.bench_function("avro_decode", |b| {
            b.iter(|| {
                let d = &mut from_avro;
                for r in &avro_records {
                    d.decode(Some(&table), r).unwrap();
                }
                black_box(d.finish().unwrap());
            })
        });
        group.bench_function("apache_avro_value", |b| {
            b.iter(|| {
                for r in &avro_records {
                    let v = r.value.as_ref().unwrap();
                    let id = cdc_core::testing::avro::schema_id(v);
                    let value = apache_avro::from_avro_datum(&schemas[&id], &mut &v[5..], None);
                    black_box(value.unwrap());
                }
            })
        });
        group.finish();
        let bytes = |rs: &[RawRecord]| rs.iter().map(|r| r.size()).sum::<usize>();
        eprintln!(
            "avro_{name}: {} events, {} bytes of Avro, {} of JSON",
            avro_records.len(),
            bytes(&avro_records),
            bytes(&json_records)
        );
    }
}

criterion_group!(benches, bench, bench_backlog, bench_avro);
criterion_main!(benches);
