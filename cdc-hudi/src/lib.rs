//! The hudi adapter of cdc-lake. Its `TableSink` arrives with its own issue; until then the crate only
//! re-exports the core contract it will implement, so the facade's `hudi` feature already resolves.

pub use cdc_core::sink::TableSink;
