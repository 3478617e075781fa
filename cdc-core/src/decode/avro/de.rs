//! Avro's binary encoding read in place: primitives, skipping a value, and [`AvroDe`], a serde
//! `Deserializer` that streams one value into the same seeds the JSON path feeds (row and cell
//! seeds write straight into the column builders; no value tree in between).
//!
//! Every length read from the input is checked against the bytes that are left before it is
//! used, so a corrupt record is an error, never a huge allocation or a panic.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::schema::{Node, Record};

/// A decode error: what is wrong, in words.
#[derive(Debug)]
pub(crate) struct AvroError(pub String);

impl std::fmt::Display for AvroError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AvroError {}

impl de::Error for AvroError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        AvroError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, AvroError>;

fn eof() -> AvroError {
    AvroError("Avro value ends early".into())
}

/// A zigzag varint `long` (also `int`, checked by the caller).
pub(crate) fn read_long(input: &mut &[u8]) -> Result<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or_else(eof)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err(AvroError("Avro varint longer than 10 bytes".into()))
}

/// Appends `v` as a zigzag varint.
#[cfg(any(test, feature = "test-util", feature = "parquet"))]
pub(crate) fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_int(input: &mut &[u8]) -> Result<i32> {
    let v = read_long(input)?;
    i32::try_from(v).map_err(|_| AvroError(format!("Avro int {v} out of range")))
}

/// `n` bytes, borrowed from the input.
pub(crate) fn take<'de>(input: &mut &'de [u8], n: usize) -> Result<&'de [u8]> {
    if input.len() < n {
        return Err(eof());
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// A length-prefixed `bytes` or `string` body.
pub(crate) fn read_bytes<'de>(input: &mut &'de [u8]) -> Result<&'de [u8]> {
    let len = read_long(input)?;
    let len = usize::try_from(len).map_err(|_| AvroError(format!("negative Avro length {len}")))?;
    take(input, len)
}

fn read_str<'de>(input: &mut &'de [u8]) -> Result<&'de str> {
    std::str::from_utf8(read_bytes(input)?)
        .map_err(|e| AvroError(format!("Avro string is not UTF-8: {e}")))
}

/// The branch of a union value.
pub(crate) fn read_branch<'n>(branches: &'n [Node], input: &mut &[u8]) -> Result<&'n Node> {
    let i = read_long(input)?;
    usize::try_from(i)
        .ok()
        .and_then(|i| branches.get(i))
        .ok_or_else(|| AvroError(format!("Avro union branch {i} out of range")))
}

/// The item count of the next array or map block (0 ends the value). A negative count is
/// followed by the block's size in bytes, which is not needed here.
fn block_count(input: &mut &[u8]) -> Result<usize> {
    let n = read_long(input)?;
    if n < 0 {
        read_long(input)?;
    }
    let n = n.unsigned_abs();
    // Items of most types take a byte at least: a count beyond the bytes left (with room for
    // a few zero-sized items, nulls) is forged, and would only make us loop or allocate.
    if n > input.len() as u64 + ZERO_SIZED_ITEMS {
        return Err(AvroError(format!(
            "Avro block of {n} items in {} bytes",
            input.len()
        )));
    }
    Ok(n as usize)
}

/// Zero-byte items (nulls, empty records) a block may hold beyond its bytes.
pub(crate) const ZERO_SIZED_ITEMS: u64 = 1024;

/// Skips one value of `node`.
pub(crate) fn skip(node: &Node, input: &mut &[u8]) -> Result<()> {
    match node {
        Node::Null => {}
        Node::Boolean => drop(take(input, 1)?),
        Node::Int | Node::Long | Node::Enum(_) => drop(read_long(input)?),
        Node::Float => drop(take(input, 4)?),
        Node::Double => drop(take(input, 8)?),
        Node::Bytes | Node::String => drop(read_bytes(input)?),
        Node::Fixed(n) => drop(take(input, *n)?),
        Node::Array(item) => loop {
            let n = block_count(input)?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                skip(item, input)?;
            }
        },
        Node::Map(value) => loop {
            let n = block_count(input)?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                read_bytes(input)?;
                skip(value, input)?;
            }
        },
        Node::Record(r) => {
            for (_, f) in &r.fields {
                skip(f, input)?;
            }
        }
        Node::Union(branches) => skip(read_branch(branches, input)?, input)?,
    }
    Ok(())
}

/// Streams one Avro value of `node` from `input` into a serde visitor.
pub(crate) struct AvroDe<'n, 'i, 'de> {
    pub node: &'n Node,
    pub input: &'i mut &'de [u8],
}

impl<'de> de::Deserializer<'de> for AvroDe<'_, '_, 'de> {
    type Error = AvroError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let input = self.input;
        match self.node {
            Node::Null => visitor.visit_unit(),
            Node::Boolean => match take(input, 1)?[0] {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                b => Err(AvroError(format!("Avro boolean byte {b}"))),
            },
            Node::Int => visitor.visit_i64(i64::from(read_int(input)?)),
            Node::Long => visitor.visit_i64(read_long(input)?),
            Node::Float => {
                let b = take(input, 4)?;
                visitor.visit_f64(f64::from(f32::from_le_bytes(
                    b.try_into().expect("4 bytes"),
                )))
            }
            Node::Double => {
                let b = take(input, 8)?;
                visitor.visit_f64(f64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            Node::Bytes => visitor.visit_borrowed_bytes(read_bytes(input)?),
            Node::Fixed(n) => visitor.visit_borrowed_bytes(take(input, *n)?),
            Node::String => visitor.visit_borrowed_str(read_str(input)?),
            Node::Enum(symbols) => {
                let i = read_long(input)?;
                let symbol = usize::try_from(i).ok().and_then(|i| symbols.get(i));
                visitor.visit_str(
                    symbol.ok_or_else(|| AvroError(format!("Avro enum index {i} out of range")))?,
                )
            }
            Node::Array(item) => visitor.visit_seq(Items {
                item,
                input,
                blocks: Blocks::default(),
            }),
            Node::Map(value) => visitor.visit_map(Entries {
                value,
                input,
                blocks: Blocks::default(),
            }),
            Node::Record(r) => visitor.visit_map(Fields {
                record: r,
                input,
                next: 0,
            }),
            Node::Union(branches) => match read_branch(branches, input)? {
                Node::Null => visitor.visit_none(),
                branch => visitor.visit_some(AvroDe {
                    node: branch,
                    input,
                }),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Union(_) => self.deserialize_any(visitor),
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// A record read as a sequence of its field values (a Connect `MapEntry` as `[key, value]`).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Record(r) => visitor.visit_seq(RecordValues {
                record: r,
                input: self.input,
                next: 0,
            }),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        skip(self.node, self.input)?;
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct tuple tuple_struct map struct enum identifier
    }
}

/// An array's items, block by block.
struct Items<'n, 'i, 'de> {
    item: &'n Node,
    input: &'i mut &'de [u8],
    blocks: Blocks,
}

/// Where an array or map is in its blocks.
#[derive(Default)]
struct Blocks {
    left: usize,
    done: bool,
}

impl Blocks {
    /// Whether another item follows (reading the next block's count when one is used up).
    fn next(&mut self, input: &mut &[u8]) -> Result<bool> {
        if self.left == 0 && !self.done {
            self.left = block_count(input)?;
            self.done = self.left == 0;
        }
        if self.done {
            return Ok(false);
        }
        self.left -= 1;
        Ok(true)
    }
}

impl<'de> SeqAccess<'de> for Items<'_, '_, 'de> {
    type Error = AvroError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if !self.blocks.next(self.input)? {
            return Ok(None);
        }
        seed.deserialize(AvroDe {
            node: self.item,
            input: self.input,
        })
        .map(Some)
    }
}

/// A map's entries, block by block (keys are strings).
struct Entries<'n, 'i, 'de> {
    value: &'n Node,
    input: &'i mut &'de [u8],
    blocks: Blocks,
}

impl<'de> MapAccess<'de> for Entries<'_, '_, 'de> {
    type Error = AvroError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !self.blocks.next(self.input)? {
            return Ok(None);
        }
        seed.deserialize(AvroDe {
            node: &Node::String,
            input: self.input,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(AvroDe {
            node: self.value,
            input: self.input,
        })
    }
}

/// A record's fields as a map from field name to value.
struct Fields<'n, 'i, 'de> {
    record: &'n Record,
    input: &'i mut &'de [u8],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_, '_, 'de> {
    type Error = AvroError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some((name, _)) = self.record.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(de::value::StrDeserializer::<AvroError>::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let (_, node) = &self.record.fields[self.next];
        self.next += 1;
        seed.deserialize(AvroDe {
            node,
            input: self.input,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.record.fields.len() - self.next)
    }
}

/// A record's field values in order.
struct RecordValues<'n, 'i, 'de> {
    record: &'n Record,
    input: &'i mut &'de [u8],
    next: usize,
}

impl<'de> SeqAccess<'de> for RecordValues<'_, '_, 'de> {
    type Error = AvroError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some((_, node)) = self.record.fields.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(AvroDe {
            node,
            input: self.input,
        })
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::avro::schema::parse_schema;

    fn zigzag(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_long(&mut out, v);
        out
    }

    #[test]
    fn longs_round_trip_and_bad_input_is_an_error() {
        for v in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40] {
            let bytes = zigzag(v);
            let mut input = &bytes[..];
            assert_eq!(read_long(&mut input).unwrap(), v);
            assert!(input.is_empty());
        }
        assert!(read_long(&mut &[0x80u8; 11][..]).is_err());
        assert!(read_long(&mut &[0x80u8][..]).is_err());
        // A length far beyond the input is refused before anything is allocated.
        let mut huge = zigzag(1 << 60);
        huge.push(b'x');
        assert!(read_bytes(&mut &huge[..]).is_err());
        assert!(read_bytes(&mut &zigzag(-3)[..]).is_err());
    }

    #[test]
    fn records_stream_into_serde_values_and_skip_agrees() {
        let s = parse_schema(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},
              {"name":"b","type":["null","string"]},{"name":"c","type":{"type":"array","items":"long"}},
              {"name":"d","type":{"type":"map","values":"boolean"}},{"name":"e","type":"double"}]}"#,
        )
        .unwrap();
        let mut bytes = zigzag(-5);
        bytes.extend(zigzag(1));
        bytes.extend(zigzag(2));
        bytes.extend(b"hi");
        bytes.extend(zigzag(-2)); // a block of 2 items with its byte size
        bytes.extend(zigzag(2));
        bytes.extend(zigzag(7));
        bytes.extend(zigzag(8));
        bytes.extend(zigzag(0));
        bytes.extend(zigzag(1));
        bytes.extend(zigzag(1));
        bytes.extend(b"k");
        bytes.push(1);
        bytes.extend(zigzag(0));
        bytes.extend(2.5f64.to_le_bytes());
        let mut input = &bytes[..];
        let value: serde_json::Value = serde::Deserialize::deserialize(AvroDe {
            node: &s.root,
            input: &mut input,
        })
        .unwrap();
        assert!(input.is_empty());
        assert_eq!(
            value,
            serde_json::json!({"a": -5, "b": "hi", "c": [7, 8], "d": {"k": true}, "e": 2.5})
        );
        let mut input = &bytes[..];
        skip(&s.root, &mut input).unwrap();
        assert!(input.is_empty());
        for cut in 0..bytes.len() {
            assert!(skip(&s.root, &mut &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
