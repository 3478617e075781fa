//! Logical Arrow schemas ↔ Iceberg schemas, with stable field ids.
//!
//! A logical schema is first mapped to what Iceberg can store ([`cdc_core::storage`] with
//! `StorageTypes::ICEBERG`: 8/16-bit integers widen to `int`, nanosecond times become text,
//! decimals over 38 digits their exact text), zoned timestamps are pinned to UTC, and every
//! field (nested ones too: struct children, list elements, map keys and values) gets an Iceberg
//! field id. Ids come from the table's previous schema by column path (`a`, `a.b`,
//! `a.element`, `a.key`, `a.value`), so an evolved schema keeps the ids of every column it
//! already had; new columns get ids above the table's `last-column-id`.
//!
//! The exact logical schema (with its field metadata: original Arrow types, column defaults)
//! rides in the table property [`ARROW_SCHEMA_PROPERTY`], so the sink reads back exactly the
//! types it was given; other engines see the plain Iceberg schema.
//!
//! ```
//! use arrow_schema::{DataType, Field, Schema};
//! use cdc_iceberg::schema::iceberg_schema;
//! let logical = Schema::new(vec![
//!     Field::new("id", DataType::Int16, false),
//!     Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
//! ]);
//! let first = iceberg_schema("public.t", &logical, None, 0, &["id".to_string()]).unwrap();
//! assert_eq!(first.field_id_by_name("id"), Some(1));
//! // Widening `id` and adding a column keeps the old ids.
//! let wider = Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
//!     Field::new("note", DataType::Utf8, true),
//! ]);
//! let next = iceberg_schema("public.t", &wider, Some(&first), first.highest_field_id(), &["id".to_string()]).unwrap();
//! assert_eq!(next.field_id_by_name("id"), Some(1));
//! assert_eq!(next.field_id_by_name("tags.element"), first.field_id_by_name("tags.element"));
//! assert_eq!(next.field_id_by_name("note"), Some(4));
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema};
use cdc_core::storage::{storage_schema, StorageTypes};
use iceberg::arrow::{arrow_schema_to_schema, arrow_type_to_type, schema_to_arrow_schema};
use iceberg::spec::Schema as IcebergSchema;
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

use crate::error::{IcebergSinkError, Result};

/// Table property holding the logical Arrow schema (JSON).
pub const ARROW_SCHEMA_PROPERTY: &str = "cdc-lake.arrow-schema";
/// Table property holding the primary-key columns (JSON list).
pub const KEY_COLUMNS_PROPERTY: &str = "cdc-lake.key-columns";

/// The Arrow schema the data files hold for `logical` (storage types, zoned timestamps in UTC),
/// without field ids.
pub fn stored_arrow_schema(logical: &Schema) -> Schema {
    let stored = storage_schema(logical, &StorageTypes::ICEBERG);
    Schema::new_with_metadata(
        stored
            .fields()
            .iter()
            .map(|f| Arc::new(pin_utc(f)))
            .collect::<Vec<_>>(),
        stored.metadata().clone(),
    )
}

fn pin_utc(field: &Field) -> Field {
    let data_type = match field.data_type() {
        DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, Some("+00:00".into())),
        DataType::List(item) => DataType::List(Arc::new(pin_utc(item))),
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|c| Arc::new(pin_utc(c)))
                .collect::<Fields>(),
        ),
        DataType::Map(entries, sorted) => DataType::Map(Arc::new(pin_utc(entries)), *sorted),
        other => other.clone(),
    };
    field.clone().with_data_type(data_type)
}

/// Hands out field ids: the previous schema's id of a path, else the next free one.
struct Ids<'a> {
    previous: Option<&'a IcebergSchema>,
    next: i32,
}

impl Ids<'_> {
    fn id(&mut self, path: &str) -> i32 {
        if let Some(id) = self.previous.and_then(|p| p.field_id_by_name(path)) {
            return id;
        }
        self.next += 1;
        self.next
    }
}

fn with_id(field: &Field, id: i32, data_type: DataType, nullable: bool) -> Field {
    let mut metadata = HashMap::from([(PARQUET_FIELD_ID_META_KEY.to_string(), id.to_string())]);
    // The column's comment becomes the Iceberg field's `doc`, which engines show.
    if let Some(comment) = field.metadata().get(cdc_core::storage::META_COMMENT) {
        metadata.insert("doc".to_string(), comment.clone());
    }
    Field::new(field.name(), data_type, nullable).with_metadata(metadata)
}

/// `field` with ids on itself and everything nested. Only map keys and top-level key columns
/// are required: every other Iceberg field is optional, so an unchanged cell resolved to null or
/// a later nullable source column never breaks a writer or a reader.
fn annotate(field: &Field, path: &str, ids: &mut Ids, required: bool) -> Field {
    let id = ids.id(path);
    let data_type = annotate_type(field.data_type(), path, ids);
    with_id(field, id, data_type, !required)
}

fn annotate_type(data_type: &DataType, path: &str, ids: &mut Ids) -> DataType {
    match data_type {
        DataType::List(item) => DataType::List(Arc::new(annotate(
            item,
            &format!("{path}.element"),
            ids,
            false,
        ))),
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|c| Arc::new(annotate(c, &format!("{path}.{}", c.name()), ids, false)))
                .collect::<Fields>(),
        ),
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return data_type.clone();
            };
            if kv.len() != 2 {
                return data_type.clone();
            }
            let key = annotate(&kv[0], &format!("{path}.key"), ids, true);
            let value = annotate(&kv[1], &format!("{path}.value"), ids, false);
            let entries = Field::new(
                entries.name(),
                DataType::Struct(Fields::from(vec![key, value])),
                false,
            );
            DataType::Map(Arc::new(entries), *sorted)
        }
        other => other.clone(),
    }
}

/// The Iceberg schema storing `logical`: ids of `previous` kept by path, new ids above
/// `last_column_id`, key columns required and the schema's identifier fields when they are
/// non-nullable primitives.
pub fn iceberg_schema(
    table: &str,
    logical: &Schema,
    previous: Option<&IcebergSchema>,
    last_column_id: i32,
    key_columns: &[String],
) -> Result<IcebergSchema> {
    let stored = stored_arrow_schema(logical);
    let mut ids = Ids {
        previous,
        next: last_column_id.max(previous.map_or(0, |p| p.highest_field_id())),
    };
    let fields: Vec<FieldRef> = stored
        .fields()
        .iter()
        .map(|f| {
            let required = key_columns.contains(f.name()) && !f.is_nullable();
            Arc::new(annotate(f, f.name(), &mut ids, required))
        })
        .collect();
    let annotated = Schema::new(fields);
    let schema = arrow_schema_to_schema(&annotated).map_err(|e| {
        // Name the column Iceberg cannot type.
        let column = stored
            .fields()
            .iter()
            .find(|f| arrow_type_to_type(f.data_type()).is_err())
            .map(|f| f.name().clone())
            .unwrap_or_default();
        IcebergSinkError::Schema {
            table: table.to_string(),
            column,
            message: format!("no Iceberg type for it: {e}"),
        }
    })?;
    let identifier: Option<Vec<i32>> = key_columns
        .iter()
        .map(|k| {
            let f = schema.field_by_name(k)?;
            (f.required && f.field_type.is_primitive()).then_some(f.id)
        })
        .collect();
    let builder = schema.into_builder();
    let builder = match identifier {
        Some(ids) if !ids.is_empty() => builder.with_identifier_field_ids(ids),
        _ => builder,
    };
    builder.build().map_err(|e| IcebergSinkError::Schema {
        table: table.to_string(),
        column: key_columns.join(", "),
        message: format!("cannot build the Iceberg schema: {e}"),
    })
}

/// The Arrow schema (with field ids) that data files of `schema` are written with.
pub fn file_arrow_schema(table: &str, schema: &IcebergSchema) -> Result<Arc<Schema>> {
    schema_to_arrow_schema(schema)
        .map(Arc::new)
        .map_err(crate::error::iceberg_err(
            &table,
            "converting the schema to Arrow",
        ))
}

/// The logical schema stored in the table properties.
pub fn logical_from_properties(
    table: &str,
    properties: &HashMap<String, String>,
) -> Result<(Arc<Schema>, Vec<String>)> {
    let get = |key: &str| {
        properties.get(key).ok_or_else(|| IcebergSinkError::Layout {
            table: table.to_string(),
            message: format!("table property `{key}` is missing: not a table cdc-lake wrote"),
        })
    };
    let bad = |key: &str, e: serde_json::Error| IcebergSinkError::Layout {
        table: table.to_string(),
        message: format!("table property `{key}` is not valid: {e}"),
    };
    let schema: Schema = serde_json::from_str(get(ARROW_SCHEMA_PROPERTY)?)
        .map_err(|e| bad(ARROW_SCHEMA_PROPERTY, e))?;
    let keys: Vec<String> = serde_json::from_str(get(KEY_COLUMNS_PROPERTY)?)
        .map_err(|e| bad(KEY_COLUMNS_PROPERTY, e))?;
    Ok((Arc::new(schema), keys))
}

/// The table properties recording `logical` and `key_columns`.
pub fn schema_properties(logical: &Schema, key_columns: &[String]) -> HashMap<String, String> {
    HashMap::from([
        (
            ARROW_SCHEMA_PROPERTY.to_string(),
            serde_json::to_string(logical).expect("Arrow schemas serialise"),
        ),
        (
            KEY_COLUMNS_PROPERTY.to_string(),
            serde_json::to_string(key_columns).expect("strings serialise"),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::TimeUnit;

    #[test]
    fn nested_fields_get_ids_and_keep_them() {
        let logical = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new(
                "s",
                DataType::Struct(Fields::from(vec![Field::new("a", DataType::Utf8, true)])),
                true,
            ),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]);
        let keys = vec!["id".to_string()];
        let first = iceberg_schema("t", &logical, None, 0, &keys).unwrap();
        assert_eq!(first.identifier_field_ids().collect::<Vec<_>>(), vec![1]);
        let a = first.field_id_by_name("s.a").unwrap();
        let mut fields: Vec<FieldRef> = logical.fields().iter().cloned().collect();
        fields.insert(1, Arc::new(Field::new("new", DataType::Float64, true)));
        let next = iceberg_schema("t", &Schema::new(fields), Some(&first), 4, &keys).unwrap();
        assert_eq!(next.field_id_by_name("s.a"), Some(a));
        assert_eq!(next.field_id_by_name("new"), Some(5));
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let logical = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("f", DataType::Float16, true),
        ]);
        let e = iceberg_schema("t", &logical, None, 0, &["id".into()]).unwrap_err();
        assert!(
            matches!(&e, IcebergSinkError::Schema { column, .. } if column == "f"),
            "{e}"
        );
    }

    #[test]
    fn properties_round_trip() {
        let logical = Schema::new(vec![Field::new(
            "t",
            DataType::Time64(TimeUnit::Nanosecond),
            true,
        )]);
        let props = schema_properties(&logical, &["t".into()]);
        let (back, keys) = logical_from_properties("t", &props).unwrap();
        assert_eq!(back.as_ref(), &logical);
        assert_eq!(keys, vec!["t".to_string()]);
    }
}
