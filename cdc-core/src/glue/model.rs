//! The parts of the Glue API's table shapes the adapters write and read (AWS JSON field names),
//! and Hive column types of Arrow types, as Athena reads them.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

/// A column of a Glue table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Column {
    /// Column name (Glue lowercases it).
    pub name: String,
    /// Hive type, e.g. `bigint`, `decimal(10,2)`, `struct<a:int>`.
    #[serde(rename = "Type", default)]
    pub r#type: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Key-value pairs (Iceberg puts field ids here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// How a table's or partition's files are read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SerDeInfo {
    /// The SerDe class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialization_library: Option<String>,
    /// SerDe parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// Where a table's or partition's files are and how they are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StorageDescriptor {
    /// Data columns (partition keys excluded).
    #[serde(default)]
    pub columns: Vec<Column>,
    /// The table's (or partition's) root, e.g. `s3://bucket/lake/public/orders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Hadoop input format class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    /// Hadoop output format class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// Whether files are compressed (as Hive declares it; Parquet pages are compressed inside).
    #[serde(default)]
    pub compressed: bool,
    /// The SerDe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serde_info: Option<SerDeInfo>,
    /// Storage parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// What a table is registered as (`CreateTable` / `UpdateTable`'s `TableInput`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableInput {
    /// Table name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `EXTERNAL_TABLE` for every table here: dropping it leaves the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<String>,
    /// Table parameters (`table_type`, `metadata_location`, `last_commit_time_sync`, ...).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Files and columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<StorageDescriptor>,
    /// Partition columns.
    #[serde(default)]
    pub partition_keys: Vec<Column>,
}

impl TableInput {
    /// The table's location, if it has one.
    pub fn location(&self) -> Option<&str> {
        self.storage_descriptor.as_ref()?.location.as_deref()
    }

    /// Whether `self` and `other` register the same thing, ignoring what Glue changes on the
    /// way (name case, and parameters Glue or other tools add, such as statistics).
    pub fn registers_same(&self, other: &TableInput) -> bool {
        let ours_kept = self
            .parameters
            .iter()
            .all(|(k, v)| other.parameters.get(k) == Some(v));
        ours_kept
            && self.table_type == other.table_type
            && self.storage_descriptor == other.storage_descriptor
            && self.partition_keys == other.partition_keys
    }
}

/// A table as `GetTable` returns it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GlueTable {
    /// What is registered.
    #[serde(flatten)]
    pub input: TableInput,
    /// The version an `UpdateTable` must name to replace it (optimistic locking).
    #[serde(default)]
    pub version_id: Option<String>,
}

/// One partition of a table (`BatchCreatePartition`'s `PartitionInputList` entries).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartitionInput {
    /// Partition values, one per partition key, as text.
    pub values: Vec<String>,
    /// The partition's files.
    pub storage_descriptor: StorageDescriptor,
    /// Partition parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// The Hive type Athena reads a column of `data_type` as, or why there is none.
///
/// ```
/// use cdc_core::arrow_schema::{DataType, TimeUnit};
/// use cdc_core::glue::hive_type;
/// assert_eq!(hive_type(&DataType::Int64).unwrap(), "bigint");
/// assert_eq!(hive_type(&DataType::Decimal128(10, 2)).unwrap(), "decimal(10,2)");
/// assert_eq!(hive_type(&DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))).unwrap(), "timestamp");
/// ```
pub fn hive_type(data_type: &DataType) -> Result<String, String> {
    Ok(match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        // Hive has no time of day: engines show it as text (as Iceberg's Glue catalog does).
        DataType::Time32(_) | DataType::Time64(_) => "string".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _) => format!("array<{}>", hive_type(item.data_type())?),
        DataType::Struct(fields) => {
            let fields = fields
                .iter()
                .map(|f| Ok(format!("{}:{}", f.name(), hive_type(f.data_type())?)))
                .collect::<Result<Vec<_>, String>>()?;
            format!("struct<{}>", fields.join(","))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                hive_type(kv[0].data_type())?,
                hive_type(kv[1].data_type())?
            ),
            other => return Err(format!("a map whose entries are {other}")),
        },
        DataType::Dictionary(_, value) => hive_type(value)?,
        other => return Err(format!("no Hive type for {other}")),
    })
}

/// Glue columns of `schema`'s fields, except those `skip` names (partition keys), each with
/// the parameters `parameters` gives it.
pub fn columns_of(
    schema: &Schema,
    skip: &[&str],
    parameters: impl Fn(&Field) -> BTreeMap<String, String>,
) -> Result<Vec<Column>, (String, String)> {
    schema
        .fields()
        .iter()
        .filter(|f| !skip.contains(&f.name().as_str()))
        .map(|f| {
            Ok(Column {
                name: f.name().to_lowercase(),
                r#type: hive_type(f.data_type()).map_err(|e| (f.name().clone(), e))?,
                comment: None,
                parameters: parameters(f),
            })
        })
        .collect()
}

/// Glue partition keys for `schema`'s fields named `names`, in that order.
pub fn partition_keys_of(schema: &Schema, names: &[&str]) -> Result<Vec<Column>, (String, String)> {
    names
        .iter()
        .map(|name| {
            let field =
                (schema.field_with_name(name)).map_err(|e| (name.to_string(), e.to_string()))?;
            Ok(Column {
                name: name.to_lowercase(),
                r#type: hive_type(field.data_type()).map_err(|e| (name.to_string(), e))?,
                ..Column::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::Fields;

    use super::*;

    #[test]
    fn nested_types() {
        let item = Arc::new(Field::new("item", DataType::Int32, true));
        let fields = Fields::from(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::List(item), true),
        ]);
        assert_eq!(
            hive_type(&DataType::Struct(fields)).unwrap(),
            "struct<a:string,b:array<int>>"
        );
        assert!(hive_type(&DataType::Null).is_err());
    }

    #[test]
    fn table_shapes_serialize_as_the_glue_api_names_them() {
        let input = TableInput {
            name: "orders".into(),
            table_type: Some("EXTERNAL_TABLE".into()),
            storage_descriptor: Some(StorageDescriptor {
                columns: vec![Column {
                    name: "id".into(),
                    r#type: "bigint".into(),
                    ..Column::default()
                }],
                location: Some("s3://b/t".into()),
                ..StorageDescriptor::default()
            }),
            ..TableInput::default()
        };
        let json = serde_json::to_value(&input).unwrap();
        assert_eq!(json["StorageDescriptor"]["Columns"][0]["Type"], "bigint");
        assert_eq!(json["TableType"], "EXTERNAL_TABLE");
        let read: GlueTable = serde_json::from_value(serde_json::json!({
            "Name": "orders", "VersionId": "3", "DatabaseName": "public",
            "Parameters": {"a": "1", "added_by_glue": "x"},
            "StorageDescriptor": json["StorageDescriptor"].clone(),
            "TableType": "EXTERNAL_TABLE", "PartitionKeys": [],
        }))
        .unwrap();
        assert_eq!(read.version_id.as_deref(), Some("3"));
        let ours = TableInput {
            parameters: BTreeMap::from([("a".into(), "1".into())]),
            ..input
        };
        assert!(ours.registers_same(&read.input));
    }
}
