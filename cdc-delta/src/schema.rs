//! Logical Arrow schemas ↔ Delta schemas.
//!
//! Columns Delta cannot type (times, durations, nanosecond timestamps, decimals over 38 digits)
//! are stored through [`cdc_core::storage`] with `StorageTypes::DELTA`; the original Arrow type
//! rides in the Delta field metadata (`cdc.arrow.type`), which delta-rs keeps when writing the
//! schema but not when converting it back, so [`logical_schema`] reattaches it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema};
use cdc_core::storage::{logical_schema as restore_logical, storage_schema, StorageTypes};
use deltalake::kernel::engine::arrow_conversion::{TryFromArrow, TryIntoArrow};
use deltalake::kernel::{DataType as DeltaType, MetadataValue, StructField, StructType};

/// Delta schema that stores `logical`.
pub fn delta_schema(logical: &Schema) -> Result<StructType, arrow_schema::ArrowError> {
    StructType::try_from_arrow(&storage_schema(logical, &StorageTypes::DELTA))
}

/// The storage Arrow schema of `logical` (what the data files hold).
pub fn stored_arrow_schema(logical: &Schema) -> Schema {
    storage_schema(logical, &StorageTypes::DELTA)
}

fn metadata_strings(field: &StructField) -> HashMap<String, String> {
    field
        .metadata()
        .iter()
        .filter_map(|(k, v)| match v {
            MetadataValue::String(s) => Some((k.clone(), s.clone())),
            MetadataValue::Number(n) => Some((k.clone(), n.to_string())),
            MetadataValue::Boolean(b) => Some((k.clone(), b.to_string())),
            MetadataValue::Other(_) => None,
        })
        .filter(|(k, _)| k.starts_with("cdc.") || k == "ARROW:extension:name")
        .collect()
}

fn with_kernel_metadata(arrow: &Field, kernel: &StructField) -> Field {
    let data_type = match (arrow.data_type(), kernel.data_type()) {
        (DataType::Struct(children), DeltaType::Struct(kernel_struct)) => DataType::Struct(
            children
                .iter()
                .map(|c| match kernel_struct.field(c.name()) {
                    Some(k) => Arc::new(with_kernel_metadata(c, k)),
                    None => c.clone(),
                })
                .collect::<Fields>(),
        ),
        (other, _) => other.clone(),
    };
    let mut meta = arrow.metadata().clone();
    meta.extend(metadata_strings(kernel));
    arrow.clone().with_data_type(data_type).with_metadata(meta)
}

/// The stored Arrow schema of a Delta schema, with cdc-lake's field metadata.
pub fn stored_from_delta(delta: &StructType) -> Result<Schema, arrow_schema::ArrowError> {
    let arrow: Schema = delta.try_into_arrow()?;
    let fields: Vec<FieldRef> = arrow
        .fields()
        .iter()
        .map(|f| match delta.field(f.name()) {
            Some(k) => Arc::new(with_kernel_metadata(f, k)),
            None => f.clone(),
        })
        .collect();
    Ok(Schema::new(fields))
}

/// The logical Arrow schema of a Delta table.
pub fn logical_schema(delta: &StructType) -> cdc_core::Result<Schema> {
    let stored = stored_from_delta(delta)
        .map_err(|e| cdc_core::Error::arrow("reading the Delta schema", e))?;
    restore_logical(&stored)
}
