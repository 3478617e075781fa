//! Parquet files as the Confluent S3 sink's `ParquetFormat` writes them: parquet-avro's
//! `AvroParquetWriter` over the records AvroData made of each Connect value, with the Avro
//! schema in the footer (`parquet.avro.schema`).
//!
//! Each row is turned back into the Avro datum it was written from, so the records go through
//! the same decoder as the `AvroFormat` files and Kafka's framed records: one place that knows
//! the Connect and Debezium conventions (`connect.name`, decimals and their scale, optional
//! unions) instead of a second mapping from Parquet's types.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Decimal256Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, Float32Array, Float64Array,
    Int32Array, Int64Array, StringArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::container::ContainerFile;
use super::de::write_long;
use super::schema::{parse_schema, Node, Record};

/// The footer key parquet-avro writes the Avro schema under.
const AVRO_SCHEMA_KEY: &str = "parquet.avro.schema";

/// Reads a whole Parquet file written by parquet-avro: its Avro schema and one datum per row.
/// A damaged file is an error; so is one the parquet crate panics on (it may, on some corrupt
/// input), so that bad bytes in the bucket never take the process down.
pub fn read_parquet(file: Bytes) -> Result<ContainerFile, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(file))).unwrap_or_else(|_| {
        Err("the Parquet reader failed on this file (the file is damaged)".into())
    })
}

fn read(file: Bytes) -> Result<ContainerFile, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let schema = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == AVRO_SCHEMA_KEY))
        .and_then(|kv| kv.value.clone())
        .ok_or(
            "Parquet file without `parquet.avro.schema` in its footer (the S3 sink's \
             ParquetFormat writes it; other writers' files cannot be read as change events)",
        )?;
    let root = parse_schema(&schema)?.root;
    let Node::Record(record) = &root else {
        return Err("the Parquet file's Avro schema is not a record".into());
    };
    let rows = builder.metadata().file_metadata().num_rows();
    let mut datums = Vec::with_capacity(usize::try_from(rows).unwrap_or(0).min(1 << 20));
    let reader = builder
        .with_batch_size(4096)
        .build()
        .map_err(|e| e.to_string())?;
    for batch in reader {
        let batch = batch.map_err(|e| format!("reading the Parquet file: {e}"))?;
        let encoder = Encoder::record(record, &StructArray::from(batch.clone()))?;
        let mut out = Vec::with_capacity(batch.get_array_memory_size() / batch.num_rows().max(1));
        let mut ends = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            encoder.write(row, &mut out)?;
            ends.push(out.len());
        }
        let out = Bytes::from(out);
        let mut start = 0;
        for end in ends {
            datums.push(out.slice(start..end));
            start = end;
        }
    }
    Ok(ContainerFile {
        schema: schema.into(),
        datums,
    })
}

/// How to write one Avro value from a column, the column cast once to the type it is read as.
enum Encoder {
    Null,
    Boolean(BooleanArray),
    Int(Int32Array),
    Long(Int64Array),
    Float(Float32Array),
    Double(Float64Array),
    Bytes(BinaryArray),
    String(StringArray),
    Fixed(FixedSizeBinaryArray),
    Enum(Arc<[String]>, StringArray),
    Array(OffsetBuffer<i32>, Box<Encoder>),
    Map(OffsetBuffer<i32>, StringArray, Box<Encoder>),
    Record(Vec<Encoder>),
    /// A union of `null` and one other type: parquet-avro's optional field.
    Optional {
        null_branch: i64,
        value_branch: i64,
        nulls: Option<NullBuffer>,
        value: Box<Encoder>,
    },
    /// A field that must hold a value: any null in the column is an error.
    Required(Option<NullBuffer>, Box<Encoder>),
}

impl Encoder {
    fn record(record: &Record, array: &StructArray) -> Result<Encoder, String> {
        let fields = record.fields.iter().map(|(name, node)| {
            let column = array.column_by_name(name).ok_or_else(|| {
                format!(
                    "the Parquet file has no column `{name}` of record `{}`",
                    record.name
                )
            })?;
            Encoder::new(node, column).map_err(|e| format!("{name}: {e}"))
        });
        Ok(Encoder::Record(fields.collect::<Result<_, _>>()?))
    }

    fn new(node: &Node, array: &ArrayRef) -> Result<Encoder, String> {
        if let Node::Union(branches) = node {
            return Encoder::optional(branches, array);
        }
        let value = Encoder::value(node, array)?;
        Ok(match array.logical_nulls() {
            Some(nulls) if nulls.null_count() > 0 => Encoder::Required(Some(nulls), value.into()),
            _ => value,
        })
    }

    fn optional(branches: &[Node], array: &ArrayRef) -> Result<Encoder, String> {
        let null_branch = branches.iter().position(|b| matches!(b, Node::Null));
        let others: Vec<_> = (0..branches.len())
            .filter(|&i| Some(i) != null_branch)
            .collect();
        let (Some(null_branch), [value_branch]) = (null_branch, others.as_slice()) else {
            return Err("unions other than an optional value are not written by Connect".into());
        };
        Ok(Encoder::Optional {
            null_branch: null_branch as i64,
            value_branch: *value_branch as i64,
            nulls: array.logical_nulls(),
            value: Encoder::value(&branches[*value_branch], array)?.into(),
        })
    }

    /// The encoder of a non-null value of `node` (nulls are handled by the caller).
    fn value(node: &Node, array: &ArrayRef) -> Result<Encoder, String> {
        let cast = |to: DataType| {
            arrow_cast::cast(array, &to).map_err(|e| {
                format!(
                    "column of {} cannot be read as {to}: {e}",
                    array.data_type()
                )
            })
        };
        Ok(match node {
            Node::Null => Encoder::Null,
            Node::Boolean => Encoder::Boolean(cast(DataType::Boolean)?.as_boolean().clone()),
            Node::Int => Encoder::Int(cast(DataType::Int32)?.as_primitive().clone()),
            Node::Long => Encoder::Long(cast(DataType::Int64)?.as_primitive().clone()),
            Node::Float => Encoder::Float(cast(DataType::Float32)?.as_primitive().clone()),
            Node::Double => Encoder::Double(cast(DataType::Float64)?.as_primitive().clone()),
            Node::String => Encoder::String(cast(DataType::Utf8)?.as_string().clone()),
            Node::Enum(symbols) => {
                Encoder::Enum(symbols.clone(), cast(DataType::Utf8)?.as_string().clone())
            }
            Node::Bytes => Encoder::Bytes(bytes_of(array)?),
            Node::Fixed(n) => match array.data_type() {
                DataType::FixedSizeBinary(m) if *m as usize == *n => {
                    Encoder::Fixed(array.as_fixed_size_binary().clone())
                }
                other => return Err(format!("fixed({n}) read from a column of {other}")),
            },
            Node::Array(item) => {
                let list = cast_list(array)?;
                let items = Encoder::new(item, list.values())?;
                Encoder::Array(list.offsets().clone(), items.into())
            }
            Node::Map(value) => {
                let DataType::Map(..) = array.data_type() else {
                    return Err(format!("map read from a column of {}", array.data_type()));
                };
                let map = array.as_map();
                let keys = arrow_cast::cast(map.keys(), &DataType::Utf8)
                    .map_err(|e| format!("map keys: {e}"))?;
                let values = Encoder::new(value, map.values())?;
                Encoder::Map(
                    map.offsets().clone(),
                    keys.as_string().clone(),
                    values.into(),
                )
            }
            Node::Record(record) => {
                let DataType::Struct(_) = array.data_type() else {
                    return Err(format!(
                        "record read from a column of {}",
                        array.data_type()
                    ));
                };
                Encoder::record(record, array.as_struct())?
            }
            Node::Union(_) => return Err("a union inside a union".into()),
        })
    }

    /// Appends the Avro encoding of row `row`.
    fn write(&self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Encoder::Null => {}
            Encoder::Boolean(a) => out.push(u8::from(a.value(row))),
            Encoder::Int(a) => write_long(out, i64::from(a.value(row))),
            Encoder::Long(a) => write_long(out, a.value(row)),
            Encoder::Float(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            Encoder::Double(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            Encoder::Bytes(a) => write_bytes(out, a.value(row)),
            Encoder::String(a) => write_bytes(out, a.value(row).as_bytes()),
            Encoder::Fixed(a) => out.extend_from_slice(a.value(row)),
            Encoder::Enum(symbols, a) => {
                let symbol = a.value(row);
                let i = symbols
                    .iter()
                    .position(|s| s == symbol)
                    .ok_or_else(|| format!("`{symbol}` is not a symbol of the enum"))?;
                write_long(out, i as i64);
            }
            Encoder::Array(offsets, items) => {
                let range = offsets[row] as usize..offsets[row + 1] as usize;
                write_block(out, range, |i, out| items.write(i, out))?;
            }
            Encoder::Map(offsets, keys, values) => {
                let range = offsets[row] as usize..offsets[row + 1] as usize;
                write_block(out, range, |i, out| {
                    write_bytes(out, keys.value(i).as_bytes());
                    values.write(i, out)
                })?;
            }
            Encoder::Record(fields) => {
                for field in fields {
                    field.write(row, out)?;
                }
            }
            Encoder::Optional {
                null_branch,
                value_branch,
                nulls,
                value,
            } => match nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                true => write_long(out, *null_branch),
                false => {
                    write_long(out, *value_branch);
                    value.write(row, out)?;
                }
            },
            Encoder::Required(nulls, value) => {
                if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                    return Err(format!("row {row}: null in a field the schema requires"));
                }
                value.write(row, out)?;
            }
        }
        Ok(())
    }
}

/// A list column as `List` (parquet-avro's 2-level and 3-level lists both read as one).
fn cast_list(array: &ArrayRef) -> Result<arrow_array::ListArray, String> {
    match array.data_type() {
        DataType::List(_) => Ok(array.as_list::<i32>().clone()),
        DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::ListView(f) => {
            let cast =
                arrow_cast::cast(array, &DataType::List(f.clone())).map_err(|e| e.to_string())?;
            Ok(cast.as_list::<i32>().clone())
        }
        other => Err(format!("array read from a column of {other}")),
    }
}

/// A `bytes` column: plain binary, or a decimal (parquet-avro writes Connect's decimals, Avro
/// `bytes` with `logicalType: decimal`, as Parquet `DECIMAL`) turned back into the big-endian
/// two's-complement unscaled value AvroData wrote.
fn bytes_of(array: &ArrayRef) -> Result<BinaryArray, String> {
    let unscaled = |be: &[u8]| minimal_twos_complement(be).to_vec();
    match array.data_type() {
        DataType::Decimal128(..) => Ok(array
            .as_primitive::<Decimal128Type>()
            .iter()
            .map(|v| v.map(|v| unscaled(&v.to_be_bytes())))
            .collect()),
        DataType::Decimal256(..) => Ok(array
            .as_primitive::<Decimal256Type>()
            .iter()
            .map(|v| v.map(|v| unscaled(&v.to_be_bytes())))
            .collect()),
        _ => Ok(arrow_cast::cast(array, &DataType::Binary)
            .map_err(|e| format!("bytes read from a column of {}: {e}", array.data_type()))?
            .as_binary::<i32>()
            .clone()),
    }
}

/// The shortest big-endian two's-complement form of a number (as Java's
/// `BigInteger.toByteArray`): leading sign bytes dropped while the sign bit stays the same.
fn minimal_twos_complement(be: &[u8]) -> &[u8] {
    let mut start = 0;
    while start + 1 < be.len() {
        let (byte, next) = (be[start], be[start + 1]);
        let redundant = (byte == 0 && next & 0x80 == 0) || (byte == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    &be[start..]
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// An array or map value: one block of `range.len()` items (none if empty), then the end mark.
fn write_block(
    out: &mut Vec<u8>,
    range: std::ops::Range<usize>,
    mut item: impl FnMut(usize, &mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    if !range.is_empty() {
        write_long(out, range.len() as i64);
        for i in range {
            item(i, out)?;
        }
    }
    write_long(out, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscaled_values_are_written_as_java_does() {
        let be = |v: i128| minimal_twos_complement(&v.to_be_bytes()).to_vec();
        assert_eq!(be(0), [0]);
        assert_eq!(be(1), [1]);
        assert_eq!(be(127), [0x7f]);
        assert_eq!(be(128), [0, 0x80]);
        assert_eq!(be(-1), [0xff]);
        assert_eq!(be(-128), [0x80]);
        assert_eq!(be(-129), [0xff, 0x7f]);
        assert_eq!(be(12345), [0x30, 0x39]);
    }
}
