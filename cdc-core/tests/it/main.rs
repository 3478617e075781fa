//! Integration tests of cdc-core: the fixtures end to end through the raw-file source, the
//! pipeline and the reference sink; restarts; and fuzzing of the decoder.

mod avro;
mod common;
mod debezium_docs;
mod decode_fuzz;
mod fixtures;
#[cfg(feature = "kafka")]
mod kafka;
mod overtaken;
mod read_ahead;
mod restart;
mod routing;
#[cfg(feature = "s3")]
mod s3;
mod shapes;
mod tables_at_once;
