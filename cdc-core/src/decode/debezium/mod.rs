//! Debezium change events: envelope parsing ([`json`]), the Connect → Arrow type mapping
//! ([`types`]) and exact conversions of wire encodings ([`numeric`]).

pub(crate) mod columns;
pub mod json;
pub mod numeric;
pub mod types;
