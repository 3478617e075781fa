//! Debezium events in Avro, as Confluent's `AvroConverter` writes them: the wire frame
//! (magic byte 0, the writer schema's registry id, the Avro body), writer schemas from a
//! [`SchemaRegistry`], and the binary decoding that feeds the same column builders as the
//! JSON path (see [`crate::decode::DebeziumJsonDecoder`], which decodes both).

pub mod container;
pub(crate) mod de;
#[cfg(feature = "registry")]
mod registry;
pub(crate) mod schema;

#[cfg(feature = "registry")]
pub use registry::{ConfluentRegistry, RegistrySettings};

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

/// The Confluent wire frame: `0`, a 4-byte big-endian schema id, the Avro body.
pub(crate) fn confluent_frame(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => None,
    }
}

/// Whether a record's bytes are Confluent-framed Avro (JSON never starts with a NUL byte).
pub(crate) fn is_confluent_avro(bytes: &[u8]) -> bool {
    bytes.len() >= 5 && bytes[0] == 0
}

/// Why a writer schema could not be had.
#[derive(Debug, Clone)]
pub struct RegistryError(pub String);

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where writer schemas come from, by the id in each record's frame. Called once per id: the
/// decoder keeps every schema it was given.
pub trait SchemaRegistry: Send + Sync + fmt::Debug {
    /// The schema's JSON text, as registered.
    fn schema(&self, id: u32) -> Result<String, RegistryError>;
}

/// Schemas given up front (tests, or schemas exported from a registry).
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    schemas: RwLock<HashMap<u32, String>>,
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) schema `id`.
    pub fn insert(&self, id: u32, text: impl Into<String>) {
        self.schemas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, text.into());
    }
}

impl SchemaRegistry for MemoryRegistry {
    fn schema(&self, id: u32) -> Result<String, RegistryError> {
        let schemas = self.schemas.read().unwrap_or_else(|e| e.into_inner());
        schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError(format!("schema id {id} is not registered")))
    }
}

impl<T: SchemaRegistry + ?Sized> SchemaRegistry for Arc<T> {
    fn schema(&self, id: u32) -> Result<String, RegistryError> {
        (**self).schema(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_recognised_and_ids_read_big_endian() {
        assert_eq!(
            confluent_frame(&[0, 0, 0, 1, 2, 9]),
            Some((258, &[9u8][..]))
        );
        assert_eq!(confluent_frame(b"{\"a\":1}"), None);
        assert_eq!(confluent_frame(&[0, 0, 0]), None);
        assert!(!is_confluent_avro(b"{}"));
        let registry = MemoryRegistry::new();
        registry.insert(7, "\"long\"");
        assert_eq!(registry.schema(7).unwrap(), "\"long\"");
        assert!(registry.schema(8).unwrap_err().0.contains("8"));
    }
}
