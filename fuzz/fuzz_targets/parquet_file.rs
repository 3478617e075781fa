//! Parquet files of the S3 sink's `ParquetFormat` on arbitrary bytes: `read_parquet` never
//! panics (the parquet crate panics on some corrupt files; `read_parquet` turns that into an
//! error) and the rows it gives back decode or fail cleanly. Allocations are not bounded here:
//! the parquet crate's footer decoder reserves what a forged list length claims (fuzz/README.md).
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use cdc_core::decode::avro::parquet::read_parquet;
use cdc_core::decode::{DebeziumJsonDecoder, DecoderConfig};
use cdc_core::source::RawRecord;
use libfuzzer_sys::fuzz_target;

/// libfuzzer-sys aborts in its panic hook, before any `catch_unwind` can act. The parquet
/// crate panics on some corrupt files and `read_parquet` contains that (an error, not a
/// crash), so the hook only prints: a panic that reaches the fuzz target's own frame still
/// aborts the run (libfuzzer-sys catches it there) and is a finding.
fn panics_unwind() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            let file = info.location().map(|l| l.file()).unwrap_or_default();
            if !file.contains("/parquet-") && !file.contains("/arrow-") {
                eprintln!("{info}");
            }
        }))
    });
}

fuzz_target!(|data: &[u8]| {
    panics_unwind();
    let Ok(file) = read_parquet(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut decoder = DebeziumJsonDecoder::new(DecoderConfig::default());
    for (offset, datum) in file.datums.into_iter().take(64).enumerate() {
        let record = RawRecord {
            topic: Arc::from("dbserver1.public.t"),
            partition: 0,
            offset: offset as i64,
            key: None,
            value: Some(datum),
            value_schema: Some(file.schema.clone()),
            key_schema: None,
        };
        let _ = decoder.decode(None, &record);
    }
    let _ = decoder.finish();
});
