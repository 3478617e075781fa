//! Debezium change events: envelope parsing ([`json`]), the Connect → Arrow type mapping
//! ([`types`]) and exact conversions of wire encodings ([`numeric`]).

pub(crate) mod columns;
mod envelope;
pub mod json;
pub mod numeric;
pub mod parallel;
mod scan;
mod single_pass;
mod table;
pub mod types;
