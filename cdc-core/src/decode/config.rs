//! What a decoder is told: its settings ([`DecoderConfig`]) and what it knows of a table
//! before the table's records arrive ([`TableHint`]).

use arrow_schema::SchemaRef;

/// What to do with a row field that the table's schema does not have (only possible for
/// schemaless records, whose types come from a given schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownColumns {
    /// Fail with an error naming the column (default: nothing is dropped silently).
    #[default]
    Error,
    /// Ignore the field.
    Ignore,
}

/// Settings of the Debezium decoder (JSON, and Avro in Confluent's wire format).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Debezium's `unavailable.value.placeholder` (unchanged TOAST values).
    pub unavailable_value_placeholder: String,
    /// Fields of schemaless rows that the table schema lacks.
    pub unknown_columns: UnknownColumns,
    /// The Confluent Schema Registry that Avro records' schema ids refer to (base URL;
    /// credentials come from `CDC_LAKE_REGISTRY_USER_INFO` or `CDC_LAKE_REGISTRY_TOKEN`, never
    /// from here). Needs the `registry` feature.
    pub schema_registry: Option<String>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            unavailable_value_placeholder: "__debezium_unavailable_value".to_string(),
            unknown_columns: UnknownColumns::Error,
            schema_registry: None,
        }
    }
}

/// What the decoder knows of a table before its records arrive: its schema (needed for
/// schemaless records) and primary key.
#[derive(Debug, Clone, Default)]
pub struct TableHint {
    /// Arrow schema of the table's rows.
    pub schema: Option<SchemaRef>,
    /// Primary-key columns.
    pub key_columns: Option<Vec<String>>,
}
