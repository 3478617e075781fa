//! Time of day as fixed-width text, for formats whose engines have no TIME type: `HH:MM:SS.ffffff`
//! (microseconds; 15 characters) for every unit up to microseconds, `HH:MM:SS.fffffffff`
//! (nanoseconds; 18 characters) for nanosecond columns. Fixed width keeps text order equal to
//! time order, and every engine casts it to its own time type (`CAST(c AS TIME)`).
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Array, ArrayRef, StringArray, Time32MillisecondArray};
//! use cdc_core::storage::time_text::{text_to_times, times_to_text};
//! let times: ArrayRef = Arc::new(Time32MillisecondArray::from(vec![Some(45_296_789), None]));
//! let text = times_to_text(&times).unwrap();
//! let text = text.as_any().downcast_ref::<StringArray>().unwrap();
//! assert_eq!(text.value(0), "12:34:56.789000");
//! assert!(text.is_null(1));
//! let back = text_to_times(&(Arc::new(text.clone()) as ArrayRef), times.data_type()).unwrap();
//! assert_eq!(&back, &times);
//! ```

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
};
use arrow_array::{
    Array, ArrayRef, StringArray, Time32MillisecondArray, Time32SecondArray,
    Time64MicrosecondArray, Time64NanosecondArray,
};
use arrow_schema::{ArrowError, DataType, TimeUnit};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

fn unit_nanos(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => NANOS_PER_SECOND,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// The time of day `nanos` nanoseconds after midnight, with 6 or 9 fractional digits.
fn format_time(nanos: i64, digits9: bool) -> String {
    let secs = nanos.div_euclid(NANOS_PER_SECOND);
    let frac = nanos.rem_euclid(NANOS_PER_SECOND);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if digits9 {
        format!("{h:02}:{m:02}:{s:02}.{frac:09}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{:06}", frac / 1_000)
    }
}

/// Nanoseconds after midnight of `HH:MM:SS[.f]` (up to 9 fractional digits).
fn parse_time(text: &str) -> Option<i64> {
    let (hms, frac) = match text.split_once('.') {
        Some((a, b)) => (a, b),
        None => (text, ""),
    };
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(((h * 60 + m) * 60 + s) * NANOS_PER_SECOND + frac_nanos)
}

/// A time-of-day column (`Time32`/`Time64` of any unit) as fixed-width text.
pub fn times_to_text(col: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let (unit, values): (TimeUnit, Vec<Option<i64>>) = match col.data_type() {
        DataType::Time32(TimeUnit::Second) => (
            TimeUnit::Second,
            col.as_primitive::<Time32SecondType>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
        ),
        DataType::Time32(_) => (
            TimeUnit::Millisecond,
            col.as_primitive::<Time32MillisecondType>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
        ),
        DataType::Time64(TimeUnit::Nanosecond) => (
            TimeUnit::Nanosecond,
            col.as_primitive::<Time64NanosecondType>().iter().collect(),
        ),
        DataType::Time64(_) => (
            TimeUnit::Microsecond,
            col.as_primitive::<Time64MicrosecondType>().iter().collect(),
        ),
        other => {
            return Err(ArrowError::CastError(format!(
                "{other} is not a time of day"
            )));
        }
    };
    let digits9 = unit == TimeUnit::Nanosecond;
    let per = unit_nanos(unit);
    let text: StringArray = values
        .into_iter()
        .map(|v| v.map(|v| format_time(v * per, digits9)))
        .collect();
    Ok(Arc::new(text))
}

/// Fixed-width time text back into a time column of type `to`; text that does not parse, or
/// has digits finer than the column's unit, is an error (never rounded).
pub fn text_to_times(col: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let unit = match to {
        DataType::Time32(u) | DataType::Time64(u) => *u,
        other => {
            return Err(ArrowError::CastError(format!(
                "{other} is not a time of day"
            )))
        }
    };
    let per = unit_nanos(unit);
    let text = col.as_string::<i32>();
    let mut values = Vec::with_capacity(text.len());
    for v in text.iter() {
        values.push(match v {
            None => None,
            Some(t) => {
                let nanos = parse_time(t).ok_or_else(|| {
                    ArrowError::CastError(format!("`{t}` is not a time of day HH:MM:SS[.f]"))
                })?;
                if nanos % per != 0 {
                    return Err(ArrowError::CastError(format!(
                        "`{t}` is finer than the column's unit {unit:?}"
                    )));
                }
                Some(nanos / per)
            }
        });
    }
    let out: ArrayRef = match to {
        DataType::Time32(TimeUnit::Second) => Arc::new(Time32SecondArray::from_iter(
            values.into_iter().map(|v| v.map(|v| v as i32)),
        )),
        DataType::Time32(_) => Arc::new(Time32MillisecondArray::from_iter(
            values.into_iter().map(|v| v.map(|v| v as i32)),
        )),
        DataType::Time64(TimeUnit::Nanosecond) => Arc::new(Time64NanosecondArray::from(values)),
        _ => Arc::new(Time64MicrosecondArray::from(values)),
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_with_a_fixed_width_and_parse_back() {
        assert_eq!(format_time(0, false), "00:00:00.000000");
        assert_eq!(
            format_time(86_400 * NANOS_PER_SECOND, false),
            "24:00:00.000000"
        );
        assert_eq!(format_time(45_296_000_001_000, false), "12:34:56.000001");
        assert_eq!(format_time(45_296_000_000_007, true), "12:34:56.000000007");
        assert_eq!(parse_time("12:34:56"), Some(45_296 * NANOS_PER_SECOND));
        assert_eq!(parse_time("12:34:56.5"), Some(45_296_500_000_000));
        assert_eq!(parse_time("12:34"), None);
        assert_eq!(parse_time("12:34:56.1234567890"), None);
        let micros: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![Some(1), None]));
        let text = times_to_text(&micros).unwrap();
        assert_eq!(text.as_string::<i32>().value(0), "00:00:00.000001");
        assert_eq!(&text_to_times(&text, micros.data_type()).unwrap(), &micros);
        // Finer than the unit: an error, not a rounded value.
        let ms = DataType::Time32(TimeUnit::Millisecond);
        assert!(text_to_times(&text, &ms).is_err());
    }
}
