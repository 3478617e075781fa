//! Comparing what an independent reader returned — values exactly as DuckDB, pyiceberg or
//! Python hudi typed them, nothing of this project's column metadata applied — with a
//! scenario's `expected/` state, after only generic conversions: ISO text ↔ timestamp, date and
//! time (a timestamp without zone equals its wall clock read as UTC), decimal text ↔ decimal or
//! number, base64 ↔ bytes, JSON text ↔ JSON value. Intervals, which Debezium sends as
//! microseconds (`MicroDuration`), are compared as Debezium's own approximation of the expected
//! ISO text (365.25-day years, 30.4375-day months). This is what Athena, Spark or Trino see.

use std::collections::BTreeMap;

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::{Map, Value};

use super::compare::iso_interval_micros;
use crate::decode::debezium::numeric::{parse_time, parse_timestamp};
use crate::model::TableId;
use crate::render::render_rows;

/// The loss a scenario's variant applies before a value reaches any table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantLoss {
    /// None.
    Exact,
    /// `time.precision.mode=connect`: times and timestamps in milliseconds (floored).
    ConnectTime,
    /// `decimal.handling.mode=double`: decimals as the nearest double.
    DecimalDouble,
}

impl VariantLoss {
    /// The loss of scenario `name`.
    pub fn of(name: &str) -> Self {
        if name.ends_with("-connect-time") {
            VariantLoss::ConnectTime
        } else if name.ends_with("-decimal-double") {
            VariantLoss::DecimalDouble
        } else {
            VariantLoss::Exact
        }
    }
}

/// Microseconds of ISO date, timestamp (with `Z` / offset or without zone, read as UTC) text.
fn instant_micros(s: &str) -> Option<i64> {
    if let Ok(v) = parse_timestamp(s, TimeUnit::Microsecond) {
        return Some(v);
    }
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

fn floor_ms(micros: i64) -> i64 {
    micros.div_euclid(1_000) * 1_000
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(a, b)| cell_matches(a, b, VariantLoss::Exact))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.get(k)
                        .is_some_and(|w| cell_matches(v, w, VariantLoss::Exact))
                })
        }
        _ => a == b,
    }
}

/// Whether a reader's rendered cell equals the expected cell after generic conversions.
fn cell_matches(ours: &Value, expected: &Value, loss: VariantLoss) -> bool {
    if ours.is_null() || expected.is_null() {
        return ours.is_null() && expected.is_null();
    }
    if ours == expected {
        return true;
    }
    match (ours, expected) {
        (Value::Number(o), Value::Number(e)) => {
            // A float4 read back is only defined to float4 precision.
            o.as_f64() == e.as_f64() || o.as_f64().map(|v| v as f32) == e.as_f64().map(|v| v as f32)
        }
        // Decimal text read as a number (decimal.handling.mode=double), or a decimal column.
        (Value::Number(o), Value::String(e)) => {
            if let (Some(o), Ok(e)) = (o.as_i64(), iso_interval(e)) {
                return o == e;
            }
            // Only where the source sent a double for the decimal.
            let e: Option<f64> = e.parse().ok();
            loss == VariantLoss::DecimalDouble && e.is_some() && o.as_f64() == e
        }
        (Value::String(o), Value::String(e)) => strings_match(o, e, loss),
        // JSON text read back as text.
        (
            Value::String(o),
            e @ (Value::Object(_) | Value::Array(_) | Value::Number(_) | Value::Bool(_)),
        ) => serde_json::from_str::<Value>(o).is_ok_and(|o| json_equal(&o, e)),
        (Value::Array(o), Value::Array(e)) => {
            o.len() == e.len() && o.iter().zip(e).all(|(o, e)| cell_matches(o, e, loss))
        }
        (Value::Object(o), Value::Object(e)) => {
            o.len() == e.len()
                && o.iter()
                    .all(|(k, v)| e.get(k).is_some_and(|w| cell_matches(v, w, loss)))
        }
        _ => false,
    }
}

fn iso_interval(s: &str) -> Result<i64, ()> {
    if !s.starts_with('P') {
        return Err(());
    }
    iso_interval_micros(s).ok_or(())
}

fn strings_match(o: &str, e: &str, loss: VariantLoss) -> bool {
    let lossy = |v: i64| match loss {
        VariantLoss::ConnectTime => floor_ms(v),
        _ => v,
    };
    if let (Some(o), Some(e)) = (instant_micros(o), instant_micros(e)) {
        return o == lossy(e);
    }
    if let (Ok(o), Ok(e)) = (
        parse_time(o, TimeUnit::Microsecond),
        parse_time(e, TimeUnit::Microsecond),
    ) {
        return o == lossy(e);
    }
    // Decimal text with another number of trailing zeros.
    let decimal = |s: &str| {
        s.contains('.')
            && s.trim_start_matches('-')
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
    };
    if decimal(o) && decimal(e) {
        let trim = |s: &str| s.trim_end_matches('0').trim_end_matches('.').to_string();
        return trim(o) == trim(e);
    }
    // JSON text of a JSON string, or of JSON text.
    match (
        serde_json::from_str::<Value>(o),
        serde_json::from_str::<Value>(e),
    ) {
        (Ok(Value::String(a)), _) => a == e,
        (Ok(a @ (Value::Object(_) | Value::Array(_))), Ok(b)) => json_equal(&a, &b),
        _ => false,
    }
}

/// The same values in Arrow's standard layouts (large and view strings, binaries and lists as
/// their plain forms): how a reader lays values out says nothing of what they are.
fn standard_layouts(rows: &RecordBatch) -> Result<RecordBatch, String> {
    fn standard(dt: &DataType) -> DataType {
        match dt {
            DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
            DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
            DataType::LargeList(item) | DataType::List(item) => DataType::List(Arc::new(
                item.as_ref()
                    .clone()
                    .with_data_type(standard(item.data_type())),
            )),
            DataType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|f| Arc::new(f.as_ref().clone().with_data_type(standard(f.data_type()))))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = rows
        .schema()
        .fields()
        .iter()
        .zip(rows.columns())
        .map(|(f, c)| {
            let to = standard(f.data_type());
            let col = arrow_cast::cast(c, &to).map_err(|e| format!("column {}: {e}", f.name()))?;
            Ok((f.as_ref().clone().with_data_type(to), col))
        })
        .collect::<Result<Vec<_>, String>>()?
        .into_iter()
        .unzip();
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )
    .map_err(|e| e.to_string())
}

/// Compares rows an independent reader returned with the expected rows: same keys, the
/// expected columns, equal cells after only generic conversions (see the module docs).
/// Returns every difference found (at most 20).
pub fn compare_raw_with_expected(
    table: &TableId,
    key_columns: &[String],
    rows: &RecordBatch,
    expected: &[Map<String, Value>],
    loss: VariantLoss,
) -> Result<(), String> {
    let ours = render_rows(&standard_layouts(rows)?).map_err(|e| e.to_string())?;
    let key_of = |row: &Map<String, Value>| -> String {
        key_columns
            .iter()
            .map(|k| row.get(k).cloned().unwrap_or(Value::Null).to_string())
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut problems = Vec::new();
    let ours_by_key: BTreeMap<String, &Map<String, Value>> =
        ours.iter().map(|r| (key_of(r), r)).collect();
    if ours_by_key.len() != ours.len() {
        problems.push(format!(
            "{table}: duplicate keys ({} rows, {} keys)",
            ours.len(),
            ours_by_key.len()
        ));
    }
    let expected_by_key: BTreeMap<String, &Map<String, Value>> =
        expected.iter().map(|r| (key_of(r), r)).collect();
    problems.extend(
        expected_by_key
            .keys()
            .filter(|k| !ours_by_key.contains_key(*k))
            .map(|k| format!("{table}: missing key {k}")),
    );
    problems.extend(
        ours_by_key
            .keys()
            .filter(|k| !expected_by_key.contains_key(*k))
            .map(|k| format!("{table}: unexpected key {k}")),
    );
    for (k, exp) in &expected_by_key {
        let Some(our) = ours_by_key.get(k) else {
            continue;
        };
        for (col, e) in exp.iter() {
            let Some(o) = our.get(col) else {
                problems.push(format!("{table}: the reader returned no column {col}"));
                continue;
            };
            if !cell_matches(o, e, loss) {
                let dt = rows
                    .schema()
                    .field_with_name(col)
                    .map(|f| f.data_type().to_string())
                    .unwrap_or_default();
                problems.push(format!(
                    "{table} key {k} column {col} (read as {dt}): read {o}, expected {e}"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.truncate(20);
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generic_conversions_only() {
        let exact = VariantLoss::Exact;
        // A naive timestamp read as UTC equals its wall clock.
        assert!(cell_matches(
            &json!("2001-09-09T01:46:40.500000Z"),
            &json!("2001-09-09T01:46:40.500000"),
            exact
        ));
        assert!(cell_matches(
            &json!("12:34:56.789000"),
            &json!("12:34:56.789000"),
            exact
        ));
        assert!(cell_matches(
            &json!("12:34:56.000000"),
            &json!("12:34:56"),
            exact
        ));
        assert!(
            !cell_matches(&json!(45296000000i64), &json!("12:34:56"), exact),
            "an integer is not a time"
        );
        assert!(cell_matches(&json!("{\"a\": 1}"), &json!({"a": 1}), exact));
        assert!(cell_matches(
            &json!(93784000000i64),
            &json!("P1DT2H3M4S"),
            exact
        ));
        assert!(cell_matches(
            &json!("2024-02-29"),
            &json!("2024-02-29"),
            exact
        ));
        assert!(!cell_matches(
            &json!("2024-02-28"),
            &json!("2024-02-29"),
            exact
        ));
        assert!(cell_matches(
            &json!(1.0e28),
            &json!("9999999999999999999999999999.9999999999"),
            VariantLoss::DecimalDouble
        ));
        assert!(cell_matches(
            &json!("1900-01-01T00:00:00.000000"),
            &json!("1900-01-01T00:00:00.000001"),
            VariantLoss::ConnectTime
        ));
        assert!(!cell_matches(
            &json!("1900-01-01T00:00:00.000000"),
            &json!("1900-01-01T00:00:00.000001"),
            exact
        ));
    }
}
