//! Kafka Connect / Debezium schemas and their Arrow types. The whole type mapping lives here
//! (documented in `docs/type-mapping.md`).
//!
//! Every column comes out nullable: deletes and truncates carry rows whose non-key cells are
//! empty, and lake tables cannot add required columns later. The source's optionality, the
//! Connect semantic name and the column default are kept in the field metadata.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, TimeUnit};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Field metadata: the Connect semantic type name (`io.debezium.time.MicroTimestamp`, ...).
pub const META_CONNECT_NAME: &str = "cdc.connect.name";
/// Field metadata: the Connect schema parameters, as a JSON object.
pub const META_CONNECT_PARAMETERS: &str = "cdc.connect.parameters";
/// Field metadata: the column default as JSON text, in the wire encoding of the column.
pub const META_DEFAULT: &str = "cdc.default";
/// Field metadata: `"false"` when the source column is NOT NULL.
pub const META_SOURCE_OPTIONAL: &str = "cdc.source.optional";
/// Field metadata: how a decimal column arrives as a JSON string: `base64` (Debezium `precise`,
/// the default) or `text` (`"12.50"`).
pub const META_DECIMAL_ENCODING: &str = "cdc.decimal.encoding";
/// Arrow's canonical extension-name key; JSON columns carry `arrow.json`.
pub const META_EXTENSION_NAME: &str = "ARROW:extension:name";

/// Debezium semantic type names that are JSON text.
pub const JSON_NAME: &str = "io.debezium.data.Json";
/// Semantic name of decimals with a per-value scale.
pub const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";

/// A Kafka Connect schema as the JsonConverter writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConnectSchema {
    /// Literal type: `int32`, `string`, `struct`, ...
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether the value may be null.
    #[serde(default)]
    pub optional: bool,
    /// Semantic type name.
    #[serde(default)]
    pub name: Option<String>,
    /// Semantic type parameters (`scale`, `connect.decimal.precision`, `allowed`, `length`).
    #[serde(default)]
    pub parameters: Option<BTreeMap<String, String>>,
    /// Default value, in the wire encoding.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// The field name, when this schema is a struct field.
    #[serde(default)]
    pub field: Option<String>,
    /// Struct fields.
    #[serde(default)]
    pub fields: Option<Vec<ConnectSchema>>,
    /// Array items.
    #[serde(default)]
    pub items: Option<Box<ConnectSchema>>,
    /// Map keys.
    #[serde(default)]
    pub keys: Option<Box<ConnectSchema>>,
    /// Map values.
    #[serde(default)]
    pub values: Option<Box<ConnectSchema>>,
}

impl ConnectSchema {
    /// The struct field called `name`.
    pub fn field(&self, name: &str) -> Option<&ConnectSchema> {
        self.fields
            .as_ref()?
            .iter()
            .find(|f| f.field.as_deref() == Some(name))
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.parameters.as_ref()?.get(key).map(String::as_str)
    }
}

/// Maps a Connect schema to an Arrow data type. `column` names the column for errors.
pub fn connect_to_arrow(table: &str, column: &str, s: &ConnectSchema) -> Result<DataType> {
    let unsupported = |message: String| Error::UnsupportedSchema {
        table: table.to_string(),
        column: column.to_string(),
        message,
    };
    let name = s.name.as_deref().unwrap_or("");
    let ty = s.ty.as_str();
    Ok(match (name, ty) {
        ("org.apache.kafka.connect.data.Decimal", "bytes") => {
            let scale: i8 =
                s.param("scale").unwrap_or("0").parse().map_err(|_| {
                    unsupported(format!("bad decimal scale {:?}", s.param("scale")))
                })?;
            // Without a precision (MySQL sends none for some columns), take the widest exact type.
            let precision: u8 = match s.param("connect.decimal.precision") {
                Some(p) => p
                    .parse()
                    .map_err(|_| unsupported(format!("bad decimal precision `{p}`")))?,
                None => 38,
            };
            decimal_type(precision, scale).map_err(unsupported)?
        }
        (VARIABLE_SCALE_DECIMAL, "struct") => DataType::Utf8,
        ("io.debezium.time.Date" | "org.apache.kafka.connect.data.Date", "int32") => {
            DataType::Date32
        }
        ("io.debezium.time.Time" | "org.apache.kafka.connect.data.Time", "int32") => {
            DataType::Time32(TimeUnit::Millisecond)
        }
        // The connect Time is documented as ms but some connectors emit it as int64.
        ("org.apache.kafka.connect.data.Time", "int64") => DataType::Time32(TimeUnit::Millisecond),
        ("io.debezium.time.MicroTime", "int64") => DataType::Time64(TimeUnit::Microsecond),
        ("io.debezium.time.NanoTime", "int64") => DataType::Time64(TimeUnit::Nanosecond),
        ("io.debezium.time.ZonedTime", "string") => DataType::Time64(TimeUnit::Microsecond),
        ("io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp", "int64") => {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        }
        ("io.debezium.time.MicroTimestamp", "int64") => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        ("io.debezium.time.NanoTimestamp", "int64") => {
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        }
        ("io.debezium.time.ZonedTimestamp", "string") => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
        }
        ("io.debezium.time.MicroDuration", "int64") => DataType::Duration(TimeUnit::Microsecond),
        ("io.debezium.time.NanoDuration", "int64") => DataType::Duration(TimeUnit::Nanosecond),
        ("io.debezium.time.Year", "int32") => DataType::Int32,
        ("io.debezium.data.Bits", "bytes") => DataType::Binary,
        (_, "boolean") => DataType::Boolean,
        (_, "int8") => DataType::Int8,
        (_, "int16") => DataType::Int16,
        (_, "int32") => DataType::Int32,
        (_, "int64") => DataType::Int64,
        (_, "float" | "float32") => DataType::Float32,
        (_, "double" | "float64") => DataType::Float64,
        (_, "string") => DataType::Utf8,
        (_, "bytes") => DataType::Binary,
        (_, "array") => {
            let items = s
                .items
                .as_deref()
                .ok_or_else(|| unsupported("array schema without `items`".into()))?;
            let item = connect_field(table, &format!("{column}.item"), "item", items)?;
            DataType::List(Arc::new(item))
        }
        (_, "map") => {
            let (Some(k), Some(v)) = (s.keys.as_deref(), s.values.as_deref()) else {
                return Err(unsupported("map schema without `keys`/`values`".into()));
            };
            let key = connect_to_arrow(table, &format!("{column}.key"), k)?;
            let value = connect_field(table, &format!("{column}.value"), "value", v)?;
            let entries = Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![Field::new("key", key, false), value])),
                false,
            );
            DataType::Map(Arc::new(entries), false)
        }
        (_, "struct") => {
            let fields = s.fields.as_deref().unwrap_or_default();
            let children = fields
                .iter()
                .map(|f| {
                    let n = f.field.as_deref().unwrap_or("");
                    connect_field(table, &format!("{column}.{n}"), n, f)
                })
                .collect::<Result<Vec<_>>>()?;
            DataType::Struct(Fields::from(children))
        }
        (_, other) => return Err(unsupported(format!("unknown Connect type `{other}`"))),
    })
}

/// The Arrow decimal type for a precision and scale: 128-bit up to 38 digits, else 256-bit.
pub fn decimal_type(precision: u8, scale: i8) -> std::result::Result<DataType, String> {
    if precision == 0 || precision > 76 {
        return Err(format!(
            "decimal precision {precision} is outside 1..=76; use decimal.handling.mode=string"
        ));
    }
    Ok(if precision <= 38 {
        DataType::Decimal128(precision, scale)
    } else {
        DataType::Decimal256(precision, scale)
    })
}

/// Maps one Connect field to an Arrow field with the metadata described in this module.
pub fn connect_field(table: &str, path: &str, name: &str, s: &ConnectSchema) -> Result<Field> {
    let data_type = connect_to_arrow(table, path, s)?;
    let mut meta = HashMap::new();
    if let Some(n) = &s.name {
        meta.insert(META_CONNECT_NAME.to_string(), n.clone());
        if n == JSON_NAME {
            meta.insert(META_EXTENSION_NAME.to_string(), "arrow.json".to_string());
        }
    }
    if let Some(p) = &s.parameters {
        meta.insert(
            META_CONNECT_PARAMETERS.to_string(),
            serde_json::to_string(p).expect("string map serialises"),
        );
    }
    if let Some(d) = &s.default {
        if !d.is_null() {
            meta.insert(META_DEFAULT.to_string(), d.to_string());
        }
    }
    if !s.optional {
        meta.insert(META_SOURCE_OPTIONAL.to_string(), "false".to_string());
    }
    Ok(Field::new(name, data_type, true).with_metadata(meta))
}

/// The Arrow fields of a Connect row struct (the `after` schema of an envelope, or an unwrapped
/// value schema minus its `__` metadata fields).
pub fn row_fields(table: &str, row: &ConnectSchema, skip_metadata: bool) -> Result<Vec<FieldRef>> {
    row.fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|f| !(skip_metadata && is_metadata_field(f.field.as_deref().unwrap_or(""))))
        .map(|f| {
            let n = f.field.as_deref().unwrap_or("");
            connect_field(table, n, n, f).map(Arc::new)
        })
        .collect()
}

/// Fields that `ExtractNewRecordState` adds (`__op`, `__deleted`, `__source_ts_ms`, ...).
pub fn is_metadata_field(name: &str) -> bool {
    name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> ConnectSchema {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn decimals_keep_precision_and_scale() {
        let s = schema(
            r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"12"}}"#,
        );
        assert_eq!(
            connect_to_arrow("t", "c", &s).unwrap(),
            DataType::Decimal128(12, 2)
        );
        let wide = schema(
            r#"{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"50"}}"#,
        );
        assert_eq!(
            connect_to_arrow("t", "c", &wide).unwrap(),
            DataType::Decimal256(50, 2)
        );
    }

    #[test]
    fn temporal_units() {
        let t = |name: &str, ty: &str| {
            connect_to_arrow(
                "t",
                "c",
                &schema(&format!(r#"{{"type":"{ty}","name":"{name}"}}"#)),
            )
            .unwrap()
        };
        assert_eq!(
            t("io.debezium.time.MicroTimestamp", "int64"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(
            t("org.apache.kafka.connect.data.Timestamp", "int64"),
            DataType::Timestamp(TimeUnit::Millisecond, None)
        );
        assert_eq!(
            t("io.debezium.time.ZonedTimestamp", "string"),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            t("io.debezium.time.Time", "int32"),
            DataType::Time32(TimeUnit::Millisecond)
        );
        assert_eq!(
            t("io.debezium.time.MicroDuration", "int64"),
            DataType::Duration(TimeUnit::Microsecond)
        );
    }

    #[test]
    fn unknown_types_name_the_column() {
        let err = connect_to_arrow("public.t", "c", &schema(r#"{"type":"blob"}"#)).unwrap_err();
        assert!(err.to_string().contains("column `c`"), "{err}");
    }
}
