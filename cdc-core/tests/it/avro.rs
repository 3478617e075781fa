//! Debezium events captured with Confluent's real `AvroConverter` (every base scenario, see
//! `tests/avro/`) fold to the scenarios' `expected/` state, give the same Arrow columns as the
//! JSON captures, and fail clearly when a schema cannot be had or a record is corrupt.

use std::collections::BTreeMap;
use std::sync::Arc;

use cdc_core::decode::{DebeziumJsonDecoder, DecoderConfig, MemoryRegistry, SchemaRegistry};
use cdc_core::model::TableId;
use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::raw::RawFileSource;
use cdc_core::source::RawRecord;
use cdc_core::testing::avro::{
    AvroScenario, RecordsSource, SinkFormat, Tombstones, AVRO_SCENARIOS,
};

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
        // Every fifth record: each scenario's shapes, in a few seconds.
        let records = scenario.records().into_iter().filter(|r| r.value.is_some());
        for record in records.step_by(5) {
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

/// Syncs an S3-sink `AvroFormat` layout under `dir` with the plain pipeline (the files carry
/// their schemas: no registry).
async fn sync_files(
    dir: &std::path::Path,
    batch_events: usize,
    allow_gaps: bool,
) -> cdc_core::Result<MemoryWarehouse> {
    sync_files_with(dir, batch_events, allow_gaps, PipelineConfig::default()).await
}

async fn sync_files_with(
    dir: &std::path::Path,
    batch_events: usize,
    allow_gaps: bool,
    mut config: PipelineConfig,
) -> cdc_core::Result<MemoryWarehouse> {
    let wh = MemoryWarehouse::new();
    let mut source = RawFileSource::open(dir.to_str().unwrap()).await?;
    source.allow_gaps(allow_gaps);
    config.limits.max_events = batch_events;
    let mut pipeline = Pipeline::new(config, &wh)?;
    pipeline.run_to_end(&mut source, |_| {}).await?;
    Ok(wh)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sink_avro_container_files_fold_to_the_expected_state() {
    for name in AVRO_SCENARIOS {
        let scenario = AvroScenario::load(name);
        for (per_file, batch_events) in [(100, 1_000_000), (7, 5)] {
            let dir = tempfile::tempdir().unwrap();
            scenario.write_s3_layout(
                dir.path(),
                per_file,
                Tombstones::NotProduced,
                &SinkFormat::Avro,
            );
            let wh = sync_files(dir.path(), batch_events, false)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_expected(&scenario.base, &wh);
        }
    }
}

/// The S3 sink's `ParquetFormat` files of every capture (`tests/avro/parquet_layout.py`:
/// snappy, gzip and zstd, schema changes rotating files, keys files) fold to `expected/`: rows
/// read through their footer's Avro schema, no registry. A topic with truncate events cannot
/// have its keys stored (the sink fails on their null keys), so its key columns are given.
#[cfg(feature = "parquet")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sink_parquet_files_fold_to_the_expected_state() {
    for name in AVRO_SCENARIOS {
        let scenario = AvroScenario::load(name);
        let layout = scenario.dir.join("s3-parquet");
        let mut config = PipelineConfig::default();
        for (table, keys) in &scenario.base.tables {
            let files = std::fs::read_dir(layout.join(format!("dbserver1.{table}/partition=0")));
            let keyed = files
                .unwrap()
                .any(|f| f.unwrap().path().to_str().unwrap().contains(".keys."));
            let hint = cdc_core::decode::TableHint {
                schema: None,
                key_columns: Some(keys.clone()),
            };
            if !keyed {
                config.table_hints.insert(table.clone(), hint);
            }
        }
        assert_eq!(config.table_hints.is_empty(), name != "truncate", "{name}");
        for batch_events in [1_000_000, 5] {
            let wh = sync_files_with(&layout, batch_events, false, config.clone())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_expected(&scenario.base, &wh);
        }
    }
}

/// A damaged Parquet file, or one without parquet-avro's schema, is an error naming it.
#[cfg(feature = "parquet")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_parquet_files_are_errors_naming_the_file() {
    let scenario = AvroScenario::load("toast");
    let dir = tempfile::tempdir().unwrap();
    let layout = scenario.dir.join("s3-parquet");
    let partition = std::fs::read_dir(&layout)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(partition.join("partition=0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_str().unwrap().contains(".keys."))
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let target = dir
        .path()
        .join("t/partition=0/t+0+0000000000.snappy.parquet");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 9, 10] {
        std::fs::write(&target, &bytes[..cut]).unwrap();
        let e = sync_files(dir.path(), 1000, false).await.unwrap_err();
        assert!(
            e.to_string().contains("t+0+0000000000.snappy.parquet"),
            "{e}"
        );
    }
    // A Parquet file that is not parquet-avro's: no Avro schema to read its rows with.
    let batch = arrow_array::RecordBatch::try_from_iter([(
        "id",
        Arc::new(arrow_array::Int32Array::from(vec![1])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::write(&target, out).unwrap();
    let e = sync_files(dir.path(), 1000, false).await.unwrap_err();
    assert!(e.to_string().contains("parquet.avro.schema"), "{e}");
}

/// The S3 sink's `ByteArrayFormat` of the records' framed bytes (the `ByteArrayConverter`):
/// every capture, plain and gzipped, with the default and a longer separator. The source
/// measures each record with its schema (a body may hold the separator's bytes), from the
/// registry it shares with the decoder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sink_byte_array_files_fold_to_the_expected_state() {
    for name in AVRO_SCENARIOS {
        let scenario = AvroScenario::load(name);
        for (per_file, batch_events, separator, gzip) in [
            (100, 1_000_000, &b"\n"[..], false),
            (7, 5, &b"<|>"[..], true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let format = SinkFormat::ByteArray {
                separator: separator.to_vec(),
                gzip,
            };
            scenario.write_s3_layout(dir.path(), per_file, Tombstones::NotProduced, &format);
            let wh = MemoryWarehouse::new();
            let registry: Arc<dyn SchemaRegistry> = scenario.registry();
            let mut source = RawFileSource::open(dir.path().to_str().unwrap())
                .await
                .unwrap();
            source.set_byte_array_separator(separator);
            source.set_schema_registry(registry.clone());
            let mut config = PipelineConfig::default();
            config.limits.max_events = batch_events;
            let mut pipeline = Pipeline::with_schema_registry(config, &wh, registry).unwrap();
            pipeline
                .run_to_end(&mut source, |_| {})
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_expected(&scenario.base, &wh);
        }
    }
    // Without a registry the source cannot tell where a framed record ends: a clear error.
    let scenario = AvroScenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let format = SinkFormat::ByteArray {
        separator: b"\n".to_vec(),
        gzip: false,
    };
    scenario.write_s3_layout(dir.path(), 100, Tombstones::NotProduced, &format);
    let e = sync_files(dir.path(), 1000, false).await.unwrap_err();
    assert!(e.to_string().contains("--schema-registry"), "{e}");
}

/// The sink cannot store tombstones in Avro files: with `behavior.on.null.values=ignore` each
/// one leaves a missing offset, reported as a gap; `--allow-gaps` goes on, and as Debezium's
/// deletes carry the row, the table still ends right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_the_sink_skipped_are_gaps_unless_allowed() {
    let scenario = AvroScenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    scenario.write_s3_layout(dir.path(), 50, Tombstones::SkippedBySink, &SinkFormat::Avro);
    let Err(e) = sync_files(dir.path(), 1_000_000, false).await else {
        panic!("a gap expected");
    };
    assert!(e.to_string().contains("dbserver1.public.customers"), "{e}");
    let wh = sync_files(dir.path(), 1_000_000, true).await.unwrap();
    assert_expected(&scenario.base, &wh);
}

/// Our registry client against the registry's REST API served on 127.0.0.1: basic auth, a
/// registry that answers 503 at first (retried), an unknown id, wrong credentials; then a
/// whole capture decoded with schemas fetched over HTTP.
#[cfg(feature = "registry")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_come_from_a_confluent_registry_over_http() {
    use cdc_core::decode::avro::SchemaId;
    use cdc_core::decode::{ConfluentRegistry, RegistrySettings};
    use cdc_core::secrets::Secret;
    use cdc_core::testing::avro::RegistryServer;
    let scenario = AvroScenario::load("crud");
    let schemas = scenario.dir.join("schemas.json");
    let Some(server) = RegistryServer::start(&[
        "--schemas",
        schemas.to_str().unwrap(),
        "--user-info",
        "cdc:s3cret",
        "--fail-first",
        "2",
    ]) else {
        return;
    };
    let settings = |user_info: &str| RegistrySettings {
        user_info: Some(Secret::new(user_info)),
        ..RegistrySettings::from_env(server.url.clone())
    };
    let registry = ConfluentRegistry::new(settings("cdc:s3cret")).unwrap();
    let text = tokio::task::block_in_place(|| registry.schema(SchemaId::Confluent(2))).unwrap();
    assert_eq!(text, scenario.schemas()[&2]);
    let e = tokio::task::block_in_place(|| registry.schema(SchemaId::Confluent(99)))
        .unwrap_err()
        .0;
    assert!(e.contains("40403"), "{e}");
    let wrong = ConfluentRegistry::new(settings("cdc:wrong")).unwrap();
    let e = tokio::task::block_in_place(|| wrong.schema(SchemaId::Confluent(1)))
        .unwrap_err()
        .0;
    assert!(e.contains("401") && !e.contains("wrong"), "{e}");
    let requests = server.requests();
    assert_eq!(
        requests.iter().filter(|r| r.ends_with(" 503")).count(),
        2,
        "{requests:?}"
    );

    let wh = MemoryWarehouse::new();
    let config = PipelineConfig::default();
    let registry: Arc<dyn SchemaRegistry> =
        Arc::new(ConfluentRegistry::new(settings("cdc:s3cret")).unwrap());
    let decoder = DebeziumJsonDecoder::new(config.decoder.clone()).with_schema_registry(registry);
    let mut pipeline = Pipeline::with_decoder(config, &wh, Box::new(decoder)).unwrap();
    let mut source = RecordsSource::new(scenario.records());
    pipeline.run_to_end(&mut source, |_| {}).await.unwrap();
    assert_expected(&scenario.base, &wh);
    // One fetch per schema id, however many records and decoders used it.
    let fetched = server
        .requests()
        .iter()
        .filter(|r| r.contains("/schemas/ids/") && r.ends_with(" 200"))
        .count();
    assert_eq!(
        fetched,
        1 + scenario.schemas().len(),
        "{:?}",
        server.requests()
    );
}

/// With the topics' subjects registered (TopicNameStrategy), a pipeline loads every version's
/// schema before the first record: the records then need no `GET /schemas/ids/`. Every
/// capture, including schema_change's four value schemas of one subject.
#[cfg(feature = "registry")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_schemas_are_loaded_from_its_subjects_before_its_records() {
    use cdc_core::decode::{ConfluentRegistry, RegistrySettings};
    use cdc_core::testing::avro::RegistryServer;
    for name in AVRO_SCENARIOS {
        let scenario = AvroScenario::load(name);
        let (schemas, subjects) = (
            scenario.dir.join("schemas.json"),
            scenario.dir.join("subjects.json"),
        );
        let Some(server) = RegistryServer::start(&[
            "--schemas",
            schemas.to_str().unwrap(),
            "--subjects",
            subjects.to_str().unwrap(),
        ]) else {
            return;
        };
        let wh = MemoryWarehouse::new();
        let registry = ConfluentRegistry::new(RegistrySettings::from_env(server.url.clone()));
        let registry: Arc<dyn SchemaRegistry> = Arc::new(registry.unwrap());
        let mut pipeline =
            Pipeline::with_schema_registry(PipelineConfig::default(), &wh, registry).unwrap();
        let mut source = RecordsSource::new(scenario.records());
        pipeline.run_to_end(&mut source, |_| {}).await.unwrap();
        assert_expected(&scenario.base, &wh);
        let requests = server.requests();
        let by_id = requests
            .iter()
            .filter(|r| r.contains("/schemas/ids/"))
            .count();
        let versions = (requests.iter())
            .filter(|r| r.contains("/versions/") && r.ends_with(" 200"))
            .count();
        assert_eq!(
            (by_id, versions),
            (0, scenario.schemas().len()),
            "{name}: {requests:?}"
        );
    }
}

/// Real Avro records of every capture with bytes replaced, inserted or removed, and arbitrary
/// bodies behind a real schema id: decoding never panics, never allocates by a forged length
/// (a length beyond the record is an error before anything is reserved), and a failed record
/// leaves nothing in the batch. The same for container files made of them.
mod fuzz {
    use super::*;
    use cdc_core::decode::avro::container::{read_container, write_container};
    use proptest::prelude::*;

    /// Every capture's records with their registry, loaded once for all cases.
    fn corpus() -> &'static [(Arc<dyn SchemaRegistry>, RawRecord)] {
        static CORPUS: std::sync::OnceLock<Vec<(Arc<dyn SchemaRegistry>, RawRecord)>> =
            std::sync::OnceLock::new();
        CORPUS.get_or_init(|| {
            AVRO_SCENARIOS
                .iter()
                .flat_map(|name| {
                    let scenario = AvroScenario::load(name);
                    let registry: Arc<dyn SchemaRegistry> = scenario.registry();
                    scenario
                        .records()
                        .into_iter()
                        .filter(|r| r.value.is_some())
                        .map(move |r| (registry.clone(), r))
                })
                .collect()
        })
    }

    fn edit(bytes: &[u8], at: usize, byte: u8, how: u8) -> Vec<u8> {
        let mut v = bytes.to_vec();
        let at = at % (v.len() + 1);
        match how % 3 {
            0 if at < v.len() => v[at] = byte,
            1 => v.insert(at, byte),
            _ if at < v.len() => drop(v.remove(at)),
            _ => v.push(byte),
        }
        v
    }

    fn decode_leaves_nothing_on_error(registry: &Arc<dyn SchemaRegistry>, record: &RawRecord) {
        let mut decoder = DebeziumJsonDecoder::new(DecoderConfig::default())
            .with_schema_registry(registry.clone());
        if decoder.decode(None, record).is_err() {
            assert_eq!(decoder.buffered_rows(), 0);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn edited_records_never_panic(pick in any::<prop::sample::Index>(), at in any::<usize>(),
                                      byte in any::<u8>(), how in any::<u8>(), in_key in any::<bool>()) {
            let (registry, record) = &corpus()[pick.index(corpus().len())];
            let mut spoiled = record.clone();
            match (in_key, &record.key) {
                (true, Some(k)) => spoiled.key = Some(edit(k, at, byte, how).into()),
                _ => spoiled.value = Some(edit(record.value.as_ref().unwrap(), at, byte, how).into()),
            }
            decode_leaves_nothing_on_error(registry, &spoiled);
        }

        #[test]
        fn arbitrary_bodies_behind_a_real_schema_never_panic(pick in any::<prop::sample::Index>(),
                                                             body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (registry, record) = &corpus()[pick.index(corpus().len())];
            let mut framed = record.value.as_ref().unwrap()[..5].to_vec();
            framed.extend(body);
            let spoiled = RawRecord { value: Some(framed.into()), ..record.clone() };
            decode_leaves_nothing_on_error(registry, &spoiled);
        }

        #[test]
        fn edited_container_files_never_panic(at in any::<usize>(), byte in any::<u8>(), how in any::<u8>()) {
            let scenario = AvroScenario::load("types");
            let schemas = scenario.schemas();
            let records = scenario.records();
            let datums: Vec<&[u8]> = records.iter().filter_map(|r| r.value.as_deref()).map(|v| &v[5..]).collect();
            let file = write_container(&schemas[&2], &datums);
            let _ = read_container(edit(&file, at, byte, how).into());
        }

        #[cfg(feature = "parquet")]
        #[test]
        fn edited_parquet_files_never_panic(at in any::<usize>(), byte in any::<u8>(), how in any::<u8>()) {
            let dir = AvroScenario::load("types").dir.join("s3-parquet/dbserver1.public.all_types/partition=0");
            let file = std::fs::read(dir.join("dbserver1.public.all_types+0+0000000000.gz.parquet")).unwrap();
            let _ = cdc_core::decode::avro::parquet::read_parquet(edit(&file, at, byte, how).into());
        }

        #[test]
        fn edited_byte_array_files_never_panic(pick in any::<prop::sample::Index>(), at in any::<usize>(),
                                               byte in any::<u8>(), how in any::<u8>()) {
            use cdc_core::decode::avro::framed::FramedSplitter;
            let (registry, record) = &corpus()[pick.index(corpus().len())];
            let file = [record.value.as_ref().unwrap(), &b"\n"[..], record.value.as_ref().unwrap()].concat();
            let splitter = FramedSplitter::new(Some(registry.clone()), b"\n".to_vec());
            if let Ok(records) = splitter.split(&edit(&file, at, byte, how).into()) {
                for r in records {
                    decode_leaves_nothing_on_error(registry, &RawRecord { value: Some(r), ..record.clone() });
                }
            }
        }
    }
}

/// The AWS Glue Schema Registry's framing (header 3, compression, the schema version's UUID),
/// half the values zlib-compressed, schemas fetched with `GetSchemaVersion` from Glue on
/// moto_server: the crud capture, reframed so, folds to the expected state.
#[cfg(feature = "glue")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_come_from_the_glue_schema_registry() {
    use cdc_core::decode::GlueSchemaRegistry;
    use cdc_core::glue::GlueConfig;
    use cdc_core::testing::MotoServer;
    use std::io::Write;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.export_env();
    let scenario = AvroScenario::load("crud");
    moto.glue_call(
        "create_registry",
        serde_json::json!({"RegistryName": "cdc"}),
    );
    let mut versions = std::collections::HashMap::new();
    for (id, text) in scenario.schemas() {
        let created = moto
            .glue_call(
                "create_schema",
                serde_json::json!({"RegistryId": {"RegistryName": "cdc"}, "SchemaName": format!("s{id}"),
                    "DataFormat": "AVRO", "Compatibility": "NONE", "SchemaDefinition": text}),
            )
            .unwrap();
        let uuid = created["SchemaVersionId"]
            .as_str()
            .unwrap()
            .replace('-', "");
        let bytes: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&uuid[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        versions.insert(id, bytes);
    }
    let reframe = |bytes: &[u8], zlib: bool| {
        let id = cdc_core::testing::avro::schema_id(bytes);
        let mut out = vec![3, if zlib { 5 } else { 0 }];
        out.extend(&versions[&id]);
        if zlib {
            let mut enc = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::fast());
            enc.write_all(&bytes[5..]).unwrap();
            enc.finish().unwrap();
        } else {
            out.extend(&bytes[5..]);
        }
        bytes::Bytes::from(out)
    };
    let records: Vec<RawRecord> = scenario
        .records()
        .into_iter()
        .map(|r| RawRecord {
            key: r.key.as_deref().map(|k| reframe(k, false)),
            value: r.value.as_deref().map(|v| reframe(v, r.offset % 2 == 0)),
            ..r
        })
        .collect();
    let config = GlueConfig {
        endpoint: Some(moto.endpoint.clone()),
        region: Some("us-east-1".into()),
        ..GlueConfig::default()
    };
    let registry: Arc<dyn SchemaRegistry> = Arc::new(GlueSchemaRegistry::new(config).unwrap());
    let wh = MemoryWarehouse::new();
    let pipeline_config = PipelineConfig::default();
    let decoder = DebeziumJsonDecoder::new(pipeline_config.decoder.clone())
        .with_schema_registry(registry.clone());
    let mut pipeline = Pipeline::with_decoder(pipeline_config, &wh, Box::new(decoder)).unwrap();
    pipeline
        .run_to_end(&mut RecordsSource::new(records.clone()), |_| {})
        .await
        .unwrap();
    assert_expected(&scenario.base, &wh);
    // A Confluent-framed record is refused by name, not decoded with the wrong schema.
    let mut decoder =
        DebeziumJsonDecoder::new(DecoderConfig::default()).with_schema_registry(registry);
    let e = decoder
        .decode(None, &scenario.records()[0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("Confluent") && e.contains("@0"), "{e}");
}

/// A schema the registry cannot give stops the run even with a dead-letter location: the
/// record is fine and must be read again once the registry answers, never skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_schema_stops_the_run_instead_of_dead_lettering() {
    let scenario = AvroScenario::load("crud");
    let letters = tempfile::tempdir().unwrap();
    let wh = MemoryWarehouse::new();
    let config = PipelineConfig {
        dead_letter: Some(letters.path().to_str().unwrap().to_string()),
        ..PipelineConfig::default()
    };
    let empty: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::new());
    let decoder = DebeziumJsonDecoder::new(config.decoder.clone()).with_schema_registry(empty);
    let mut pipeline = Pipeline::with_decoder(config, &wh, Box::new(decoder)).unwrap();
    let mut source = RecordsSource::new(scenario.records());
    let Err(e) = pipeline.run_to_end(&mut source, |_| {}).await else {
        panic!("the run went on without its schemas");
    };
    assert!(
        matches!(e, cdc_core::Error::SchemaUnavailable { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("schema id"), "{e}");
    assert_eq!(std::fs::read_dir(letters.path()).unwrap().count(), 0);
    assert!(wh.table(&scenario.base.tables[0].0).is_none());
}

/// A value with bytes after it was not written with the schema its frame names.
#[test]
fn bytes_after_a_value_are_an_error() {
    let scenario = AvroScenario::load("crud");
    let mut record = scenario.records().remove(3);
    let mut value = record.value.unwrap().to_vec();
    value.push(0);
    record.value = Some(value.into());
    let mut decoder = DebeziumJsonDecoder::new(DecoderConfig::default())
        .with_schema_registry(scenario.registry());
    let e = decoder.decode(None, &record).unwrap_err().to_string();
    assert!(e.contains("1 bytes after the Avro value"), "{e}");
}

/// A datum of a container file that does not decode goes to the dead-letter location with the
/// writer schema it needs to be read later; the records around it are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_avro_datum_keeps_its_writer_schema() {
    use cdc_core::decode::avro::container::write_container;
    let scenario = AvroScenario::load("crud");
    let schemas = scenario.schemas();
    let records: Vec<RawRecord> = scenario.records().into_iter().take(10).collect();
    let mut values: Vec<Vec<u8>> = records
        .iter()
        .map(|r| r.value.as_ref().unwrap()[5..].to_vec())
        .collect();
    // Not UTF-8 inside a string column: the file still splits into datums, this one fails.
    let at = values[3].iter().position(|&b| b == b'@').expect("an email");
    values[3][at] = 0xff;
    let keys: Vec<&[u8]> = records
        .iter()
        .map(|r| &r.key.as_ref().unwrap()[5..])
        .collect();
    let id = |b: &bytes::Bytes| cdc_core::testing::avro::schema_id(b);
    let value_schema = &schemas[&id(records[0].value.as_ref().unwrap())];
    let key_schema = &schemas[&id(records[0].key.as_ref().unwrap())];
    let dir = tempfile::tempdir().unwrap();
    let topic = &*records[0].topic;
    let files = dir.path().join(topic).join("partition=0");
    std::fs::create_dir_all(&files).unwrap();
    let name = format!("{topic}+0+0000000000");
    let value_refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    std::fs::write(
        files.join(format!("{name}.avro")),
        write_container(value_schema, &value_refs),
    )
    .unwrap();
    std::fs::write(
        files.join(format!("{name}.keys.avro")),
        write_container(key_schema, &keys),
    )
    .unwrap();
    let letters = tempfile::tempdir().unwrap();
    let wh = MemoryWarehouse::new();
    let config = PipelineConfig {
        dead_letter: Some(letters.path().to_str().unwrap().to_string()),
        ..PipelineConfig::default()
    };
    let mut source = RawFileSource::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let stats = Pipeline::new(config, &wh)
        .unwrap()
        .run_to_end(&mut source, |_| {})
        .await
        .unwrap();
    assert_eq!((stats.dead_lettered, stats.events_applied), (1, 9));
    let letter = letters
        .path()
        .join(topic)
        .join("partition=0")
        .join(format!("{:020}.json", 3));
    let letter: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(letter).unwrap()).unwrap();
    assert_eq!(letter["value_schema"].as_str(), Some(value_schema.as_str()));
    assert_eq!(letter["key_schema"].as_str(), Some(key_schema.as_str()));
    assert!(
        letter["error"].as_str().unwrap().contains("UTF-8"),
        "{letter}"
    );
}
