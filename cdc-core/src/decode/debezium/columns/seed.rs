//! The serde seed that streams one JSON value into a [`ColumnBuilder`]: scalars, strings of
//! every encoding, nested lists, structs and maps (as key/value pairs).

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::*;

/// Streams one JSON value into a column.
pub(crate) struct CellSeed<'a> {
    pub column: &'a mut ColumnBuilder,
    pub placeholder: &'a Placeholder,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Cell;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Cell;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value of type {}", self.column.field.data_type())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        self.column.push_null();
        Ok(Cell::Value)
    }

    fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell, E> {
        self.column.push_bool(v).map_err(E::custom)?;
        Ok(Cell::Value)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
        self.column.push_i64(v).map_err(E::custom)?;
        Ok(Cell::Value)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => match self.column.field.data_type() {
                DataType::Decimal128(..) | DataType::Decimal256(..) => {
                    self.column
                        .push_decimal_text(&v.to_string())
                        .map_err(E::custom)?;
                    Ok(Cell::Value)
                }
                DataType::Float32 | DataType::Float64 => self.visit_f64(v as f64),
                _ => Err(E::custom(format!(
                    "{v} is out of range for {}",
                    self.column.field.data_type()
                ))),
            },
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
        self.column.push_f64(v).map_err(E::custom)?;
        Ok(Cell::Value)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
        self.column.push_str(v, self.placeholder).map_err(E::custom)
    }

    /// Raw bytes (Avro `bytes`/`fixed`; JSON carries them as base64 strings).
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Cell, E> {
        self.column.push_raw(v, self.placeholder).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        let placeholder = self.placeholder;
        match &mut self.column.store {
            Store::List { offsets, child } => {
                let start = child.len();
                let mut unavailable = false;
                while let Some(cell) = seq.next_element_seed(CellSeed {
                    column: child,
                    placeholder,
                })? {
                    unavailable |= cell == Cell::Unavailable;
                }
                if unavailable {
                    // Debezium sends an unchanged TOASTed array as an array of placeholders.
                    child.truncate(start);
                    self.column.push_null();
                    return Ok(Cell::Unavailable);
                }
                offsets.push(i32::try_from(child.len()).map_err(de::Error::custom)?);
                self.column.valid.push(true);
                Ok(Cell::Value)
            }
            Store::Map {
                offsets,
                keys,
                values,
            } => {
                // The JsonConverter writes maps with non-string keys as [[key, value], ...].
                while let Some(()) = seq.next_element_seed(PairSeed {
                    keys,
                    values,
                    placeholder,
                })? {}
                offsets.push(i32::try_from(keys.len()).map_err(de::Error::custom)?);
                self.column.valid.push(true);
                Ok(Cell::Value)
            }
            _ => Err(de::Error::custom(self.column.unexpected("an array"))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        let placeholder = self.placeholder;
        let column = self.column;
        match &mut column.store {
            Store::Struct { children } => {
                let mut seen = vec![false; children.len()];
                while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let Some(i) = children
                        .iter()
                        .position(|c| c.field.name() == name.as_ref())
                    else {
                        return Err(de::Error::custom(format!(
                            "unknown struct field `{name}` in {}",
                            column.field.name()
                        )));
                    };
                    if seen[i] {
                        return Err(de::Error::custom(format!("duplicate field `{name}`")));
                    }
                    seen[i] = true;
                    map.next_value_seed(CellSeed {
                        column: &mut children[i],
                        placeholder,
                    })?;
                }
                for (i, c) in children.iter_mut().enumerate() {
                    if !seen[i] {
                        c.push_null();
                    }
                }
                column.valid.push(true);
                Ok(Cell::Value)
            }
            Store::Map {
                offsets,
                keys,
                values,
            } => {
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    keys.push_str(&k, placeholder).map_err(de::Error::custom)?;
                    map.next_value_seed(CellSeed {
                        column: values,
                        placeholder,
                    })?;
                }
                offsets.push(i32::try_from(keys.len()).map_err(de::Error::custom)?);
                column.valid.push(true);
                Ok(Cell::Value)
            }
            Store::Bytes { .. } | Store::I128(_) | Store::I256(_) => {
                let value: VariableScaleDecimal =
                    serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
                column.push_object(value).map_err(de::Error::custom)?;
                Ok(Cell::Value)
            }
            _ => {
                map.next_key::<IgnoredAny>()?;
                Err(de::Error::custom(column.unexpected("an object")))
            }
        }
    }
}

/// A Debezium VariableScaleDecimal: the unscaled value's bytes (base64 in JSON, raw in Avro)
/// and its scale.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableScaleDecimal {
    scale: i32,
    value: UnscaledBytes,
}

struct UnscaledBytes(Vec<u8>);

impl<'de> serde::Deserialize<'de> for UnscaledBytes {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnscaledBytesVisitor)
    }
}

struct UnscaledBytesVisitor;

impl Visitor<'_> for UnscaledBytesVisitor {
    type Value = UnscaledBytes;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("VariableScaleDecimal bytes (base64 or raw)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<UnscaledBytes, E> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| E::custom(format!("VariableScaleDecimal: invalid base64: {e}")))?;
        Ok(UnscaledBytes(bytes))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<UnscaledBytes, E> {
        Ok(UnscaledBytes(v.to_vec()))
    }
}

impl ColumnBuilder {
    /// A Debezium VariableScaleDecimal `{scale, value}` into a text or decimal column.
    fn push_object(&mut self, vsd: VariableScaleDecimal) -> Result<(), CellError> {
        let text = numeric::unscaled_to_decimal_text(&vsd.value.0, vsd.scale);
        match self.field.data_type() {
            DataType::Utf8 => self.push_bytes(text.as_bytes()),
            DataType::Decimal128(..) | DataType::Decimal256(..) => self.push_decimal_text(&text),
            _ => Err(self.unexpected("an object")),
        }
    }
}

/// One `[key, value]` pair of a map written as an array.
struct PairSeed<'a> {
    keys: &'a mut ColumnBuilder,
    values: &'a mut ColumnBuilder,
    placeholder: &'a Placeholder,
}

impl<'de> DeserializeSeed<'de> for PairSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PairSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [key, value] pair")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let placeholder = self.placeholder;
        let k = seq.next_element_seed(CellSeed {
            column: self.keys,
            placeholder,
        })?;
        let v = seq.next_element_seed(CellSeed {
            column: self.values,
            placeholder,
        })?;
        if k.is_none() || v.is_none() || seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("map entry must be a [key, value] pair"));
        }
        Ok(())
    }
}
