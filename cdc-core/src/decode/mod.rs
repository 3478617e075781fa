//! Decoders turn raw Kafka records into [`ChangeBatch`](crate::model::ChangeBatch)es.
//!
//! Only Debezium's JSON (Kafka Connect JsonConverter) is implemented; Avro arrives with its own
//! issue and will sit beside it in [`debezium`].

pub mod debezium;

pub use debezium::json::{
    DebeziumJsonDecoder, DecodeStats, Decoded, DecoderConfig, TableHint, UnknownColumns,
};
