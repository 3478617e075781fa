//! Delta deletion vectors: reading the ones a table has, writing new ones.
//!
//! A deletion vector (DV) marks rows of one data file as deleted by their position in the file
//! (0-based, across row groups). It is a 64-bit Roaring bitmap in the portable serialization,
//! framed as the Delta protocol's "Deletion Vector Format" says:
//!
//! ```text
//! DV file:   version byte (1), then one entry per DV
//! entry:     size (u32 big-endian, = 4 + bitmap bytes) | magic 1681511377 (u32 little-endian)
//!            | bitmap | CRC-32 of magic + bitmap (u32 big-endian)
//! ```
//!
//! The descriptor in the `add` action points at the entry: storage type `u` (a file
//! `deletion_vector_<uuid>.bin` next to the table's data, named by the Z85 encoding of the
//! UUID), `p` (an absolute path) or `i` (the magic + bitmap inline, Z85-encoded); `offset` is
//! where the entry's size field starts. Every DV this sink writes in one commit goes into one
//! new file, one entry per data file.

use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use deltalake::logstore::ObjectStoreRef;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use roaring::RoaringTreemap;
use url::Url;

/// Magic number of the portable 64-bit Roaring bitmap serialization in a DV.
const MAGIC: u32 = 1_681_511_377;

/// A DV that could not be read or written.
#[derive(Debug)]
pub(crate) struct DvError(pub String);

impl std::fmt::Display for DvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, DvError>;

fn err(message: impl Into<String>) -> DvError {
    DvError(message.into())
}

const Z85_CHARS: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Z85 (ZeroMQ base-85) of `bytes`, whose length must be a multiple of 4.
pub(crate) fn z85_encode(bytes: &[u8]) -> String {
    debug_assert_eq!(bytes.len() % 4, 0);
    let mut out = String::with_capacity(bytes.len() / 4 * 5);
    for chunk in bytes.chunks(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = Z85_CHARS[(value % 85) as usize];
            value /= 85;
        }
        out.extend(digits.iter().map(|&b| b as char));
    }
    out
}

/// The bytes of Z85 text, whose length must be a multiple of 5.
pub(crate) fn z85_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(5) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 5 * 4);
    for chunk in text.chunks(5) {
        let mut value: u64 = 0;
        for &c in chunk {
            let digit = Z85_CHARS.iter().position(|&z| z == c)?;
            value = value * 85 + digit as u64;
        }
        let value = u32::try_from(value).ok()?;
        out.extend_from_slice(&value.to_be_bytes());
    }
    Some(out)
}

/// The file name of a `u` DV file: `[<prefix>/]deletion_vector_<uuid>.bin`.
fn relative_file(path_or_inline_dv: &str) -> Result<String> {
    let n = path_or_inline_dv.len();
    if n < 20 || !path_or_inline_dv.is_char_boundary(n - 20) {
        return Err(err(format!("bad DV path `{path_or_inline_dv}`")));
    }
    let (prefix, encoded) = path_or_inline_dv.split_at(n - 20);
    let bytes =
        z85_decode(encoded).ok_or_else(|| err(format!("bad DV uuid `{path_or_inline_dv}`")))?;
    let uuid = uuid::Uuid::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    Ok(if prefix.is_empty() {
        format!("deletion_vector_{uuid}.bin")
    } else {
        format!("{prefix}/deletion_vector_{uuid}.bin")
    })
}

/// The object-store path (relative to the table root, as the table's store sees it) of a
/// persisted DV.
pub(crate) fn store_path(dv: &DeletionVectorDescriptor, table_root: &Url) -> Result<Path> {
    match dv.storage_type {
        StorageType::UuidRelativePath => {
            Path::parse(relative_file(&dv.path_or_inline_dv)?).map_err(|e| err(e.to_string()))
        }
        StorageType::AbsolutePath => {
            let url = Url::parse(&dv.path_or_inline_dv).map_err(|e| err(e.to_string()))?;
            let root = table_root.as_str().trim_end_matches('/');
            let rest = url
                .as_str()
                .strip_prefix(root)
                .and_then(|r| r.strip_prefix('/'))
                .ok_or_else(|| err(format!("DV `{url}` lies outside the table `{table_root}`")))?;
            Path::from_url_path(rest).map_err(|e| err(e.to_string()))
        }
        StorageType::Inline => Err(err("inline DV has no file")),
    }
}

fn bitmap(bytes: &[u8]) -> Result<RoaringTreemap> {
    RoaringTreemap::deserialize_from(bytes).map_err(|e| err(format!("bad DV bitmap: {e}")))
}

/// The row positions a DV deletes.
pub(crate) async fn read(
    store: &ObjectStoreRef,
    table_root: &Url,
    dv: &DeletionVectorDescriptor,
) -> Result<RoaringTreemap> {
    let size = usize::try_from(dv.size_in_bytes).map_err(|_| err("negative DV size"))?;
    let set = if dv.storage_type == StorageType::Inline {
        let bytes =
            z85_decode(&dv.path_or_inline_dv).ok_or_else(|| err("bad inline DV encoding"))?;
        if bytes.len() < 4 || u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) != MAGIC
        {
            return Err(err("inline DV lacks the portable bitmap magic"));
        }
        bitmap(&bytes[4..])?
    } else {
        let path = store_path(dv, table_root)?;
        let start = u64::try_from(dv.offset.unwrap_or(1)).map_err(|_| err("negative DV offset"))?;
        // size field + (magic + bitmap) + CRC
        let end = start + 4 + size as u64 + 4;
        let bytes = store
            .get_range(&path, start..end)
            .await
            .map_err(|e| err(format!("reading DV `{path}`: {e}")))?;
        if bytes.len() != 8 + size {
            return Err(err(format!("DV `{path}` is truncated")));
        }
        let stated = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if stated != size {
            return Err(err(format!(
                "DV `{path}` holds {stated} bytes, the log says {size}"
            )));
        }
        let body = &bytes[4..4 + size];
        if body.len() < 4 || u32::from_le_bytes([body[0], body[1], body[2], body[3]]) != MAGIC {
            return Err(err(format!("DV `{path}` lacks the portable bitmap magic")));
        }
        let crc = u32::from_be_bytes([
            bytes[4 + size],
            bytes[5 + size],
            bytes[6 + size],
            bytes[7 + size],
        ]);
        if crc != crc32fast::hash(body) {
            return Err(err(format!("DV `{path}` fails its checksum")));
        }
        bitmap(&body[4..])?
    };
    if set.len() != dv.cardinality as u64 {
        return Err(err(format!(
            "DV holds {} rows, the log says {}",
            set.len(),
            dv.cardinality
        )));
    }
    Ok(set)
}

/// DVs of one commit, collected into one new DV file.
pub(crate) struct DvFileWriter {
    uuid: uuid::Uuid,
    bytes: Vec<u8>,
}

impl DvFileWriter {
    pub(crate) fn new() -> Self {
        DvFileWriter {
            uuid: uuid::Uuid::new_v4(),
            bytes: vec![1],
        }
    }

    /// Appends one DV; its descriptor is valid once [`Self::finish`] has stored the file.
    pub(crate) fn push(&mut self, set: &RoaringTreemap) -> Result<DeletionVectorDescriptor> {
        let mut body = MAGIC.to_le_bytes().to_vec();
        set.serialize_into(&mut body)
            .map_err(|e| err(format!("serialising a DV: {e}")))?;
        let size = i32::try_from(body.len()).map_err(|_| err("DV too large"))?;
        let offset = i32::try_from(self.bytes.len()).map_err(|_| err("DV file too large"))?;
        self.bytes.extend_from_slice(&(size as u32).to_be_bytes());
        self.bytes.extend_from_slice(&body);
        self.bytes
            .extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        Ok(DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: z85_encode(self.uuid.as_bytes()),
            offset: Some(offset),
            size_in_bytes: size,
            cardinality: set.len() as i64,
        })
    }

    /// Stores the file at the table root.
    pub(crate) async fn finish(self, store: &ObjectStoreRef) -> Result<()> {
        let path = Path::from(format!("deletion_vector_{}.bin", self.uuid));
        store
            .put(&path, PutPayload::from(self.bytes))
            .await
            .map_err(|e| err(format!("writing DV file `{path}`: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z85_round_trips_and_matches_the_spec_example() {
        // The example of the ZeroMQ Z85 specification.
        let bytes = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(z85_encode(&bytes), "HelloWorld");
        assert_eq!(z85_decode("HelloWorld").unwrap(), bytes);
        let uuid = uuid::Uuid::new_v4();
        assert_eq!(
            z85_decode(&z85_encode(uuid.as_bytes())).unwrap(),
            uuid.as_bytes()
        );
        assert!(z85_decode("abc").is_none());
    }

    #[test]
    fn relative_dv_paths_decode_like_the_protocol_example() {
        // PROTOCOL.md, "Deletion Vector Descriptor Schema": this descriptor names
        // `ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin`.
        assert_eq!(
            relative_file("ab^-aqEH.-t@S}K{vb[*k^").unwrap(),
            "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
        );
    }

    #[tokio::test]
    async fn written_dvs_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store: ObjectStoreRef = std::sync::Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
        );
        let root = Url::from_directory_path(dir.path()).unwrap();
        let sets: Vec<RoaringTreemap> = vec![
            [0u64, 5, 9].into_iter().collect(),
            (1_000..70_000u64).chain([5_000_000_000]).collect(),
        ];
        let mut writer = DvFileWriter::new();
        let descriptors: Vec<_> = sets.iter().map(|s| writer.push(s).unwrap()).collect();
        writer.finish(&store).await.unwrap();
        assert_eq!(descriptors[0].offset, Some(1));
        for (set, dv) in sets.iter().zip(&descriptors) {
            assert_eq!(&read(&store, &root, dv).await.unwrap(), set);
        }
        let mut bad = descriptors[1].clone();
        bad.cardinality += 1;
        assert!(read(&store, &root, &bad).await.is_err());
    }
}
