//! Arrow types a table format can store, and exact casts to and from them.
//!
//! The decoder produces the truest Arrow type of each column (`Time64`, `Duration`,
//! `Timestamp(ns)`, `Decimal256`, ...). Formats store fewer types, so an adapter asks for the
//! *storage schema* under its [`StorageTypes`]: a type the format lacks is stored without loss as
//! the nearest type its engines read as the same thing (fixed-width text for a time of day, the
//! exact text of a wide decimal, a wider integer, an `Int64` in the source's own unit with the
//! unit in the column comment), and the field metadata `cdc.arrow.type` keeps the original type
//! so that [`from_storage`] restores it on read.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_schema::{DataType, Field, Schema, TimeUnit};
//! use cdc_core::storage::{storage_schema, StorageTypes};
//! let logical = Schema::new(vec![Field::new("t", DataType::Time64(TimeUnit::Microsecond), true)]);
//! let stored = storage_schema(&logical, &StorageTypes::DELTA);
//! assert_eq!(stored.field(0).data_type(), &DataType::Utf8);
//! assert_eq!(stored.field(0).metadata()["cdc.arrow.type"], "Time64(µs)");
//! assert_eq!(stored.field(0).metadata()["comment"], "time of day, HH:MM:SS.ffffff");
//! ```

use std::str::FromStr;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};

#[cfg(feature = "parquet")]
mod dictionary;
#[cfg(feature = "parquet")]
mod parquet_read;
pub mod time_text;

#[cfg(feature = "parquet")]
pub use dictionary::without_needless_dictionaries;

#[cfg(feature = "parquet")]
pub use parquet_read::{parquet_projection, read_parquet, read_parquet_file, FETCH_WHOLE_AT_MOST};

/// Field metadata: the Arrow type a stored column had before it was mapped to a storage type.
pub const META_ARROW_TYPE: &str = "cdc.arrow.type";
/// Field metadata: the column comment engines show (Spark, Athena, Trino), set on columns whose
/// stored form needs a word: integers counting a unit, text holding a time of day.
pub const META_COMMENT: &str = "comment";

/// What a table format can store natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageTypes {
    /// `Int8` and `Int16` (else widened to `Int32`).
    pub small_ints: bool,
    /// A time-of-day type in microseconds (`Time64(µs)`, for every unit up to µs); else, and
    /// for nanosecond times, fixed-width text ([`time_text`]).
    pub time_micros: bool,
    /// Timestamps without a time zone; else they are stored as UTC timestamps holding the
    /// wall-clock value (as Debezium sends them), which engines read as timestamps.
    pub timestamp_without_zone: bool,
    /// Largest decimal precision (wider decimals are stored as their exact text).
    pub max_decimal_precision: u8,
    /// Map type (else a list of key/value structs).
    pub maps: bool,
}

impl StorageTypes {
    /// Delta Lake: no time or duration types (time of day as text), timestamps in µs
    /// (`timestamp_ntz` for the ones without zone), decimals up to 38 digits.
    pub const DELTA: StorageTypes = StorageTypes {
        small_ints: true,
        time_micros: false,
        timestamp_without_zone: true,
        max_decimal_precision: 38,
        maps: true,
    };

    /// Apache Iceberg v2: `time` in µs, no 8/16-bit integers, decimals up to 38 digits.
    pub const ICEBERG: StorageTypes = StorageTypes {
        small_ints: false,
        time_micros: true,
        timestamp_without_zone: true,
        max_decimal_precision: 38,
        maps: true,
    };
}

/// The storage type of one Arrow type, or `None` when it is stored as is.
fn storage_type(dt: &DataType, caps: &StorageTypes) -> DataType {
    use DataType::*;
    match dt {
        Int8 | Int16 if !caps.small_ints => Int32,
        UInt8 | UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Time32(_) | Time64(TimeUnit::Microsecond) if caps.time_micros => {
            Time64(TimeUnit::Microsecond)
        }
        Time32(_) | Time64(_) => Utf8,
        Duration(_) => Int64,
        // Second and millisecond precision widen exactly to microseconds.
        Timestamp(TimeUnit::Nanosecond, _) => Int64,
        Timestamp(_, None) if !caps.timestamp_without_zone => {
            Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        Timestamp(_, tz) => Timestamp(TimeUnit::Microsecond, tz.clone()),
        Decimal128(p, _) | Decimal256(p, _) if *p > caps.max_decimal_precision => Utf8,
        Decimal256(p, s) => Decimal128(*p, *s),
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView => Binary,
        List(item) | LargeList(item) => List(Arc::new(storage_field(item, caps))),
        Struct(fields) => Struct(storage_fields(fields, caps)),
        Map(entries, sorted) if caps.maps => Map(Arc::new(storage_field(entries, caps)), *sorted),
        Map(entries, _) => List(Arc::new(storage_field(entries, caps).with_name("entries"))),
        other => other.clone(),
    }
}

fn storage_field(field: &Field, caps: &StorageTypes) -> Field {
    let stored = storage_type(field.data_type(), caps);
    let mut f = field.clone().with_data_type(stored.clone());
    if &stored != field.data_type()
        && !matches!(field.data_type(), DataType::List(_) | DataType::Struct(_))
    {
        let mut meta = f.metadata().clone();
        meta.insert(META_ARROW_TYPE.to_string(), field.data_type().to_string());
        if let Some(comment) = storage_comment(field.data_type(), &stored) {
            meta.entry(META_COMMENT.to_string()).or_insert(comment);
        }
        f = f.with_metadata(meta);
    }
    f
}

/// What a column stored as `stored` holds, when its type alone does not say.
fn storage_comment(logical: &DataType, stored: &DataType) -> Option<String> {
    use DataType::*;
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "seconds",
        TimeUnit::Millisecond => "milliseconds",
        TimeUnit::Microsecond => "microseconds",
        TimeUnit::Nanosecond => "nanoseconds",
    };
    Some(match (logical, stored) {
        (Time32(_) | Time64(_), Utf8) => match logical {
            Time64(TimeUnit::Nanosecond) => "time of day, HH:MM:SS.fffffffff".to_string(),
            _ => "time of day, HH:MM:SS.ffffff".to_string(),
        },
        (Duration(u), Int64) => format!("interval in {}", unit(u)),
        (Timestamp(u, None), Int64) => {
            format!("{} since 1970-01-01 00:00:00 (wall clock)", unit(u))
        }
        (Timestamp(u, Some(_)), Int64) => format!("{} since 1970-01-01 00:00:00 UTC", unit(u)),
        (Timestamp(_, None), Timestamp(_, Some(_))) => {
            "wall-clock time without zone, stored as if UTC".to_string()
        }
        _ => return None,
    })
}

fn storage_fields(fields: &Fields, caps: &StorageTypes) -> Fields {
    fields
        .iter()
        .map(|f| Arc::new(storage_field(f, caps)))
        .collect()
}

/// The schema a format with `caps` stores `logical` as.
pub fn storage_schema(logical: &Schema, caps: &StorageTypes) -> Schema {
    Schema::new_with_metadata(
        storage_fields(logical.fields(), caps),
        logical.metadata().clone(),
    )
}

/// Fails for a column that an earlier cdc-lake stored in a form this one no longer writes (a
/// time of day as an integer, a timestamp without zone as an integer): writing on would mix
/// two representations in one column. `actual` is how the table stores each column now.
/// The error names the column, both forms and how to migrate.
pub fn check_no_legacy_storage(
    table: &str,
    logical: &Schema,
    actual: &[(String, DataType)],
    caps: &StorageTypes,
) -> Result<()> {
    for (name, stored) in actual {
        let Ok(field) = logical.field_with_name(name) else {
            continue;
        };
        let wanted = storage_type(field.data_type(), caps);
        let legacy = match (field.data_type(), stored, &wanted) {
            (DataType::Time32(_) | DataType::Time64(_), DataType::Int32 | DataType::Int64, _) => {
                wanted != *stored
            }
            (DataType::Time32(_) | DataType::Time64(_), DataType::Time64(_), DataType::Utf8) => {
                true
            }
            (DataType::Timestamp(_, None), DataType::Int64, DataType::Timestamp(_, _)) => true,
            _ => false,
        };
        if legacy {
            return Err(Error::IncompatibleSchema {
                table: table.to_string(),
                column: name.clone(),
                message: format!(
                    "stored as {stored} by an earlier cdc-lake, which engines do not read as a \
                     {}; this version stores it as {wanted}. Migrate by re-creating the table: \
                     move it aside and sync again from the raw files (or the Kafka topic, if \
                     its retention still holds every change)",
                    field.data_type()
                ),
            });
        }
    }
    Ok(())
}

/// The logical schema of a stored schema: fields with `cdc.arrow.type` get their type back.
pub fn logical_schema(stored: &Schema) -> Result<Schema> {
    let fields = stored
        .fields()
        .iter()
        .map(|f| logical_field(f).map(Arc::new))
        .collect::<Result<Vec<FieldRef>>>()?;
    Ok(Schema::new_with_metadata(fields, stored.metadata().clone()))
}

fn logical_field(f: &Field) -> Result<Field> {
    let data_type = match f.metadata().get(META_ARROW_TYPE) {
        Some(t) => DataType::from_str(t).map_err(|e| Error::UnsupportedSchema {
            table: String::new(),
            column: f.name().clone(),
            message: format!("bad `{META_ARROW_TYPE}` `{t}`: {e}"),
        })?,
        None => match f.data_type() {
            DataType::List(item) => DataType::List(Arc::new(logical_field(item)?)),
            DataType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|c| logical_field(c).map(Arc::new))
                    .collect::<Result<Vec<_>>>()?
                    .into(),
            ),
            other => other.clone(),
        },
    };
    let mut meta = f.metadata().clone();
    if meta.remove(META_ARROW_TYPE).is_some() {
        // Said of the stored form only.
        meta.remove(META_COMMENT);
    }
    Ok(f.clone().with_data_type(data_type).with_metadata(meta))
}

fn cast_to(batch: &RecordBatch, schema: &SchemaRef, what: &str) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let col = batch
                .column_by_name(f.name())
                .ok_or_else(|| Error::UnsupportedSchema {
                    table: String::new(),
                    column: f.name().clone(),
                    message: format!("column missing when converting {what}"),
                })?;
            cast_array(col, f.data_type()).map_err(|e| Error::UnsupportedSchema {
                table: String::new(),
                column: f.name().clone(),
                message: format!(
                    "cannot convert {what} from {} to {}: {e}",
                    col.data_type(),
                    f.data_type()
                ),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| Error::arrow(format!("converting {what}"), e))
}

/// Casts one array, through `Int64` where Arrow has no direct cast between a temporal type and
/// its storage integer, and keeping the raw value (not a rescaled one) for times and durations.
fn cast_array(
    col: &ArrayRef,
    to: &DataType,
) -> std::result::Result<ArrayRef, arrow_schema::ArrowError> {
    use DataType::*;
    if col.data_type() == to {
        return Ok(col.clone());
    }
    match (col.data_type(), to) {
        (Timestamp(_, None), Timestamp(unit, Some(tz))) if matches!(&**tz, "UTC" | "+00:00") => {
            // A wall-clock time read as UTC is the same number; Arrow's cast would find that
            // out value by value through the time zone rules (and null the values beyond
            // chrono's range, year ±262 143, which are kept here).
            let naive = arrow_cast::cast(col, &Timestamp(*unit, None))?;
            let data = naive.into_data().into_builder().data_type(to.clone());
            Ok(arrow_array::make_array(data.build()?))
        }
        (Time32(_) | Time64(_), Utf8) => time_text::times_to_text(col),
        (Utf8, Time32(_) | Time64(_)) => time_text::text_to_times(col, to),
        (Time32(_), Int64) => arrow_cast::cast(&arrow_cast::cast(col, &Int32)?, &Int64),
        (Int64, Time32(_)) => arrow_cast::cast(&arrow_cast::cast(col, &Int32)?, to),
        (List(_), List(item)) | (Map(_, _), List(item)) => {
            let list = col.as_any().downcast_ref::<arrow_array::ListArray>();
            match list {
                Some(l) => Ok(Arc::new(arrow_array::ListArray::try_new(
                    item.clone(),
                    l.offsets().clone(),
                    cast_array(l.values(), item.data_type())?,
                    l.nulls().cloned(),
                )?)),
                None => arrow_cast::cast(col, to),
            }
        }
        (Struct(_), Struct(fields)) => {
            let s = col
                .as_any()
                .downcast_ref::<arrow_array::StructArray>()
                .expect("struct array");
            let children = fields
                .iter()
                .zip(s.columns())
                .map(|(f, c)| cast_array(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(Arc::new(arrow_array::StructArray::try_new(
                fields.clone(),
                children,
                s.nulls().cloned(),
            )?))
        }
        _ => arrow_cast::cast(col, to),
    }
}

/// `batch` (logical types) converted to the storage schema `stored`.
pub fn to_storage(batch: &RecordBatch, stored: &SchemaRef) -> Result<RecordBatch> {
    cast_to(batch, stored, "to the storage schema")
}

/// `batch` (storage types) converted back to the logical schema `logical`.
pub fn from_storage(batch: &RecordBatch, logical: &SchemaRef) -> Result<RecordBatch> {
    cast_to(batch, logical, "from the storage schema")
}

/// The columns of a stored batch (a projection of a file, possibly written under an older
/// schema) that `logical` has, in the batch's order, converted to their logical types. Columns
/// `logical` lacks are dropped; columns the batch lacks are left to the caller (defaults).
pub fn from_storage_columns(batch: &RecordBatch, logical: &SchemaRef) -> Result<RecordBatch> {
    let (indices, fields): (Vec<usize>, Vec<FieldRef>) = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, Arc::new(logical.field_with_name(f.name()).ok()?.clone()))))
        .unzip();
    let projected = batch
        .project(&indices)
        .map_err(|e| Error::arrow("projecting stored columns", e))?;
    from_storage(&projected, &Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_forms_of_times_and_naive_timestamps_are_refused() {
        let logical = Schema::new(vec![
            Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("n", DataType::Int64, true),
        ]);
        let hudi = StorageTypes {
            timestamp_without_zone: false,
            ..StorageTypes::DELTA
        };
        let now = [
            ("t".to_string(), DataType::Utf8),
            (
                "ts".to_string(),
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
            ("n".to_string(), DataType::Int64),
        ];
        assert!(check_no_legacy_storage("t", &logical, &now, &hudi).is_ok());
        for (column, old) in [
            ("t", DataType::Int64),
            ("t", DataType::Time64(TimeUnit::Microsecond)),
            ("ts", DataType::Int64),
        ] {
            let mut actual = now.to_vec();
            actual.retain(|(c, _)| c != column);
            actual.push((column.to_string(), old));
            let err = check_no_legacy_storage("t", &logical, &actual, &hudi).unwrap_err();
            assert!(
                err.to_string().contains(column) && err.to_string().contains("re-creating"),
                "{err}"
            );
        }
        // Iceberg keeps time of day as its own type: no legacy there.
        let iceberg_now = [("t".to_string(), DataType::Time64(TimeUnit::Microsecond))];
        assert!(
            check_no_legacy_storage("t", &logical, &iceberg_now, &StorageTypes::ICEBERG).is_ok()
        );
    }
    use arrow_array::{
        Decimal256Array, DurationMicrosecondArray, Time32MillisecondArray, TimestampNanosecondArray,
    };
    use arrow_buffer::i256;

    #[test]
    fn round_trip_is_exact() {
        let logical = Arc::new(Schema::new(vec![
            Field::new("t", DataType::Time32(TimeUnit::Millisecond), true),
            Field::new("d", DataType::Duration(TimeUnit::Microsecond), true),
            Field::new("ns", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("big", DataType::Decimal256(50, 2), true),
        ]));
        let batch = RecordBatch::try_new(
            logical.clone(),
            vec![
                Arc::new(Time32MillisecondArray::from(vec![Some(45_296_789), None])),
                Arc::new(DurationMicrosecondArray::from(vec![
                    Some(-31_557_600_000_000_000),
                    Some(1),
                ])),
                Arc::new(TimestampNanosecondArray::from(vec![
                    Some(1_700_000_000_123_456_789),
                    None,
                ])),
                Arc::new(
                    Decimal256Array::from(vec![Some(i256::from_i128(-1)), None])
                        .with_precision_and_scale(50, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        for caps in [StorageTypes::DELTA, StorageTypes::ICEBERG] {
            let stored = Arc::new(storage_schema(&logical, &caps));
            let s = to_storage(&batch, &stored).unwrap();
            assert_eq!(s.column(3).data_type(), &DataType::Utf8);
            let back = from_storage(&s, &Arc::new(logical_schema(&stored).unwrap())).unwrap();
            assert_eq!(back, batch);
        }
    }
}
