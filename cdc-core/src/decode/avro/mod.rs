//! Debezium events in Avro, as Confluent's `AvroConverter` writes them: the wire frame
//! (magic byte 0, the writer schema's registry id, the Avro body), writer schemas from a
//! [`SchemaRegistry`], and the binary decoding that feeds the same column builders as the
//! JSON path (see [`crate::decode::DebeziumJsonDecoder`], which decodes both).

#[cfg(any(feature = "registry", feature = "glue"))]
mod blocking;
pub mod container;
pub(crate) mod de;
pub mod framed;
#[cfg(feature = "glue")]
mod glue_registry;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "registry")]
mod registry;
pub(crate) mod schema;

#[cfg(feature = "glue")]
pub use glue_registry::GlueSchemaRegistry;
#[cfg(feature = "registry")]
pub use registry::{ConfluentRegistry, RegistrySettings};

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::{Arc, RwLock};

/// Which writer schema a framed record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaId {
    /// A Confluent Schema Registry id.
    Confluent(u32),
    /// An AWS Glue Schema Registry schema version (a UUID).
    Glue([u8; 16]),
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaId::Confluent(id) => write!(f, "schema id {id}"),
            SchemaId::Glue(v) => {
                let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
                write!(
                    f,
                    "schema version {}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                )
            }
        }
    }
}

impl SchemaId {
    /// The UUID text of a Glue schema version (`None` for a Confluent id).
    pub fn glue_version_id(&self) -> Option<String> {
        match self {
            SchemaId::Glue(_) => Some(self.to_string()["schema version ".len()..].to_string()),
            SchemaId::Confluent(_) => None,
        }
    }
}

/// The Confluent wire frame: `0`, a 4-byte big-endian schema id, the Avro body.
fn confluent_frame(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => None,
    }
}

/// The AWS Glue Schema Registry's frame: header version `3`, compression (`0` none, `5`
/// zlib), the schema version's 16-byte UUID, the (compressed) Avro body.
fn glue_frame(bytes: &[u8]) -> Option<(u8, [u8; 16], &[u8])> {
    match bytes {
        [3, compression @ (0 | 5), rest @ ..] if rest.len() >= 16 => {
            let (id, body) = rest.split_at(16);
            Some((*compression, id.try_into().expect("16 bytes"), body))
        }
        _ => None,
    }
}

/// Whether a record's bytes are framed Avro: Confluent's or Glue's (JSON never starts with the
/// bytes 0 or 3).
pub(crate) fn is_framed_avro(bytes: &[u8]) -> bool {
    confluent_frame(bytes).is_some() || glue_frame(bytes).is_some()
}

/// The schema a framed record names and its Avro body (inflated when the frame says zlib).
pub(crate) fn unframe(bytes: &[u8]) -> Result<(SchemaId, Cow<'_, [u8]>), String> {
    if let Some((id, body)) = confluent_frame(bytes) {
        return Ok((SchemaId::Confluent(id), Cow::Borrowed(body)));
    }
    let (compression, id, body) = glue_frame(bytes).ok_or("not a Confluent or Glue Avro frame")?;
    let body = match compression {
        0 => Cow::Borrowed(body),
        _ => Cow::Owned(inflate_bounded(
            flate2::read::ZlibDecoder::new(body),
            "zlib body of a Glue-framed record",
        )?),
    };
    Ok((SchemaId::Glue(id), body))
}

/// The most a compressed record or block may inflate to: more is a bomb, not a change event.
pub(crate) const MAX_INFLATED: usize = 256 << 20;

/// Everything `reader` inflates to, refused past [`MAX_INFLATED`].
pub(crate) fn inflate_bounded(reader: impl Read, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what}: {e}"))?;
    if out.len() > MAX_INFLATED {
        return Err(format!("{what} inflates past {MAX_INFLATED} bytes"));
    }
    Ok(out)
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
    fn schema(&self, id: SchemaId) -> Result<String, RegistryError>;

    /// Fetches ahead of the records every schema registered under `subjects` (their
    /// versions), so that the first records of a topic wait for no registry call; subjects the
    /// registry does not have are skipped. Returns how many schemas the client holds.
    /// Registries without subjects (the AWS Glue Schema Registry's versions are named by the
    /// records) do nothing.
    fn preload(&self, _subjects: &[String]) -> Result<usize, RegistryError> {
        Ok(0)
    }
}

/// The client of the schema registry at `url`: `glue` for the AWS Glue Schema Registry (region,
/// endpoint and credentials from the AWS environment), else a Confluent registry's base URL.
pub fn registry_for(url: &str) -> crate::Result<Arc<dyn SchemaRegistry>> {
    #[cfg_attr(all(feature = "glue", feature = "registry"), allow(unused_variables))]
    let missing = |feature: &str| {
        crate::Error::Config(format!(
            "a schema registry is configured, but this build has no client for it (cdc-core \
             feature `{feature}`; `avro` or `glue` in the cdc-lake crate)"
        ))
    };
    if url == "glue" {
        #[cfg(feature = "glue")]
        {
            let registry = crate::decode::GlueSchemaRegistry::new(Default::default())
                .map_err(|e| crate::Error::Config(e.to_string()))?;
            return Ok(Arc::new(registry));
        }
        #[cfg(not(feature = "glue"))]
        return Err(missing("glue"));
    }
    #[cfg(feature = "registry")]
    {
        use crate::decode::{ConfluentRegistry, RegistrySettings};
        let registry = ConfluentRegistry::new(RegistrySettings::from_env(url))
            .map_err(|e| crate::Error::Config(e.to_string()))?;
        Ok(Arc::new(registry))
    }
    #[cfg(not(feature = "registry"))]
    Err(missing("registry"))
}

/// Schemas given up front (tests, or schemas exported from a registry).
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    schemas: RwLock<HashMap<SchemaId, String>>,
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) schema `id`.
    pub fn insert(&self, id: SchemaId, text: impl Into<String>) {
        self.schemas
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, text.into());
    }
}

impl SchemaRegistry for MemoryRegistry {
    fn schema(&self, id: SchemaId) -> Result<String, RegistryError> {
        let schemas = self.schemas.read().unwrap_or_else(|e| e.into_inner());
        schemas
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError(format!("{id} is not registered")))
    }
}

impl<T: SchemaRegistry + ?Sized> SchemaRegistry for Arc<T> {
    fn schema(&self, id: SchemaId) -> Result<String, RegistryError> {
        (**self).schema(id)
    }

    fn preload(&self, subjects: &[String]) -> Result<usize, RegistryError> {
        (**self).preload(subjects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_recognised_and_ids_read() {
        let (id, body) = unframe(&[0, 0, 0, 1, 2, 9]).unwrap();
        assert_eq!((id, &*body), (SchemaId::Confluent(258), &[9u8][..]));
        assert!(unframe(b"{\"a\":1}").is_err() && !is_framed_avro(b"{}"));
        assert!(!is_framed_avro(&[0, 0, 0]));
        let uuid: [u8; 16] = *b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x23\x45\x67\x89\xab\xcd\xef";
        let mut glue = vec![3, 0];
        glue.extend(uuid);
        glue.extend(b"body");
        let (id, body) = unframe(&glue).unwrap();
        assert_eq!((id, &*body), (SchemaId::Glue(uuid), &b"body"[..]));
        assert_eq!(
            id.to_string(),
            "schema version 12345678-9abc-def0-0123-456789abcdef"
        );
        assert_eq!(
            id.glue_version_id().unwrap(),
            "12345678-9abc-def0-0123-456789abcdef"
        );
        let mut zlib = vec![3, 5];
        zlib.extend(uuid);
        let mut enc = flate2::write::ZlibEncoder::new(&mut zlib, flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, b"compressed body").unwrap();
        enc.finish().unwrap();
        assert_eq!(&*unframe(&zlib).unwrap().1, b"compressed body");
        zlib.truncate(zlib.len() - 3);
        assert!(unframe(&zlib).unwrap_err().contains("zlib"));
        let registry = MemoryRegistry::new();
        registry.insert(SchemaId::Confluent(7), "\"long\"");
        assert_eq!(registry.schema(SchemaId::Confluent(7)).unwrap(), "\"long\"");
        assert!(registry
            .schema(SchemaId::Glue(uuid))
            .unwrap_err()
            .0
            .contains("12345678"));
    }
}
