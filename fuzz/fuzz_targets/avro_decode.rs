//! The Avro read paths on arbitrary bytes: never a panic, never an allocation that a length or
//! count field asks for without the bytes behind it (run with `-malloc_limit_mb`, see
//! fuzz/README.md).
//!
//! The first byte picks the path: a framed Kafka value decoded against the writer schemas the
//! real converter registered (every capture's), an Avro object container file, or a
//! `ByteArrayFormat` file split into framed records. Parquet files have their own target
//! (`parquet_file`): their footer is the parquet crate's to decode.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use cdc_core::decode::avro::container::read_container;
use cdc_core::decode::avro::framed::FramedSplitter;
use cdc_core::decode::{
    DebeziumJsonDecoder, DecoderConfig, MemoryRegistry, SchemaId, SchemaRegistry,
};
use cdc_core::source::RawRecord;
use libfuzzer_sys::fuzz_target;

/// The Avro captures, in the order fuzz/seed.py numbers them.
const SCENARIOS: [&str; 6] = ["crud", "pk_change", "schema_change", "toast", "truncate", "types"];

/// The schemas of every Avro capture, scenario `n`'s ids moved to `n * 100 + id`.
fn registry() -> Arc<dyn SchemaRegistry> {
    static REGISTRY: OnceLock<Arc<dyn SchemaRegistry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let registry = MemoryRegistry::new();
            let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../cdc-core/tests/data/avro");
            for (n, scenario) in SCENARIOS.iter().enumerate() {
                let path = format!("{data}/{scenario}/schemas.json");
                let text = std::fs::read_to_string(path).expect("schemas.json");
                let schemas: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(&text).expect("schemas.json");
                for (id, schema) in schemas {
                    let id: u32 = id.parse().expect("numeric id");
                    registry.insert(SchemaId::Confluent(n as u32 * 100 + id), schema);
                }
            }
            Arc::new(registry)
        })
        .clone()
}

fn decode(value: Bytes, value_schema: Option<Arc<str>>) {
    let mut decoder =
        DebeziumJsonDecoder::new(DecoderConfig::default()).with_schema_registry(registry());
    let record = RawRecord {
        topic: Arc::from("dbserver1.public.t"),
        partition: 0,
        offset: 0,
        key: None,
        value: Some(value),
        value_schema,
        key_schema: None,
    };
    if decoder.decode(None, &record).is_ok() {
        let _ = decoder.finish();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&path, rest)) = data.split_first() else {
        return;
    };
    let bytes = Bytes::copy_from_slice(rest);
    match path % 3 {
        0 => decode(bytes, None),
        1 => {
            if let Ok(file) = read_container(bytes) {
                for datum in file.datums {
                    decode(datum, Some(file.schema.clone()));
                }
            }
        }
        _ => {
            let splitter = FramedSplitter::new(Some(registry()), b"\n".to_vec());
            if let Ok(records) = splitter.split(&bytes) {
                for record in records.into_iter().take(64) {
                    decode(record, None);
                }
            }
        }
    }
});
