//! Debezium change events: envelope parsing ([`json`]), the Connect → Arrow type mapping
//! ([`types`]) and exact conversions of wire encodings ([`numeric`]).

mod avro_event;
pub(crate) mod columns;
mod envelope;
pub mod json;
mod keys;
pub mod numeric;
pub mod parallel;
mod scan;
mod single_pass;
mod table;
pub mod types;
