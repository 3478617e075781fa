//! Comparing a table with a scenario's `expected/` state, cell by cell, in the canonical
//! rendering, with the known loss of each lossy representation applied to the expected value.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema, TimeUnit};
use serde_json::{Map, Value};

use crate::decode::debezium::numeric::{parse_time, parse_timestamp};
use crate::model::TableId;
use crate::render::render_rows;

/// Debezium's `MicroDuration` of a Postgres ISO-8601 interval (`P1Y2M3DT4H5M6.789S`).
pub fn iso_interval_micros(s: &str) -> Option<i64> {
    let body = s.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let mut micros = 0f64;
    let mut parse = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '-' || c == '.' {
                num.push(c);
            } else {
                let (_, scale) = units.iter().find(|(u, _)| *u == c)?;
                micros += num.parse::<f64>().ok()? * scale;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    const DAY: f64 = 86_400e6;
    parse(
        date,
        &[
            ('Y', 365.25 * DAY),
            ('M', 30.4375 * DAY),
            ('W', 7.0 * DAY),
            ('D', DAY),
        ],
    )?;
    parse(time, &[('H', 3_600e6), ('M', 60e6), ('S', 1e6)])?;
    Some(micros.round() as i64)
}

/// Our rendering of a duration (`PT-1.5S`) in microseconds.
fn rendered_duration_micros(s: &str) -> Option<i64> {
    let secs: f64 = s.strip_prefix("PT")?.strip_suffix('S')?.parse().ok()?;
    Some((secs * 1e6).round() as i64)
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| numbers_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| numbers_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Whether our rendered cell (of type `dt`) equals the expected cell after applying the
/// representation's known loss to the expected value.
fn cell_matches(dt: &DataType, ours: &Value, expected: &Value) -> bool {
    if ours.is_null() || expected.is_null() {
        return ours.is_null() && expected.is_null();
    }
    match (dt, ours, expected) {
        // decimal.handling.mode=double: the double nearest the exact value.
        (DataType::Float64 | DataType::Float32, Value::Number(o), Value::String(e)) => {
            e.parse::<f64>().ok() == o.as_f64()
        }
        // A float4 is only defined to float4 precision.
        (DataType::Float32, Value::Number(o), Value::Number(e)) => {
            o.as_f64().map(|v| v as f32) == e.as_f64().map(|v| v as f32)
        }
        (DataType::Timestamp(unit, _), Value::String(o), Value::String(e)) => {
            let (Ok(o), Ok(e)) = (
                parse_timestamp(o, TimeUnit::Microsecond),
                parse_timestamp(e, TimeUnit::Microsecond),
            ) else {
                return false;
            };
            o == floor_to(e, *unit)
        }
        (DataType::Time32(unit) | DataType::Time64(unit), Value::String(o), Value::String(e)) => {
            let (Ok(o), Ok(e)) = (
                parse_time(o, TimeUnit::Microsecond),
                parse_time(e, TimeUnit::Microsecond),
            ) else {
                return false;
            };
            o == floor_to(e, *unit)
        }
        (DataType::Duration(_), Value::String(o), Value::String(e)) => {
            rendered_duration_micros(o).is_some()
                && rendered_duration_micros(o) == iso_interval_micros(e)
        }
        _ => numbers_equal(ours, expected),
    }
}

fn floor_to(micros: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => micros.div_euclid(1_000_000) * 1_000_000,
        TimeUnit::Millisecond => micros.div_euclid(1_000) * 1_000,
        _ => micros,
    }
}

/// Compares a table's rows with the expected rows: same keys, same columns, equal cells.
/// Returns every difference found (at most 20), or `Ok` when equal.
pub fn compare_with_expected(
    table: &TableId,
    key_columns: &[String],
    rows: &RecordBatch,
    expected: &[Map<String, Value>],
) -> Result<(), String> {
    let schema: &Schema = &rows.schema();
    let ours = render_rows(rows).map_err(|e| e.to_string())?;
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
    for k in expected_by_key.keys() {
        if !ours_by_key.contains_key(k) {
            problems.push(format!("{table}: missing key {k}"));
        }
    }
    for k in ours_by_key.keys() {
        if !expected_by_key.contains_key(k) {
            problems.push(format!("{table}: unexpected key {k}"));
        }
    }
    if let Some(first) = expected.first() {
        let mut exp_cols: Vec<&String> = first.keys().collect();
        let mut our_cols: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        exp_cols.sort();
        our_cols.sort();
        if exp_cols != our_cols {
            problems.push(format!(
                "{table}: columns differ: ours {our_cols:?}, expected {exp_cols:?}"
            ));
        }
    }
    for (k, exp) in &expected_by_key {
        let Some(our) = ours_by_key.get(k) else {
            continue;
        };
        for (col, e) in exp.iter() {
            let Ok(field) = schema.field_with_name(col) else {
                continue;
            };
            let o = our.get(col).unwrap_or(&Value::Null);
            if !cell_matches(field.data_type(), o, e) {
                problems.push(format!(
                    "{table} key {k} column {col} ({}): ours {o}, expected {e}",
                    field.data_type()
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

/// One `#[tokio::test]` per fixture scenario and variant, each calling `$check(name).await`,
/// plus a test that no scenario in the fixtures directory is left without one. Shared by the
/// reference sink's tests and every format adapter's.
#[macro_export]
macro_rules! fixture_tests {
    ($check:path) => {
        $crate::fixture_tests!(@each $check;
            crud => "crud",
            crud_connect_time => "crud-connect-time",
            crud_decimal_double => "crud-decimal-double",
            crud_decimal_string => "crud-decimal-string",
            crud_noschema => "crud-noschema",
            crud_unwrap => "crud-unwrap",
            pk_change => "pk_change",
            schema_change => "schema_change",
            toast => "toast",
            truncate => "truncate",
            types => "types",
            types_connect_time => "types-connect-time",
            types_decimal_double => "types-decimal-double",
            types_decimal_string => "types-decimal-string",
            types_noschema => "types-noschema",
            types_unwrap => "types-unwrap",
        );
    };
    (@each $check:path; $($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                $check($name).await;
            }
        )*

        #[test]
        fn every_fixture_scenario_has_a_test() {
            let tested = [$($name),*];
            for s in $crate::testing::Scenario::all() {
                assert!(tested.contains(&s.name.as_str()), "no test for scenario {}", s.name);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_debezium() {
        assert_eq!(
            iso_interval_micros("P-1000Y"),
            Some(-31_557_600_000_000_000)
        );
        assert_eq!(iso_interval_micros("P1DT2H3M4S"), Some(93_784_000_000));
        assert_eq!(rendered_duration_micros("PT93784S"), Some(93_784_000_000));
    }

    #[test]
    fn differences_are_reported() {
        use arrow_array::{Int32Array, StringArray};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            arrow_schema::Field::new("id", DataType::Int32, true),
            arrow_schema::Field::new("body", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["__debezium_unavailable_value", "b"])),
            ],
        )
        .unwrap();
        let expected: Vec<Map<String, Value>> =
            serde_json::from_str(r#"[{"id":1,"body":"real"},{"id":3,"body":"c"}]"#).unwrap();
        let t = TableId::new("public", "documents");
        let err = compare_with_expected(&t, &["id".into()], &batch, &expected).unwrap_err();
        assert!(err.contains("column body"), "{err}");
        assert!(err.contains("missing key 3"), "{err}");
        assert!(err.contains("unexpected key 2"), "{err}");
    }

    #[test]
    fn lossy_comparisons() {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        assert!(cell_matches(
            &ms,
            &Value::from("1900-01-01T00:00:00.000000"),
            &Value::from("1900-01-01T00:00:00.000001")
        ));
        assert!(!cell_matches(
            &ms,
            &Value::from("1900-01-01T00:00:00.001000"),
            &Value::from("1900-01-01T00:00:00.000001")
        ));
    }
}
