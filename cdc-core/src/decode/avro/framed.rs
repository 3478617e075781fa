//! Files of framed records one after another, as the Confluent S3 sink's `ByteArrayFormat`
//! writes them with the `ByteArrayConverter`: each record's bytes as they were in Kafka, then
//! the separator (`format.bytearray.separator`, a newline by default).
//!
//! Avro bodies may hold the separator's bytes anywhere, so the file cannot be split on it: each
//! framed record is measured by reading its body with the writer schema its frame names, and
//! only then must the separator follow. Records that are not framed Avro (JsonConverter bytes)
//! end at the next separator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::de::skip;
use super::schema::{parse_schema, Node};
use super::{confluent_frame, glue_frame, inflate_bounded, SchemaId, SchemaRegistry};

/// The S3 sink's default `format.bytearray.separator`.
pub const DEFAULT_SEPARATOR: &[u8] = b"\n";

/// Splits `ByteArrayFormat` files into records, with writer schemas from a registry (each
/// fetched and parsed once).
#[derive(Debug)]
pub struct FramedSplitter {
    registry: Option<Arc<dyn SchemaRegistry>>,
    separator: Vec<u8>,
    nodes: Mutex<HashMap<SchemaId, Arc<Node>>>,
}

impl Default for FramedSplitter {
    fn default() -> Self {
        FramedSplitter::new(None, DEFAULT_SEPARATOR.to_vec())
    }
}

impl FramedSplitter {
    /// A splitter for records ending in `separator`; without a registry, files of framed Avro
    /// records are an error.
    pub fn new(registry: Option<Arc<dyn SchemaRegistry>>, separator: Vec<u8>) -> Self {
        FramedSplitter {
            registry,
            separator,
            nodes: Mutex::default(),
        }
    }

    /// This splitter taking its schemas from `registry`.
    pub fn with_registry(&self, registry: Arc<dyn SchemaRegistry>) -> Self {
        FramedSplitter::new(Some(registry), self.separator.clone())
    }

    /// This splitter for records ending in `separator`.
    pub fn with_separator(&self, separator: &[u8]) -> Self {
        FramedSplitter::new(self.registry.clone(), separator.to_vec())
    }

    /// The records of a file, as zero-copy slices of it without their separators.
    pub fn split(&self, file: &Bytes) -> Result<Vec<Bytes>, String> {
        let mut records = Vec::new();
        let mut at = 0;
        while at < file.len() {
            let rest = &file[at..];
            let len = match self.framed_len(rest) {
                Some(len) => len.map_err(|e| format!("record at byte {at}: {e}"))?,
                None => memchr::memmem::find(rest, &self.separator).unwrap_or(rest.len()),
            };
            records.push(file.slice(at..at + len));
            at += len;
            if at < file.len() {
                if !file[at..].starts_with(&self.separator) {
                    return Err(format!(
                        "the record ending at byte {at} is not followed by the separator"
                    ));
                }
                at += self.separator.len();
            }
        }
        Ok(records)
    }

    /// The length of the framed Avro record at the start of `bytes` (`None`: not framed).
    fn framed_len(&self, bytes: &[u8]) -> Option<Result<usize, String>> {
        if let Some((id, body)) = confluent_frame(bytes) {
            let node = self.node(SchemaId::Confluent(id));
            return Some(node.and_then(|node| body_len(&node, body)).map(|n| 5 + n));
        }
        let (compression, id, body) = glue_frame(bytes)?;
        let node = match self.node(SchemaId::Glue(id)) {
            Ok(node) => node,
            Err(e) => return Some(Err(e)),
        };
        Some(match compression {
            0 => body_len(&node, body).map(|n| 18 + n),
            _ => zlib_len(&node, body).map(|n| 18 + n),
        })
    }

    fn node(&self, id: SchemaId) -> Result<Arc<Node>, String> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(node) = nodes.get(&id) {
            return Ok(node.clone());
        }
        let registry = self.registry.as_ref().ok_or(
            "framed Avro records in a ByteArrayFormat file: a schema registry is needed to \
             tell where each ends (--schema-registry)",
        )?;
        let text = registry.schema(id).map_err(|e| format!("{id}: {e}"))?;
        let node = Arc::new(parse_schema(&text).map_err(|e| format!("{id}: {e}"))?.root);
        nodes.insert(id, node.clone());
        Ok(node)
    }
}

/// The bytes one value of `node` takes at the start of `body`.
fn body_len(node: &Node, body: &[u8]) -> Result<usize, String> {
    let mut rest = body;
    skip(node, &mut rest).map_err(|e| e.0)?;
    Ok(body.len() - rest.len())
}

/// The compressed bytes of a zlib stream at the start of `body` whose contents are one value
/// of `node`.
fn zlib_len(node: &Node, body: &[u8]) -> Result<usize, String> {
    let mut decoder = flate2::bufread::ZlibDecoder::new(body);
    let inflated = inflate_bounded(&mut decoder, "zlib body of a Glue-framed record")?;
    if body_len(node, &inflated)? != inflated.len() {
        return Err("bytes after the value in a Glue-framed record's zlib body".into());
    }
    Ok(decoder.total_in() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::avro::MemoryRegistry;

    const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"},{"name":"s","type":"string"}]}"#;

    fn splitter(separator: &[u8]) -> FramedSplitter {
        let registry = MemoryRegistry::new();
        registry.insert(SchemaId::Confluent(1), SCHEMA);
        registry.insert(SchemaId::Glue([7; 16]), SCHEMA);
        FramedSplitter::new(Some(Arc::new(registry)), separator.to_vec())
    }

    #[test]
    fn separators_inside_avro_bodies_do_not_split_records() {
        // n = 5 is the byte 0x0a, a newline; the string holds one too.
        let a = b"\x00\x00\x00\x00\x01\x0a\x04\n\n".to_vec();
        let b = b"\x00\x00\x00\x00\x01\x02\x02x".to_vec();
        let mut glue = vec![3, 5];
        glue.extend([7; 16]);
        let mut enc = flate2::write::ZlibEncoder::new(&mut glue, flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, b"\x0a\x02\n").unwrap();
        enc.finish().unwrap();
        let json = b"{\"a\":1}".to_vec();
        let file = Bytes::from([&a[..], b"\n", &b, b"\n", &glue, b"\n", &json, b"\n"].concat());
        let records = splitter(b"\n").split(&file).unwrap();
        assert_eq!(records, [&a[..], &b, &glue, &json]);
        // Without a final separator, and with a longer separator.
        let file = Bytes::from([&a[..], b"|~|", &b].concat());
        assert_eq!(splitter(b"|~|").split(&file).unwrap(), [&a[..], &b]);
    }

    #[test]
    fn damage_and_missing_schemas_are_errors() {
        let a = b"\x00\x00\x00\x00\x01\x0a\x04ab".to_vec();
        let cut = Bytes::from(a[..a.len() - 1].to_vec());
        assert!(splitter(b"\n").split(&cut).unwrap_err().contains("byte 0"));
        let glued = Bytes::from([&a[..], &a].concat());
        assert!(splitter(b"\n")
            .split(&glued)
            .unwrap_err()
            .contains("separator"));
        let unknown = Bytes::from(b"\x00\x00\x00\x00\x09\x00\n".to_vec());
        assert!(splitter(b"\n")
            .split(&unknown)
            .unwrap_err()
            .contains("schema id 9"));
        let no_registry = FramedSplitter::default();
        assert!(no_registry
            .split(&Bytes::from(a))
            .unwrap_err()
            .contains("--schema-registry"));
    }
}
