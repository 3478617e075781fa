//! Decoders turn raw Kafka records into [`ChangeBatch`]es, behind one [`Decoder`] trait the
//! pipeline takes.
//!
//! Debezium's JSON (Kafka Connect JsonConverter) is [`DebeziumJsonDecoder`]; other wire
//! formats (Avro) sit beside it in [`debezium`].

pub mod avro;
mod config;
pub mod debezium;
mod outcome;

#[cfg(feature = "glue")]
pub use avro::GlueSchemaRegistry;
#[cfg(feature = "registry")]
pub use avro::{ConfluentRegistry, RegistrySettings};
pub use avro::{MemoryRegistry, RegistryError, SchemaId, SchemaRegistry};
pub use config::{DecoderConfig, TableHint, UnknownColumns};
pub use debezium::json::DebeziumJsonDecoder;
pub use debezium::parallel::Routed;
pub use outcome::{DecodeStats, Decoded};

use crate::error::Result;
use crate::model::{ChangeBatch, TableId};
use crate::source::RawRecord;

/// Turns raw records into columnar change batches, one table at a time.
pub trait Decoder: Send {
    /// Tells the decoder a table's schema and key (from the table itself or from the user),
    /// for records that carry none.
    fn set_table_hint(&mut self, table: TableId, hint: TableHint);

    /// Decodes one record. `table` is where the topic routes to; `None` lets the record name
    /// it. On error nothing of the record stays buffered.
    fn decode(&mut self, table: Option<&TableId>, record: &RawRecord) -> Result<Decoded>;

    /// Takes every batch decoded so far, in decode order per table.
    fn finish(&mut self) -> Result<Vec<ChangeBatch>>;

    /// Decodes `records` in order: one outcome per record, as [`Decoder::decode`] gives it.
    /// A decoder may spread the work over threads.
    fn decode_all(&mut self, records: &[Routed<'_>]) -> Result<Vec<Result<Decoded>>> {
        Ok(records.iter().map(|(t, r)| self.decode(*t, r)).collect())
    }

    /// Loads ahead the writer schemas the records of `topics` may name, where they come from a
    /// registry; decoders without one do nothing. A failure only means they are fetched as the
    /// records name them.
    fn preload_schemas(&mut self, _topics: &[String]) {}
}

impl Decoder for DebeziumJsonDecoder {
    fn set_table_hint(&mut self, table: TableId, hint: TableHint) {
        DebeziumJsonDecoder::set_table_hint(self, table, hint)
    }

    fn decode(&mut self, table: Option<&TableId>, record: &RawRecord) -> Result<Decoded> {
        DebeziumJsonDecoder::decode(self, table, record)
    }

    fn finish(&mut self) -> Result<Vec<ChangeBatch>> {
        DebeziumJsonDecoder::finish(self)
    }

    fn decode_all(&mut self, records: &[Routed<'_>]) -> Result<Vec<Result<Decoded>>> {
        DebeziumJsonDecoder::decode_all(self, records)
    }

    fn preload_schemas(&mut self, topics: &[String]) {
        DebeziumJsonDecoder::preload_schemas(self, topics)
    }
}
