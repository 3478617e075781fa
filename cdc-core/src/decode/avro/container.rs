//! Avro object container files, as the Confluent S3 sink's `AvroFormat` writes them: a header
//! (magic, metadata with the writer schema and the codec, a sync marker), then blocks of
//! datums. Datums come out as slices of the file's bytes (codec `null`, the sink's default)
//! or of each block's inflated bytes (`deflate`, `snappy`).

use std::sync::Arc;

use bytes::Bytes;

use super::de::{read_bytes, read_long, skip, take, ZERO_SIZED_ITEMS};
use super::inflate_bounded;
use super::schema::parse_schema;

/// A container file read: its writer schema's text and its datums in order.
#[derive(Debug)]
pub struct ContainerFile {
    /// The `avro.schema` metadata, as written.
    pub schema: Arc<str>,
    /// One value per record.
    pub datums: Vec<Bytes>,
}

const MAGIC: &[u8] = b"Obj\x01";

/// Reads a whole container file.
pub fn read_container(file: Bytes) -> Result<ContainerFile, String> {
    let mut input: &[u8] = &file;
    if take(&mut input, 4).map_err(|e| e.0)? != MAGIC {
        return Err("not an Avro object container file (no `Obj\\x01` magic)".into());
    }
    let (schema, codec) = read_metadata(&mut input)?;
    let sync = take(&mut input, 16).map_err(|e| e.0)?.to_vec();
    let node = parse_schema(&schema)?.root;
    let mut datums = Vec::new();
    while !input.is_empty() {
        let count = read_long(&mut input).map_err(|e| e.0)?;
        let block = read_bytes(&mut input).map_err(|e| e.0)?;
        if take(&mut input, 16).map_err(|e| e.0)? != sync {
            return Err("Avro block does not end with the file's sync marker".into());
        }
        let data = match codec.as_str() {
            // Zero-copy: slices of the file itself.
            "null" => file.slice_ref(block),
            other => Bytes::from(inflate(other, block)?),
        };
        let count = u64::try_from(count)
            .ok()
            .filter(|&n| n <= data.len() as u64 + ZERO_SIZED_ITEMS)
            .ok_or_else(|| format!("Avro block of {count} records in {} bytes", data.len()))?;
        let mut rest: &[u8] = &data;
        for _ in 0..count {
            let start = rest;
            skip(&node, &mut rest).map_err(|e| e.0)?;
            datums.push(data.slice_ref(&start[..start.len() - rest.len()]));
        }
        if !rest.is_empty() {
            return Err(format!(
                "{} bytes after the block's {count} records",
                rest.len()
            ));
        }
    }
    Ok(ContainerFile {
        schema: schema.into(),
        datums,
    })
}

/// The header's `avro.schema` and `avro.codec` (default `null`).
fn read_metadata(input: &mut &[u8]) -> Result<(String, String), String> {
    let (mut schema, mut codec) = (None, None);
    loop {
        let count = read_long(input).map_err(|e| e.0)?;
        if count == 0 {
            break;
        }
        if count < 0 {
            read_long(input).map_err(|e| e.0)?;
        }
        for _ in 0..count.unsigned_abs() {
            let key = read_bytes(input).map_err(|e| e.0)?;
            let value = read_bytes(input).map_err(|e| e.0)?;
            let text = || String::from_utf8(value.to_vec()).map_err(|e| e.to_string());
            match key {
                b"avro.schema" => schema = Some(text()?),
                b"avro.codec" => codec = Some(text()?),
                _ => {}
            }
        }
    }
    let schema = schema.ok_or("Avro container file without `avro.schema`")?;
    Ok((schema, codec.unwrap_or_else(|| "null".into())))
}

/// A block's bytes uncompressed.
fn inflate(codec: &str, block: &[u8]) -> Result<Vec<u8>, String> {
    match codec {
        "deflate" => inflate_bounded(
            flate2::read::DeflateDecoder::new(block),
            "Avro deflate block",
        ),
        "snappy" => {
            // Snappy blocks end with the CRC-32 of the uncompressed bytes (big-endian).
            let Some((compressed, crc)) = block.split_last_chunk::<4>() else {
                return Err("Avro snappy block shorter than its checksum".into());
            };
            let claimed = snap::raw::decompress_len(compressed)
                .map_err(|e| format!("Avro snappy block: {e}"))?;
            if claimed > super::MAX_INFLATED {
                return Err(format!("Avro snappy block claims {claimed} bytes"));
            }
            let out = snap::raw::Decoder::new()
                .decompress_vec(compressed)
                .map_err(|e| format!("Avro snappy block: {e}"))?;
            if crc32fast::hash(&out) != u32::from_be_bytes(*crc) {
                return Err("Avro snappy block fails its checksum".into());
            }
            Ok(out)
        }
        other => Err(format!(
            "Avro codec `{other}` is not supported (the S3 sink writes null, deflate or snappy)"
        )),
    }
}

/// Writes a container file (codec `null`, one block): for tests and test data.
#[cfg(any(test, feature = "test-util"))]
pub fn write_container(schema: &str, datums: &[&[u8]]) -> Vec<u8> {
    use super::de::write_long as long;
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        long(out, b.len() as i64);
        out.extend_from_slice(b);
    }
    let sync = *b"cdc-lake-sync-16";
    let mut out = MAGIC.to_vec();
    long(&mut out, 2);
    bytes(&mut out, b"avro.schema");
    bytes(&mut out, schema.as_bytes());
    bytes(&mut out, b"avro.codec");
    bytes(&mut out, b"null");
    long(&mut out, 0);
    out.extend_from_slice(&sync);
    if !datums.is_empty() {
        long(&mut out, datums.len() as i64);
        bytes(&mut out, &datums.concat());
        out.extend_from_slice(&sync);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[{"name":"s","type":"string"}]}"#;

    #[test]
    fn datums_come_back_as_written_and_damage_is_an_error() {
        let datums: [&[u8]; 3] = [b"\x02a", b"\x04bc", b"\x00"];
        let file = Bytes::from(write_container(SCHEMA, &datums));
        let read = read_container(file.clone()).unwrap();
        assert_eq!(&*read.schema, SCHEMA);
        assert_eq!(
            read.datums,
            datums
                .iter()
                .map(|d| Bytes::copy_from_slice(d))
                .collect::<Vec<_>>()
        );
        // Cut anywhere but right after the header (a file of no blocks is a valid file).
        let header = write_container(SCHEMA, &[]).len();
        for cut in (0..file.len()).filter(|&c| c != header) {
            assert!(read_container(file.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut bad_sync = file.to_vec();
        let last = bad_sync.len() - 1;
        bad_sync[last] ^= 1;
        assert!(read_container(Bytes::from(bad_sync))
            .unwrap_err()
            .contains("sync"));
        assert!(read_container(Bytes::from_static(b"{\"a\":1}\n")).is_err());
        // A forged record count with nothing behind it is refused, not looped over.
        let mut file = write_container(r#"{"type":"record","name":"E","fields":[]}"#, &[]);
        file.extend([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0]); // 2^62 records, 0 bytes
        file.extend(b"cdc-lake-sync-16");
        assert!(read_container(Bytes::from(file))
            .unwrap_err()
            .contains("records in 0 bytes"));
        let empty = read_container(Bytes::from(write_container(SCHEMA, &[]))).unwrap();
        assert!(empty.datums.is_empty());
    }

    #[test]
    fn compressed_blocks_inflate() {
        let data = b"\x02a\x04bc".repeat(10);
        let mut deflated = Vec::new();
        let mut enc =
            flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &data).unwrap();
        enc.finish().unwrap();
        assert_eq!(inflate("deflate", &deflated).unwrap(), data);
        let mut snappy = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        snappy.extend_from_slice(&crc32fast::hash(&data).to_be_bytes());
        assert_eq!(inflate("snappy", &snappy).unwrap(), data);
        let last = snappy.len() - 1;
        snappy[last] ^= 1;
        assert!(inflate("snappy", &snappy).is_err());
        assert!(inflate("zstandard", &data).is_err());
    }
}
