//! Canonical JSON rendering of table rows, the form the fixtures' `expected/` files use and the
//! `jsonl` output format writes: decimals as exact strings with their scale, timestamps as
//! `YYYY-MM-DDTHH:MM:SS.ffffff` (`Z` when zoned; nine digits for nanosecond columns), times as
//! `HH:MM:SS[.ffffff]`, bytes as base64,
//! JSON columns as the parsed JSON value, durations as ISO-8601 seconds (`PT93784S`).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, TimeUnit};
use base64::Engine;
use chrono::DateTime;
use serde_json::{Map, Number, Value};

use crate::decode::debezium::types::{JSON_NAME, META_CONNECT_NAME};
use crate::error::{Error, Result};

/// Every row of `batch` as a JSON object, columns in schema order.
pub fn render_rows(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>> {
    let schema = batch.schema();
    let mut rows = vec![Map::new(); batch.num_rows()];
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        for (i, row) in rows.iter_mut().enumerate() {
            row.insert(
                field.name().clone(),
                render_value(field, column.as_ref(), i)?,
            );
        }
    }
    Ok(rows)
}

fn number(f: f64) -> Value {
    Number::from_f64(f).map(Value::Number).unwrap_or_else(|| {
        Value::String(if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        })
    })
}

/// Fraction digits: six (µs, the fixtures' form) unless the column holds nanoseconds.
fn subsecond(nanos: i64, unit: TimeUnit) -> String {
    match unit {
        TimeUnit::Nanosecond => format!("{nanos:09}"),
        _ => format!("{:06}", nanos / 1_000),
    }
}

fn to_nanos(v: i64, unit: TimeUnit) -> Option<i128> {
    let v = i128::from(v);
    Some(match unit {
        TimeUnit::Second => v * 1_000_000_000,
        TimeUnit::Millisecond => v * 1_000_000,
        TimeUnit::Microsecond => v * 1_000,
        TimeUnit::Nanosecond => v,
    })
}

fn render_timestamp(v: i64, unit: TimeUnit, zoned: bool) -> Value {
    let nanos = to_nanos(v, unit).expect("fits");
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    match DateTime::from_timestamp(secs, sub) {
        Some(dt) => Value::String(format!(
            "{}.{}{}",
            dt.format("%Y-%m-%dT%H:%M:%S"),
            subsecond(i64::from(sub), unit),
            if zoned { "Z" } else { "" }
        )),
        None => Value::from(v),
    }
}

fn render_time(v: i64, unit: TimeUnit) -> Value {
    let nanos = to_nanos(v, unit).expect("fits") as i64;
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    let hms = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    Value::String(if sub == 0 {
        hms
    } else {
        format!("{hms}.{}", subsecond(sub, unit))
    })
}

fn render_duration(v: i64, unit: TimeUnit) -> Value {
    let nanos = to_nanos(v, unit).expect("fits");
    let negative = nanos < 0;
    let abs = nanos.unsigned_abs();
    let secs = abs / 1_000_000_000;
    let sub = abs % 1_000_000_000;
    let sign = if negative { "-" } else { "" };
    Value::String(if sub == 0 {
        format!("PT{sign}{secs}S")
    } else {
        let frac = format!("{sub:09}");
        format!("PT{sign}{secs}.{}S", frac.trim_end_matches('0'))
    })
}

/// One cell as JSON.
pub fn render_value(field: &Field, array: &dyn Array, i: usize) -> Result<Value> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    let is_json = field.metadata().get(META_CONNECT_NAME).map(String::as_str) == Some(JSON_NAME);
    Ok(match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(i)),
        // Through the float's own shortest text, so 3.4028235e38f32 stays 3.4028235e38.
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(i);
            number(v.to_string().parse::<f64>().unwrap_or(f64::from(v)))
        }
        DataType::Float64 => number(array.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, _) => {
            Value::String(array.as_primitive::<Decimal128Type>().value_as_string(i))
        }
        DataType::Decimal256(_, _) => {
            Value::String(array.as_primitive::<Decimal256Type>().value_as_string(i))
        }
        DataType::Utf8 => {
            let s = array.as_string::<i32>().value(i);
            if is_json {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
            } else {
                Value::String(s.to_string())
            }
        }
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_string()),
        DataType::Binary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(array.as_binary::<i32>().value(i)),
        ),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(i);
            match DateTime::from_timestamp(i64::from(days) * 86_400, 0) {
                Some(d) => Value::String(d.format("%Y-%m-%d").to_string()),
                None => Value::from(days),
            }
        }
        DataType::Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(i),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(i),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(i),
            };
            render_timestamp(v, *unit, tz.is_some())
        }
        DataType::Time32(unit) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<Time32SecondType>().value(i),
                _ => array.as_primitive::<Time32MillisecondType>().value(i),
            };
            render_time(i64::from(v), *unit)
        }
        DataType::Time64(unit) => {
            let v = match unit {
                TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().value(i),
                _ => array.as_primitive::<Time64MicrosecondType>().value(i),
            };
            render_time(v, *unit)
        }
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(i),
                TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(i),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(i),
                TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(i),
            };
            render_duration(v, *unit)
        }
        DataType::List(item) => {
            let list = array.as_list::<i32>().value(i);
            Value::Array(
                (0..list.len())
                    .map(|j| render_value(item, list.as_ref(), j))
                    .collect::<Result<_>>()?,
            )
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut obj = Map::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                obj.insert(f.name().clone(), render_value(f, col.as_ref(), i)?);
            }
            Value::Object(obj)
        }
        DataType::Map(entries, _) => {
            let m = array.as_map();
            let kv = m.value(i);
            let DataType::Struct(kv_fields) = entries.data_type() else {
                unreachable!("map entries are structs")
            };
            let mut obj = Map::new();
            for j in 0..kv.len() {
                let k = render_value(&kv_fields[0], kv.column(0).as_ref(), j)?;
                let v = render_value(&kv_fields[1], kv.column(1).as_ref(), j)?;
                let key = match k {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                obj.insert(key, v);
            }
            Value::Object(obj)
        }
        other => {
            return Err(Error::UnsupportedSchema {
                table: String::new(),
                column: field.name().clone(),
                message: format!("cannot render {other} as JSON"),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_rendering() {
        assert_eq!(
            render_timestamp(-1, TimeUnit::Microsecond, true),
            Value::String("1969-12-31T23:59:59.999999Z".into())
        );
        assert_eq!(
            render_time(45_296_789, TimeUnit::Millisecond),
            Value::String("12:34:56.789000".into())
        );
        assert_eq!(
            render_time(0, TimeUnit::Microsecond),
            Value::String("00:00:00".into())
        );
        assert_eq!(
            render_duration(-1_500_000, TimeUnit::Microsecond),
            Value::String("PT-1.5S".into())
        );
    }
}
