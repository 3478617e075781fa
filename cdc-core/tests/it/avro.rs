//! Debezium events captured with Confluent's real `AvroConverter` (every base scenario, see
//! `tests/avro/`) fold to the scenarios' `expected/` state, give the same Arrow columns as the
//! JSON captures, and fail clearly when a schema cannot be had or a record is corrupt.

use std::collections::BTreeMap;
use std::sync::Arc;

use cdc_core::decode::{DebeziumJsonDecoder, DecoderConfig, MemoryRegistry, SchemaRegistry};
use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::RawRecord;
use cdc_core::testing::avro::{AvroScenario, RecordsSource, AVRO_SCENARIOS};

use crate::common::assert_expected;

async fn sync_avro(scenario: &AvroScenario, batch_events: usize) -> MemoryWarehouse {
    let wh = MemoryWarehouse::new();
    let mut config = PipelineConfig::default();
    config.limits.max_events = batch_events;
    let registry: Arc<dyn SchemaRegistry> = scenario.registry();
    let decoder = DebeziumJsonDecoder::new(config.decoder.clone()).with_schema_registry(registry);
    let mut pipeline = Pipeline::with_decoder(config, &wh, Box::new(decoder)).unwrap();
    let mut source = RecordsSource::new(scenario.records());
    let stats = pipeline.run_to_end(&mut source, |_| {}).await.unwrap();
    assert_eq!(stats.dead_lettered, 0);
    wh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_avro_capture_folds_to_the_expected_state() {
    for name in AVRO_SCENARIOS {
        let scenario = AvroScenario::load(name);
        for batch_events in [1_000_000, 100, 7] {
            let wh = sync_avro(&scenario, batch_events).await;
            assert_expected(&scenario.base, &wh);
        }
    }
}

/// The Arrow schema (types and field metadata) of every table after decoding all records.
fn decoded_schemas(
    decoder: &mut DebeziumJsonDecoder,
    records: &[RawRecord],
) -> BTreeMap<String, Vec<arrow_schema::Schema>> {
    for r in records {
        let (schema, table) = r.topic.rsplit_once('.').unwrap();
        let schema = schema.rsplit('.').next().unwrap();
        decoder
            .decode(Some(&TableId::new(schema, table)), r)
            .unwrap();
    }
    let mut schemas: BTreeMap<String, Vec<arrow_schema::Schema>> = BTreeMap::new();
    for batch in decoder.finish().unwrap() {
        let schema = batch.rows.schema().as_ref().clone();
        let list = schemas.entry(batch.table.to_string()).or_default();
        if list.last() != Some(&schema) {
            list.push(schema);
        }
    }
    schemas
}

#[test]
fn avro_and_json_captures_give_the_same_columns() {
    for name in AVRO_SCENARIOS {
        let avro = AvroScenario::load(name);
        let json_records: Vec<RawRecord> = avro
            .base
            .records()
            .into_iter()
            .map(|r| r.into_raw())
            .collect();
        let mut json = DebeziumJsonDecoder::new(DecoderConfig::default());
        let mut from_avro = DebeziumJsonDecoder::new(DecoderConfig::default())
            .with_schema_registry(avro.registry());
        assert_eq!(
            decoded_schemas(&mut from_avro, &avro.records()),
            decoded_schemas(&mut json, &json_records),
            "{name}"
        );
    }
}

#[test]
fn an_unknown_schema_id_or_a_missing_registry_is_an_error_naming_the_record() {
    let scenario = AvroScenario::load("crud");
    let record = scenario.records().remove(3);
    let mut no_registry = DebeziumJsonDecoder::new(DecoderConfig::default());
    let e = no_registry.decode(None, &record).unwrap_err().to_string();
    assert!(e.contains("no schema registry"), "{e}");
    assert!(e.contains("dbserver1.public.customers[0]@3"), "{e}");
    let empty: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::new());
    let mut unknown =
        DebeziumJsonDecoder::new(DecoderConfig::default()).with_schema_registry(empty);
    let e = unknown.decode(None, &record).unwrap_err().to_string();
    assert!(e.contains("schema id 2"), "{e}");
}

/// Every record cut short, or with one byte changed, decodes or fails with an error; never a
/// panic, and a failed record leaves nothing in the batch.
#[test]
fn corrupt_avro_records_fail_cleanly() {
    for name in AVRO_SCENARIOS {
        let scenario = AvroScenario::load(name);
        let registry: Arc<dyn SchemaRegistry> = scenario.registry();
        for record in scenario.records().into_iter().filter(|r| r.value.is_some()) {
            let value = record.value.clone().unwrap();
            let mut variants: Vec<Vec<u8>> =
                (5..value.len()).map(|n| value[..n].to_vec()).collect();
            for i in (5..value.len()).step_by(3) {
                let mut v = value.to_vec();
                v[i] ^= 0x41;
                variants.push(v);
            }
            for v in variants {
                let mut decoder = DebeziumJsonDecoder::new(DecoderConfig::default())
                    .with_schema_registry(registry.clone());
                let spoiled = RawRecord {
                    value: Some(v.into()),
                    ..record.clone()
                };
                if decoder.decode(None, &spoiled).is_err() {
                    assert_eq!(decoder.buffered_rows(), 0, "{name}");
                }
            }
        }
    }
}
