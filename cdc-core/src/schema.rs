//! Schema evolution shared by every sink: merging a table's schema with an incoming one, casting
//! batches to the merged schema, and column defaults for new columns.
//!
//! Allowed changes: new columns (appended, nullable), and widening a column's type:
//! `int8 → int16 → int32 → int64`, `float32 → float64`, decimal precision growth at the same
//! scale, new fields inside structs, and the same rules for list items. Columns that vanish from
//! the source stay in the table (filled with nulls from then on). Anything else, such as
//! `string → int32`, is an [`Error::IncompatibleSchema`] naming the column.

use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use serde::de::DeserializeSeed;

use crate::decode::debezium::columns::{CellSeed, ColumnBuilder, Placeholder};
use crate::decode::debezium::types::{decimal_type, META_DEFAULT};
use crate::error::{Error, Result};
use crate::model::{TableId, UnchangedMask};

/// The schema that holds both `current` and `incoming`: `current`'s columns in order (types
/// widened where `incoming` is wider), then `incoming`'s new columns.
pub fn merge_schemas(table: &TableId, current: &Schema, incoming: &Schema) -> Result<Schema> {
    let fields = merge_fields(table, "", current.fields(), incoming.fields())?;
    let mut metadata = current.metadata().clone();
    metadata.extend(incoming.metadata().clone());
    Ok(Schema::new_with_metadata(fields, metadata))
}

fn merge_fields(
    table: &TableId,
    prefix: &str,
    current: &Fields,
    incoming: &Fields,
) -> Result<Fields> {
    let mut out: Vec<FieldRef> = Vec::with_capacity(current.len() + incoming.len());
    for cur in current {
        match incoming.find(cur.name()) {
            Some((_, inc)) => out.push(Arc::new(merge_field(table, prefix, cur, inc)?)),
            None => out.push(cur.clone()),
        }
    }
    for inc in incoming {
        if current.find(inc.name()).is_none() {
            out.push(Arc::new(inc.as_ref().clone().with_nullable(true)));
        }
    }
    Ok(Fields::from(out))
}

fn merge_field(table: &TableId, prefix: &str, cur: &Field, inc: &Field) -> Result<Field> {
    let path = format!("{prefix}{}", cur.name());
    let data_type = merge_type(table, &path, cur.data_type(), inc.data_type())?;
    let mut metadata = cur.metadata().clone();
    metadata.extend(inc.metadata().clone());
    Ok(Field::new(
        cur.name(),
        data_type,
        cur.is_nullable() || inc.is_nullable(),
    )
    .with_metadata(metadata))
}

/// The wider of two types, or an error if neither holds the other.
pub fn merge_type(
    table: &TableId,
    column: &str,
    cur: &DataType,
    inc: &DataType,
) -> Result<DataType> {
    use DataType::*;
    let incompatible = || Error::IncompatibleSchema {
        table: table.to_string(),
        column: column.to_string(),
        message: format!("cannot change type {cur} to {inc}"),
    };
    if cur == inc {
        return Ok(cur.clone());
    }
    let int_rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    Ok(match (cur, inc) {
        (a, b) if int_rank(a).is_some() && int_rank(b).is_some() => {
            if int_rank(a) >= int_rank(b) {
                a.clone()
            } else {
                b.clone()
            }
        }
        (Float32 | Float64, Float32 | Float64) => Float64,
        (Decimal128(p1, s1) | Decimal256(p1, s1), Decimal128(p2, s2) | Decimal256(p2, s2))
            if s1 == s2 =>
        {
            decimal_type((*p1).max(*p2), *s1).map_err(|message| Error::IncompatibleSchema {
                table: table.to_string(),
                column: column.to_string(),
                message,
            })?
        }
        (Decimal128(_, s1) | Decimal256(_, s1), Decimal128(_, s2) | Decimal256(_, s2)) => {
            return Err(Error::IncompatibleSchema {
                table: table.to_string(),
                column: column.to_string(),
                message: format!(
                    "decimal scale changed from {s1} to {s2}; only precision may grow (use \
                     decimal.handling.mode=string for columns whose scale changes)"
                ),
            })
        }
        (List(a), List(b)) => {
            let item = merge_field(table, &format!("{column}."), a, b)?;
            List(Arc::new(item))
        }
        (Struct(a), Struct(b)) => Struct(merge_fields(table, &format!("{column}."), a, b)?),
        _ => return Err(incompatible()),
    })
}

/// `batch` cast to `schema`: columns widened, columns it lacks added as nulls and marked
/// unchanged in the returned mask (so they keep the table's value, or the column default).
pub fn conform_batch(
    table: &TableId,
    batch: &RecordBatch,
    unchanged: &UnchangedMask,
    schema: &SchemaRef,
) -> Result<(RecordBatch, UnchangedMask)> {
    conform_batch_dropping(table, batch, unchanged, schema, &|_| false)
}

/// [`conform_batch`], except that a column it lacks for which `dropped` is true — one the
/// source dropped before these rows were written — is null in every row, not unchanged: rows
/// written after a drop do not keep the column's old value.
pub fn conform_batch_dropping(
    table: &TableId,
    batch: &RecordBatch,
    unchanged: &UnchangedMask,
    schema: &SchemaRef,
    dropped: &dyn Fn(&str) -> bool,
) -> Result<(RecordBatch, UnchangedMask)> {
    let rows = batch.num_rows();
    let mut columns = Vec::with_capacity(schema.fields().len());
    let mut masks = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        match batch.schema().index_of(field.name()) {
            Ok(i) => {
                columns.push(cast_column(table, field, batch.column(i))?);
                masks.push(unchanged.column(i).cloned());
            }
            Err(_) if dropped(field.name()) => {
                columns.push(new_null_array(field.data_type(), rows));
                masks.push(None);
            }
            Err(_) => {
                columns.push(new_null_array(field.data_type(), rows));
                masks.push(Some(BooleanArray::from(vec![true; rows])));
            }
        }
    }
    let batch = RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| Error::arrow(format!("conforming a batch of {table} to its schema"), e))?;
    Ok((batch, UnchangedMask::new(masks)))
}

/// `array` cast to `field`'s type, if it differs.
pub fn cast_column(table: &TableId, field: &Field, array: &ArrayRef) -> Result<ArrayRef> {
    if array.data_type() == field.data_type() {
        return Ok(array.clone());
    }
    arrow_cast::cast(array, field.data_type()).map_err(|e| Error::IncompatibleSchema {
        table: table.to_string(),
        column: field.name().clone(),
        message: format!(
            "cannot cast {} to {}: {e}",
            array.data_type(),
            field.data_type()
        ),
    })
}

/// `batch` in the wider `schema`: types cast, columns it lacks filled with their default (what
/// existing rows show after a column is added).
pub fn evolve_batch(
    table: &TableId,
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    if &batch.schema() == schema {
        return Ok(batch.clone());
    }
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(col) => cast_column(table, f, col),
            None => default_column(table, f, n),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )
    .map_err(|e| Error::arrow(format!("evolving rows of {table}"), e))
}

/// Whether rows stored under `current` must be rewritten to read correctly under `merged`: a
/// type was widened, or a column with a non-null default was added (files that lack a column
/// read as null, which is only right when the default is null).
pub fn evolution_rewrites_rows(current: &Schema, merged: &Schema) -> bool {
    merged
        .fields()
        .iter()
        .any(|f| match current.field_with_name(f.name()) {
            Ok(c) => c.data_type() != f.data_type(),
            Err(_) => f.metadata().contains_key(META_DEFAULT),
        })
}

/// The column's default (from the source's schema, field metadata `cdc.default`) repeated `len`
/// times, or nulls when it has none. This is what existing rows show for a newly added column.
pub fn default_column(table: &TableId, field: &FieldRef, len: usize) -> Result<ArrayRef> {
    let Some(default) = field.metadata().get(META_DEFAULT) else {
        return Ok(new_null_array(field.data_type(), len));
    };
    let bad = |message: String| Error::IncompatibleSchema {
        table: table.to_string(),
        column: field.name().clone(),
        message: format!("bad column default `{default}`: {message}"),
    };
    let mut builder = ColumnBuilder::new(field.clone()).map_err(bad)?;
    let placeholder = Placeholder::new("");
    let mut de = serde_json::Deserializer::from_str(default);
    CellSeed {
        column: &mut builder,
        placeholder: &placeholder,
    }
    .deserialize(&mut de)
    .map_err(|e| bad(e.to_string()))?;
    let one = builder.finish().map_err(bad)?;
    let indices = arrow_array::UInt32Array::from(vec![0u32; len]);
    arrow_select::take::take(&one, &indices, None)
        .map_err(|e| Error::arrow("repeating a default", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn widen_and_add() {
        let t = TableId::new("s", "t");
        let cur = Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
        ]);
        let inc = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(40, 2), true),
            Field::new("new", DataType::Utf8, false),
        ]);
        let m = merge_schemas(&t, &cur, &inc).unwrap();
        assert_eq!(m.field(0).data_type(), &DataType::Int64);
        assert_eq!(m.field(1).data_type(), &DataType::Decimal256(40, 2));
        assert!(m.field(2).is_nullable());
        // Narrower incoming keeps the wider current type.
        assert_eq!(
            merge_schemas(&t, &m, &cur).unwrap().field(0).data_type(),
            &DataType::Int64
        );
    }

    #[test]
    fn incompatible_names_the_column() {
        let t = TableId::new("s", "t");
        let cur = Schema::new(vec![Field::new("code", DataType::Utf8, true)]);
        let inc = Schema::new(vec![Field::new("code", DataType::Int32, true)]);
        let err = merge_schemas(&t, &cur, &inc).unwrap_err().to_string();
        assert!(err.contains("`code`") && err.contains("s.t"), "{err}");
    }

    #[test]
    fn defaults_fill_new_columns() {
        let t = TableId::new("s", "t");
        let f = Arc::new(
            Field::new("status", DataType::Utf8, true).with_metadata(HashMap::from([(
                META_DEFAULT.to_string(),
                "\"active\"".to_string(),
            )])),
        );
        let a = default_column(&t, &f, 3).unwrap();
        let a = a
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![Some("active"); 3]);
    }
}
