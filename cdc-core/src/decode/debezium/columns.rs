//! Column builders that JSON values stream into, one per Arrow column.
//!
//! A [`ColumnBuilder`] appends one cell per row straight from the JSON tokens (a serde
//! `DeserializeSeed`), so no per-row JSON tree is built. Unlike Arrow's builders these can be
//! truncated, which lets a row that fails half-way be rolled back without poisoning the batch.
//! What a JSON value means for a column is decided by the column's Arrow type and its
//! `cdc.*` field metadata (see [`super::types`]).

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, ListArray, MapArray, PrimitiveArray,
    StringArray, StructArray,
};
use arrow_buffer::{i256, BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef, Fields, TimeUnit};
use base64::Engine;

use super::types::META_DECIMAL_ENCODING;
use crate::decode::debezium::numeric;

/// What decoding one cell produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell {
    /// A value (or null) was appended.
    Value,
    /// The source's "unavailable value" placeholder: a null was appended, the cell must keep
    /// the table's value.
    Unavailable,
}

/// Growable storage of one column.
#[derive(Debug)]
enum Store {
    Bool(Vec<bool>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I128(Vec<i128>),
    I256(Vec<i256>),
    /// Utf8 or Binary.
    Bytes {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    List {
        offsets: Vec<i32>,
        child: Box<ColumnBuilder>,
    },
    Struct {
        children: Vec<ColumnBuilder>,
    },
    Map {
        offsets: Vec<i32>,
        keys: Box<ColumnBuilder>,
        values: Box<ColumnBuilder>,
    },
}

/// Builds one Arrow column from JSON values.
#[derive(Debug)]
pub(crate) struct ColumnBuilder {
    field: FieldRef,
    store: Store,
    valid: Vec<bool>,
    /// Decimal columns: `true` when a JSON string holds decimal text instead of base64 bytes.
    decimal_text: bool,
    /// Largest absolute unscaled value a decimal column may hold.
    decimal_max: Option<i256>,
}

/// Errors while building: a message, the caller adds the column.
pub(crate) type CellError = String;

impl ColumnBuilder {
    /// A builder for `field`. Fails for Arrow types the decoder cannot fill.
    pub(crate) fn new(field: FieldRef) -> Result<Self, CellError> {
        let store = match field.data_type() {
            DataType::Boolean => Store::Bool(Vec::new()),
            DataType::Int8 => Store::I8(Vec::new()),
            DataType::Int16 => Store::I16(Vec::new()),
            DataType::Int32 | DataType::Date32 | DataType::Time32(_) => Store::I32(Vec::new()),
            DataType::Int64
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
            | DataType::Duration(_) => Store::I64(Vec::new()),
            DataType::Float32 => Store::F32(Vec::new()),
            DataType::Float64 => Store::F64(Vec::new()),
            DataType::Decimal128(_, _) => Store::I128(Vec::new()),
            DataType::Decimal256(_, _) => Store::I256(Vec::new()),
            DataType::Utf8 | DataType::Binary => Store::Bytes {
                offsets: vec![0],
                data: Vec::new(),
            },
            DataType::List(item) => Store::List {
                offsets: vec![0],
                child: Box::new(ColumnBuilder::new(item.clone())?),
            },
            DataType::Struct(fields) => Store::Struct {
                children: fields
                    .iter()
                    .map(|f| ColumnBuilder::new(f.clone()))
                    .collect::<Result<_, _>>()?,
            },
            DataType::Map(entries, _) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(format!("map entries must be a struct, got {}", entries));
                };
                if kv.len() != 2 {
                    return Err("map entries must have a key and a value field".into());
                }
                Store::Map {
                    offsets: vec![0],
                    keys: Box::new(ColumnBuilder::new(kv[0].clone())?),
                    values: Box::new(ColumnBuilder::new(kv[1].clone())?),
                }
            }
            other => return Err(format!("Arrow type {other} cannot be decoded from JSON")),
        };
        let decimal_max = match field.data_type() {
            DataType::Decimal128(p, _) | DataType::Decimal256(p, _) => {
                Some(i256::from_i128(10).wrapping_pow(u32::from(*p)) - i256::ONE)
            }
            _ => None,
        };
        let meta = field.metadata();
        let decimal_text = meta.get(META_DECIMAL_ENCODING).map(String::as_str) == Some("text");
        Ok(ColumnBuilder {
            field,
            store,
            valid: Vec::new(),
            decimal_text,
            decimal_max,
        })
    }

    /// The field this builds.
    pub(crate) fn field(&self) -> &FieldRef {
        &self.field
    }

    /// Rows appended so far.
    pub(crate) fn len(&self) -> usize {
        self.valid.len()
    }

    /// Drops every row from `len` on.
    pub(crate) fn truncate(&mut self, len: usize) {
        if self.valid.len() <= len {
            return;
        }
        self.valid.truncate(len);
        match &mut self.store {
            Store::Bool(v) => v.truncate(len),
            Store::I8(v) => v.truncate(len),
            Store::I16(v) => v.truncate(len),
            Store::I32(v) => v.truncate(len),
            Store::I64(v) => v.truncate(len),
            Store::F32(v) => v.truncate(len),
            Store::F64(v) => v.truncate(len),
            Store::I128(v) => v.truncate(len),
            Store::I256(v) => v.truncate(len),
            Store::Bytes { offsets, data } => {
                offsets.truncate(len + 1);
                data.truncate(offsets[len] as usize);
            }
            Store::List { offsets, child } => {
                offsets.truncate(len + 1);
                child.truncate(offsets[len] as usize);
            }
            Store::Struct { children } => children.iter_mut().for_each(|c| c.truncate(len)),
            Store::Map {
                offsets,
                keys,
                values,
            } => {
                offsets.truncate(len + 1);
                keys.truncate(offsets[len] as usize);
                values.truncate(offsets[len] as usize);
            }
        }
    }

    /// Appends a null.
    pub(crate) fn push_null(&mut self) {
        self.valid.push(false);
        match &mut self.store {
            Store::Bool(v) => v.push(false),
            Store::I8(v) => v.push(0),
            Store::I16(v) => v.push(0),
            Store::I32(v) => v.push(0),
            Store::I64(v) => v.push(0),
            Store::F32(v) => v.push(0.0),
            Store::F64(v) => v.push(0.0),
            Store::I128(v) => v.push(0),
            Store::I256(v) => v.push(i256::ZERO),
            Store::Bytes { offsets, data } => offsets.push(data.len() as i32),
            Store::List { offsets, .. } | Store::Map { offsets, .. } => {
                let last = *offsets.last().expect("offsets start with 0");
                offsets.push(last);
            }
            Store::Struct { children } => children.iter_mut().for_each(|c| c.push_null()),
        }
    }

    pub(crate) fn push_i64(&mut self, v: i64) -> Result<(), CellError> {
        let out_of_range = || format!("{v} is out of range for {}", self.field.data_type());
        match &mut self.store {
            Store::I8(s) => s.push(i8::try_from(v).map_err(|_| out_of_range())?),
            Store::I16(s) => s.push(i16::try_from(v).map_err(|_| out_of_range())?),
            Store::I32(s) => s.push(i32::try_from(v).map_err(|_| out_of_range())?),
            Store::I64(s) => s.push(v),
            Store::F32(s) => s.push(v as f32),
            Store::F64(s) => s.push(v as f64),
            Store::Bool(s) if v == 0 || v == 1 => s.push(v == 1),
            Store::I128(_) | Store::I256(_) => {
                return self.push_decimal_text(&v.to_string());
            }
            _ => return Err(self.unexpected("an integer")),
        }
        self.valid.push(true);
        Ok(())
    }

    fn push_f64(&mut self, v: f64) -> Result<(), CellError> {
        match &mut self.store {
            Store::F32(s) => s.push(v as f32),
            Store::F64(s) => s.push(v),
            Store::I128(_) | Store::I256(_) => {
                // A double-mode decimal fed to an exact column: exact from the shortest repr.
                return self.push_decimal_text(&format!("{v}"));
            }
            _ if v.fract() == 0.0 && v.abs() < 9.0e15 => return self.push_i64(v as i64),
            _ => return Err(self.unexpected("a floating-point number")),
        }
        self.valid.push(true);
        Ok(())
    }

    pub(crate) fn push_bool(&mut self, v: bool) -> Result<(), CellError> {
        match &mut self.store {
            Store::Bool(s) => s.push(v),
            _ => return Err(self.unexpected("a boolean")),
        }
        self.valid.push(true);
        Ok(())
    }

    /// Appends raw bytes to a Utf8/Binary column (the caller guarantees UTF-8 for Utf8).
    fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), CellError> {
        let Store::Bytes { offsets, data } = &mut self.store else {
            return Err(self.unexpected("bytes"));
        };
        data.extend_from_slice(bytes);
        offsets.push(i32::try_from(data.len()).map_err(|_| "column batch exceeds 2 GiB")?);
        self.valid.push(true);
        Ok(())
    }

    fn push_decimal_unscaled(&mut self, v: i256) -> Result<(), CellError> {
        let max = self.decimal_max.expect("decimal column");
        if v > max || v < max.wrapping_neg() {
            return Err(format!(
                "decimal value exceeds the precision of {}",
                self.field.data_type()
            ));
        }
        match &mut self.store {
            Store::I128(s) => s.push(v.as_i128()),
            Store::I256(s) => s.push(v),
            _ => unreachable!("decimal_max is only set for decimal columns"),
        }
        self.valid.push(true);
        Ok(())
    }

    fn decimal_scale(&self) -> i8 {
        match self.field.data_type() {
            DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => *s,
            _ => 0,
        }
    }

    fn push_decimal_text(&mut self, text: &str) -> Result<(), CellError> {
        let v = numeric::parse_decimal_text(text, self.decimal_scale())?;
        self.push_decimal_unscaled(v)
    }

    pub(crate) fn push_str(
        &mut self,
        s: &str,
        placeholder: &Placeholder,
    ) -> Result<Cell, CellError> {
        match self.field.data_type() {
            DataType::Utf8 => {
                if s == placeholder.text {
                    self.push_null();
                    return Ok(Cell::Unavailable);
                }
                self.push_bytes(s.as_bytes())?;
            }
            DataType::Binary => {
                if s == placeholder.base64 {
                    self.push_null();
                    return Ok(Cell::Unavailable);
                }
                let Store::Bytes { offsets, data } = &mut self.store else {
                    unreachable!()
                };
                base64::engine::general_purpose::STANDARD
                    .decode_vec(s, data)
                    .map_err(|e| format!("invalid base64 `{}`: {e}", truncate_for_error(s)))?;
                offsets.push(i32::try_from(data.len()).map_err(|_| "column batch exceeds 2 GiB")?);
                self.valid.push(true);
            }
            DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => {
                if s == placeholder.text {
                    self.push_null();
                    return Ok(Cell::Unavailable);
                }
                let v = if self.decimal_text {
                    numeric::parse_decimal_text(s, self.decimal_scale())?
                } else {
                    decimal_from_base64(s)?
                };
                self.push_decimal_unscaled(v)?;
            }
            DataType::Timestamp(unit, _) => {
                let v = numeric::parse_timestamp(s, *unit)?;
                self.push_i64(v)?;
            }
            DataType::Time64(unit) => {
                let v = numeric::parse_time(s, *unit)?;
                self.push_i64(v)?;
            }
            DataType::Time32(unit) => {
                let v = numeric::parse_time(s, *unit)?;
                self.push_i64(v)?;
            }
            DataType::Date32 => {
                let v = numeric::parse_date(s)?;
                self.push_i64(i64::from(v))?;
            }
            DataType::Float32 | DataType::Float64 => {
                let v = match s {
                    "NaN" => f64::NAN,
                    "Infinity" => f64::INFINITY,
                    "-Infinity" => f64::NEG_INFINITY,
                    other => other.parse().map_err(|_| {
                        format!("expected a number, got `{}`", truncate_for_error(s))
                    })?,
                };
                self.push_f64(v)?;
            }
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                let v: i64 = s
                    .parse()
                    .map_err(|_| format!("expected an integer, got `{}`", truncate_for_error(s)))?;
                self.push_i64(v)?;
            }
            DataType::Boolean => match s {
                "true" => self.push_bool(true)?,
                "false" => self.push_bool(false)?,
                _ => {
                    return Err(format!(
                        "expected a boolean, got `{}`",
                        truncate_for_error(s)
                    ))
                }
            },
            _ => return Err(self.unexpected("a string")),
        }
        Ok(Cell::Value)
    }

    /// Raw bytes (Avro `bytes`): binary as they are, decimals as big-endian two's complement
    /// of the unscaled value. The TOAST placeholder's bytes mark an unchanged value.
    fn push_raw(&mut self, v: &[u8], placeholder: &Placeholder) -> Result<Cell, CellError> {
        let unavailable = v == placeholder.text.as_bytes();
        match self.field.data_type() {
            DataType::Binary | DataType::Decimal128(..) | DataType::Decimal256(..)
                if unavailable =>
            {
                self.push_null();
                return Ok(Cell::Unavailable);
            }
            DataType::Binary => self.push_bytes(v)?,
            DataType::Decimal128(..) | DataType::Decimal256(..) => {
                let unscaled = numeric::twos_complement_to_i256(v)
                    .ok_or_else(|| "decimal wider than 256 bits".to_string())?;
                self.push_decimal_unscaled(unscaled)?;
            }
            _ => return Err(self.unexpected("bytes")),
        }
        Ok(Cell::Value)
    }

    fn unexpected(&self, what: &str) -> CellError {
        format!(
            "expected a value of type {}, got {what}",
            self.field.data_type()
        )
    }

    /// Builds the Arrow array and resets the builder.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, CellError> {
        let valid = std::mem::take(&mut self.valid);
        let len = valid.len();
        let nulls = if valid.iter().all(|v| *v) {
            None
        } else {
            Some(NullBuffer::from(valid))
        };
        let dt = self.field.data_type().clone();
        let array: ArrayRef = match &mut self.store {
            Store::Bool(v) => Arc::new(BooleanArray::new(
                BooleanBuffer::from(std::mem::take(v)),
                nulls,
            )),
            Store::I8(v) => prim::<Int8Type>(std::mem::take(v), nulls, &dt),
            Store::I16(v) => prim::<Int16Type>(std::mem::take(v), nulls, &dt),
            Store::I32(v) => {
                let v = std::mem::take(v);
                match &dt {
                    DataType::Date32 => prim::<Date32Type>(v, nulls, &dt),
                    DataType::Time32(TimeUnit::Millisecond) => {
                        prim::<Time32MillisecondType>(v, nulls, &dt)
                    }
                    DataType::Time32(_) => prim::<Time32SecondType>(v, nulls, &dt),
                    _ => prim::<Int32Type>(v, nulls, &dt),
                }
            }
            Store::I64(v) => {
                let v = std::mem::take(v);
                match &dt {
                    DataType::Timestamp(TimeUnit::Second, _) => {
                        prim::<TimestampSecondType>(v, nulls, &dt)
                    }
                    DataType::Timestamp(TimeUnit::Millisecond, _) => {
                        prim::<TimestampMillisecondType>(v, nulls, &dt)
                    }
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {
                        prim::<TimestampMicrosecondType>(v, nulls, &dt)
                    }
                    DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                        prim::<TimestampNanosecondType>(v, nulls, &dt)
                    }
                    DataType::Time64(TimeUnit::Nanosecond) => {
                        prim::<Time64NanosecondType>(v, nulls, &dt)
                    }
                    DataType::Time64(_) => prim::<Time64MicrosecondType>(v, nulls, &dt),
                    DataType::Duration(TimeUnit::Second) => {
                        prim::<DurationSecondType>(v, nulls, &dt)
                    }
                    DataType::Duration(TimeUnit::Millisecond) => {
                        prim::<DurationMillisecondType>(v, nulls, &dt)
                    }
                    DataType::Duration(TimeUnit::Microsecond) => {
                        prim::<DurationMicrosecondType>(v, nulls, &dt)
                    }
                    DataType::Duration(TimeUnit::Nanosecond) => {
                        prim::<DurationNanosecondType>(v, nulls, &dt)
                    }
                    _ => prim::<Int64Type>(v, nulls, &dt),
                }
            }
            Store::F32(v) => prim::<Float32Type>(std::mem::take(v), nulls, &dt),
            Store::F64(v) => prim::<Float64Type>(std::mem::take(v), nulls, &dt),
            Store::I128(v) => prim::<Decimal128Type>(std::mem::take(v), nulls, &dt),
            Store::I256(v) => prim::<Decimal256Type>(std::mem::take(v), nulls, &dt),
            Store::Bytes { offsets, data } => {
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let data = Buffer::from_vec(std::mem::take(data));
                if dt == DataType::Utf8 {
                    Arc::new(StringArray::try_new(offsets, data, nulls).map_err(|e| e.to_string())?)
                } else {
                    Arc::new(BinaryArray::try_new(offsets, data, nulls).map_err(|e| e.to_string())?)
                }
            }
            Store::List { offsets, child } => {
                let DataType::List(item) = &dt else {
                    unreachable!()
                };
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                Arc::new(
                    ListArray::try_new(item.clone(), offsets, child.finish()?, nulls)
                        .map_err(|e| e.to_string())?,
                )
            }
            Store::Struct { children } => {
                let DataType::Struct(fields) = &dt else {
                    unreachable!()
                };
                let arrays = children
                    .iter_mut()
                    .map(ColumnBuilder::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                if fields.is_empty() {
                    Arc::new(StructArray::new_empty_fields(len, nulls))
                } else {
                    Arc::new(
                        StructArray::try_new(fields.clone(), arrays, nulls)
                            .map_err(|e| e.to_string())?,
                    )
                }
            }
            Store::Map {
                offsets,
                keys,
                values,
            } => {
                let DataType::Map(entries, sorted) = &dt else {
                    unreachable!()
                };
                let DataType::Struct(kv) = entries.data_type() else {
                    unreachable!()
                };
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let entries_array =
                    StructArray::try_new(kv.clone(), vec![keys.finish()?, values.finish()?], None)
                        .map_err(|e| e.to_string())?;
                Arc::new(
                    MapArray::try_new(entries.clone(), offsets, entries_array, nulls, *sorted)
                        .map_err(|e| e.to_string())?,
                )
            }
        };
        Ok(array)
    }
}

fn prim<T: ArrowPrimitiveType>(
    values: Vec<T::Native>,
    nulls: Option<NullBuffer>,
    dt: &DataType,
) -> ArrayRef {
    Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls).with_data_type(dt.clone()))
}

/// The unscaled value of a decimal the JsonConverter wrote as base64 bytes; decoded on the
/// stack when it fits (every decimal of up to 256 bits does), not into a new `Vec` per cell.
fn decimal_from_base64(s: &str) -> Result<i256, CellError> {
    use base64::DecodeSliceError;
    let invalid = |e: base64::DecodeError| {
        format!("decimal: invalid base64 `{}`: {e}", truncate_for_error(s))
    };
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut stack = [0u8; 48];
    let heap;
    let bytes = match engine.decode_slice(s, &mut stack) {
        Ok(n) => &stack[..n],
        Err(DecodeSliceError::DecodeError(e)) => return Err(invalid(e)),
        Err(DecodeSliceError::OutputSliceTooSmall) => {
            heap = engine.decode(s).map_err(invalid)?;
            &heap[..]
        }
    };
    numeric::twos_complement_to_i256(bytes).ok_or_else(|| "decimal wider than 256 bits".to_string())
}

fn truncate_for_error(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The source's "value not sent" marker, as text and as the base64 of its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Placeholder {
    pub text: String,
    pub base64: String,
}

impl Placeholder {
    pub(crate) fn new(text: &str) -> Self {
        Placeholder {
            text: text.to_string(),
            base64: base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
        }
    }
}

mod seed;
pub(crate) use seed::CellSeed;

/// The Arrow fields of `fields`, as builders.
pub(crate) fn builders(fields: &Fields) -> Result<Vec<ColumnBuilder>, (String, CellError)> {
    fields
        .iter()
        .map(|f| ColumnBuilder::new(f.clone()).map_err(|e| (f.name().clone(), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{cast::AsArray, Array};
    use arrow_schema::Field;
    use serde::de::DeserializeSeed;

    fn decode(field: Field, json: &[&str]) -> Result<ArrayRef, String> {
        let mut b = ColumnBuilder::new(Arc::new(field))?;
        let p = Placeholder::new("__debezium_unavailable_value");
        for j in json {
            let mut de = serde_json::Deserializer::from_str(j);
            CellSeed {
                column: &mut b,
                placeholder: &p,
            }
            .deserialize(&mut de)
            .map_err(|e| e.to_string())?;
        }
        b.finish()
    }

    #[test]
    fn decimal_from_base64_twos_complement() {
        // "/UQ=" = 0xFD44 = -700 -> -7.00
        let a = decode(
            Field::new("b", DataType::Decimal128(12, 2), true),
            &["\"/UQ=\"", "null"],
        )
        .unwrap();
        let a = a.as_primitive::<Decimal128Type>();
        assert_eq!(a.value(0), -700);
        assert!(a.is_null(1));
    }

    #[test]
    fn decimal_precision_is_enforced() {
        let err = decode(Field::new("b", DataType::Decimal128(3, 0), true), &["1000"]).unwrap_err();
        assert!(err.contains("precision"), "{err}");
    }

    #[test]
    fn int_range_is_checked() {
        let err = decode(Field::new("i", DataType::Int16, true), &["40000"]).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn lists_and_rollback() {
        let f = Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        );
        let mut b = ColumnBuilder::new(Arc::new(f)).unwrap();
        let p = Placeholder::new("x");
        for j in ["[1,2]", "[3,\"bad\"]"] {
            let mut de = serde_json::Deserializer::from_str(j);
            let r = CellSeed {
                column: &mut b,
                placeholder: &p,
            }
            .deserialize(&mut de);
            if r.is_err() {
                b.truncate(1);
            }
        }
        let a = b.finish().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a.as_list::<i32>().value(0).len(), 2);
    }

    #[test]
    fn placeholder_marks_unavailable() {
        let mut b = ColumnBuilder::new(Arc::new(Field::new("s", DataType::Utf8, true))).unwrap();
        let p = Placeholder::new("__debezium_unavailable_value");
        let mut de = serde_json::Deserializer::from_str("\"__debezium_unavailable_value\"");
        let cell = CellSeed {
            column: &mut b,
            placeholder: &p,
        }
        .deserialize(&mut de)
        .unwrap();
        assert_eq!(cell, Cell::Unavailable);
        assert!(b.finish().unwrap().is_null(0));
    }
}
