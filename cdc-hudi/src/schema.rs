//! Logical Arrow schemas ↔ what a Hudi table stores: the Arrow schema of the base files (the
//! five `_hoodie_*` meta columns, then the data columns in storage types) and the Avro schema
//! that commits carry in `extraMetadata.schema`.
//!
//! Hudi's schema is Avro, so columns are stored as types Avro has and Hudi's engines read: no
//! 8/16-bit integers (stored as `int`); timestamps as `timestamp-micros`, zoned ones in UTC and
//! ones without a zone holding their wall-clock value as if it were UTC (Spark's and Athena's
//! Hudi readers and hudi-rs read `timestamp-micros` as a timestamp; hudi-rs 0.5 cannot read
//! `local-timestamp-micros`); times of day as
//! fixed-width text `HH:MM:SS.ffffff` (Spark has no TIME type and reads `time-micros` as a
//! long); nanosecond timestamps and durations as `long` in the source's unit, said in the
//! column's `doc`. Maps become lists of key/value records. The original Arrow type of every
//! column that changed rides in the field metadata `cdc.arrow.type`, so `logical_schema`
//! restores it.

use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, TimeUnit};
use cdc_core::storage::{storage_schema, StorageTypes, META_ARROW_TYPE};
use serde_json::{json, Value};

/// What Hudi (through its Avro schema) stores so that its engines read it as the type it is:
/// no time of day (Spark, and so Athena and EMR, read Avro `time-micros` as a plain long), so
/// times are fixed-width text; naive timestamps as `timestamp-micros` holding the wall clock.
pub const HUDI_TYPES: StorageTypes = StorageTypes {
    small_ints: false,
    time_micros: false,
    timestamp_without_zone: false,
    max_decimal_precision: 38,
    maps: false,
};

/// `_hoodie_commit_time`: the instant that wrote the record.
pub const COMMIT_TIME: &str = "_hoodie_commit_time";
/// `_hoodie_commit_seqno`: `<instant>_<file index>_<record index>`.
pub const COMMIT_SEQNO: &str = "_hoodie_commit_seqno";
/// `_hoodie_record_key`: the record key string.
pub const RECORD_KEY: &str = "_hoodie_record_key";
/// `_hoodie_partition_path`: the partition directory (`""` when not partitioned).
pub const PARTITION_PATH: &str = "_hoodie_partition_path";
/// `_hoodie_file_name`: the base file the record was written to.
pub const FILE_NAME: &str = "_hoodie_file_name";
/// The meta columns, in the order they lead every base file.
pub const META_COLUMNS: [&str; 5] = [
    COMMIT_TIME,
    COMMIT_SEQNO,
    RECORD_KEY,
    PARTITION_PATH,
    FILE_NAME,
];

/// The storage schema of `logical`: what the data columns of base files hold.
pub fn stored_schema(logical: &Schema) -> Schema {
    let stored = storage_schema(logical, &HUDI_TYPES);
    let fields: Vec<FieldRef> = stored
        .fields()
        .iter()
        .map(|f| Arc::new(utc_timestamps(f)))
        .collect();
    Schema::new_with_metadata(fields, stored.metadata().clone())
}

/// Timestamps with a zone are stored in UTC (the values are instants either way; Avro's
/// `timestamp-micros` reads back as UTC).
fn utc_timestamps(field: &Field) -> Field {
    let data_type = match field.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() != "UTC" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::List(item) => DataType::List(Arc::new(utc_timestamps(item))),
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|c| Arc::new(utc_timestamps(c)))
                .collect::<Fields>(),
        ),
        other => other.clone(),
    };
    let mut out = field.clone().with_data_type(data_type.clone());
    if &data_type != field.data_type()
        && !matches!(data_type, DataType::List(_) | DataType::Struct(_))
        && !field.metadata().contains_key(META_ARROW_TYPE)
    {
        let mut meta = field.metadata().clone();
        meta.insert(META_ARROW_TYPE.into(), field.data_type().to_string());
        out = out.with_metadata(meta);
    }
    out
}

/// The Arrow type of each top-level field of a stored Avro schema (JSON text), as far as it
/// tells times and timestamps from plain integers: what a table written by an earlier version
/// stores (see `cdc_core::storage::check_no_legacy_storage`). Other types come back as `Null`.
pub fn avro_field_types(avro: &str) -> Vec<(String, DataType)> {
    let Ok(schema) = serde_json::from_str::<Value>(avro) else {
        return Vec::new();
    };
    let fields = schema["fields"].as_array().cloned().unwrap_or_default();
    fields
        .iter()
        .filter_map(|f| {
            let name = f["name"].as_str()?.to_string();
            let t = match &f["type"] {
                Value::Array(branches) => branches.iter().find(|b| *b != "null")?.clone(),
                other => other.clone(),
            };
            let (base, logical) = match &t {
                Value::String(b) => (b.as_str(), None),
                Value::Object(o) => (
                    o.get("type")?.as_str()?,
                    o.get("logicalType").and_then(Value::as_str),
                ),
                _ => return None,
            };
            let dt = match (base, logical) {
                ("long", Some("time-micros")) => DataType::Time64(TimeUnit::Microsecond),
                ("int", Some("time-millis")) => DataType::Time32(TimeUnit::Millisecond),
                ("long", Some("timestamp-micros")) => {
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                }
                ("long", None) => DataType::Int64,
                ("int", None) => DataType::Int32,
                ("string", None) => DataType::Utf8,
                _ => DataType::Null,
            };
            Some((name, dt))
        })
        .collect()
}

/// The logical schema of a stored schema (meta columns dropped).
#[cfg(test)]
pub fn logical_schema(stored: &Schema) -> cdc_core::Result<Schema> {
    let data: Vec<FieldRef> = stored
        .fields()
        .iter()
        .filter(|f| !META_COLUMNS.contains(&f.name().as_str()))
        .cloned()
        .collect();
    cdc_core::storage::logical_schema(&Schema::new_with_metadata(data, stored.metadata().clone()))
}

/// The Arrow schema of a base file: the meta columns, then the stored data columns.
pub fn file_schema(stored: &Schema) -> Schema {
    let mut fields: Vec<FieldRef> = META_COLUMNS
        .iter()
        .map(|n| Arc::new(Field::new(*n, DataType::Utf8, true)))
        .collect();
    fields.extend(stored.fields().iter().cloned());
    Schema::new(fields)
}

/// A name Avro accepts (`[A-Za-z_][A-Za-z0-9_]*`) for record types.
fn avro_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Why a column has no Avro type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvroError {
    /// Column path (`a.b` inside structs).
    pub column: String,
    /// What is unsupported.
    pub message: String,
}

/// The Avro schema (JSON text) of the stored data columns, as Hudi keeps it in commit metadata
/// (without meta columns). Record types are named `<table>_record` in namespace
/// `hoodie.<table>`, nested records after their path.
pub fn avro_schema(table_name: &str, stored: &Schema) -> Result<String, AvroError> {
    let name = avro_name(table_name);
    let namespace = format!("hoodie.{name}");
    let record = avro_record(&format!("{name}_record"), &namespace, "", stored.fields())?;
    Ok(record.to_string())
}

/// The Avro schema of a base file, meta columns first (the footer's `parquet.avro.schema`).
pub fn avro_file_schema(table_name: &str, stored: &Schema) -> Result<String, AvroError> {
    avro_schema(table_name, &file_schema(stored))
}

fn avro_record(
    name: &str,
    namespace: &str,
    prefix: &str,
    fields: &Fields,
) -> Result<Value, AvroError> {
    let child_ns = format!("{namespace}.{name}");
    let fields = fields
        .iter()
        .map(|f| {
            let path = format!("{prefix}{}", f.name());
            if avro_name(f.name()) != *f.name() {
                return Err(AvroError {
                    column: path,
                    message: "is not a valid Avro field name ([A-Za-z_][A-Za-z0-9_]*), and Hudi \
                              readers parse the table schema as Avro; rename the column (for \
                              example with a Debezium column-rename transform)"
                        .into(),
                });
            }
            let t = avro_type(f, &path, &child_ns)?;
            let mut field = if f.is_nullable() {
                json!({"name": f.name(), "type": ["null", t], "default": null})
            } else {
                json!({"name": f.name(), "type": t})
            };
            // The column's comment is the Avro field's `doc`, which Hive and Glue sync show.
            if let Some(comment) = f.metadata().get(cdc_core::storage::META_COMMENT) {
                field["doc"] = json!(comment);
            }
            Ok(field)
        })
        .collect::<Result<Vec<Value>, AvroError>>()?;
    Ok(json!({"type": "record", "name": name, "namespace": namespace, "fields": fields}))
}

fn avro_type(field: &Field, path: &str, namespace: &str) -> Result<Value, AvroError> {
    let unsupported = || AvroError {
        column: path.to_string(),
        message: format!("type {} has no Avro form in Hudi", field.data_type()),
    };
    Ok(match field.data_type() {
        DataType::Boolean => json!("boolean"),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => json!("int"),
        DataType::Int64 => json!("long"),
        DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 => json!("string"),
        DataType::Binary => json!("bytes"),
        DataType::FixedSizeBinary(n) => json!({
            "type": "fixed", "name": avro_name(field.name()), "namespace": namespace, "size": n
        }),
        DataType::Date32 => json!({"type": "int", "logicalType": "date"}),
        DataType::Time64(TimeUnit::Microsecond) => {
            json!({"type": "long", "logicalType": "time-micros"})
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
            json!({"type": "long", "logicalType": "timestamp-micros"})
        }
        // FIXED_LEN_BYTE_ARRAY in the base files (see `files::parquet_schema`), as Hudi and
        // Spark write decimals.
        DataType::Decimal128(p, s) => json!({
            "type": "fixed", "name": avro_name(&format!("fixed_{}", path.replace('.', "_"))),
            "namespace": namespace, "size": crate::files::decimal_bytes(*p),
            "logicalType": "decimal", "precision": p, "scale": s
        }),
        DataType::List(item) => {
            let t = avro_type(item, &format!("{path}.element"), namespace)?;
            let items = if item.is_nullable() {
                json!(["null", t])
            } else {
                t
            };
            json!({"type": "array", "items": items})
        }
        DataType::Struct(children) => avro_record(
            &avro_name(field.name()),
            namespace,
            &format!("{path}."),
            children,
        )?,
        _ => return Err(unsupported()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ints_and_naive_timestamps_store_as_hudi_engines_read_them() {
        let logical = Schema::new(vec![
            Field::new("id", DataType::Int16, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]);
        let stored = stored_schema(&logical);
        assert_eq!(stored.field(0).data_type(), &DataType::Int32);
        // A naive timestamp holds its wall clock as if UTC, as Avro `timestamp-micros`.
        assert_eq!(
            stored.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let avro = avro_schema("orders", &stored).unwrap();
        assert!(
            avro.contains(r#""logicalType":"timestamp-micros""#),
            "{avro}"
        );
    }

    #[test]
    fn nested_types_get_unique_names() {
        let logical = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "addr",
                DataType::Struct(Fields::from(vec![
                    Field::new("city", DataType::Utf8, true),
                    Field::new(
                        "geo",
                        DataType::Struct(Fields::from(vec![Field::new(
                            "lat",
                            DataType::Float64,
                            true,
                        )])),
                        true,
                    ),
                ])),
                true,
            ),
            Field::new(
                "tags",
                DataType::Map(
                    Arc::new(Field::new(
                        "entries",
                        DataType::Struct(Fields::from(vec![
                            Field::new("key", DataType::Utf8, false),
                            Field::new("value", DataType::Utf8, true),
                        ])),
                        false,
                    )),
                    false,
                ),
                true,
            ),
            Field::new("amount", DataType::Decimal128(12, 2), true),
        ]);
        let stored = stored_schema(&logical);
        let avro: Value = serde_json::from_str(&avro_schema("my-table", &stored).unwrap()).unwrap();
        assert_eq!(avro["name"], "my_table_record");
        assert_eq!(avro["namespace"], "hoodie.my_table");
        let addr = &avro["fields"][1]["type"][1];
        assert_eq!(addr["namespace"], "hoodie.my_table.my_table_record");
        assert_eq!(
            addr["fields"][1]["type"][1]["namespace"],
            "hoodie.my_table.my_table_record.addr"
        );
        assert_eq!(avro["fields"][2]["type"][1]["type"], "array");
        assert_eq!(avro["fields"][3]["type"][1]["logicalType"], "decimal");
        let back = logical_schema(&file_schema(&stored)).unwrap();
        assert_eq!(back.fields().len(), 4);
    }

    #[test]
    fn bad_avro_names_are_refused() {
        let logical = Schema::new(vec![Field::new("first-name", DataType::Utf8, true)]);
        let err = avro_schema("t", &stored_schema(&logical)).unwrap_err();
        assert_eq!(err.column, "first-name");
        assert!(err.message.contains("Avro"), "{}", err.message);
    }

    #[test]
    fn zoned_timestamps_are_stored_in_utc() {
        let logical = Schema::new(vec![Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            true,
        )]);
        let stored = stored_schema(&logical);
        assert_eq!(
            stored.field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(logical_schema(&stored).unwrap(), logical);
    }
}
