//! Which columns a Parquet dictionary would not pay for. A writer interns every value of a
//! dictionary-encoded column and falls back to plain pages only once the dictionary outgrows
//! its page limit, so a column of almost all distinct strings (e-mail addresses, UUIDs) costs a
//! hash-table insert per value for nothing: in a profile of a 100 000-row Hudi rewrite, the
//! interning was the largest single part of the encode. The same holds for distinct integers
//! (keys, sequence numbers, timestamps): their dictionary is no smaller than the values. A
//! sample of each column tells those columns apart.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_buffer::Buffer;
use arrow_schema::DataType;
use parquet::file::properties::WriterPropertiesBuilder;
use parquet::schema::types::ColumnPath;

/// Values sampled per column, spread over the batch.
const SAMPLE: usize = 1024;
/// Fewer sampled values than this judge nothing (a small file: the dictionary costs little).
const MIN_SAMPLE: usize = 256;
/// Distinct values among the sampled, in percent, from which a dictionary does not pay.
const DISTINCT_PERCENT: usize = 90;

/// The top-level string, binary and fixed-width columns of `batch` whose sampled values are
/// (almost) all distinct: write them without a dictionary.
fn mostly_distinct_columns(batch: &RecordBatch) -> Vec<String> {
    (batch.schema().fields().iter())
        .zip(batch.columns())
        .filter(|(_, column)| mostly_distinct(column.as_ref()))
        .map(|(field, _)| field.name().clone())
        .collect()
}

/// `props` with no dictionary for the [`mostly_distinct_columns`] of `batch` (used by every
/// format's data-file writer).
pub fn without_needless_dictionaries(
    mut props: WriterPropertiesBuilder,
    batch: &RecordBatch,
) -> WriterPropertiesBuilder {
    for column in mostly_distinct_columns(batch) {
        props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    props
}

fn mostly_distinct(column: &dyn Array) -> bool {
    if column.len() < MIN_SAMPLE {
        return false;
    }
    let data = column.to_data();
    let Some(value) = value_bytes(column, data.buffers().first(), data.offset()) else {
        return false;
    };
    let step = (column.len() / SAMPLE).max(1);
    let (mut seen, mut sampled) = (HashSet::with_capacity(SAMPLE), 0);
    for i in (0..column.len()).step_by(step).take(SAMPLE) {
        if column.is_valid(i) {
            sampled += 1;
            seen.insert(value(i));
        }
    }
    sampled >= MIN_SAMPLE && seen.len() * 100 >= sampled * DISTINCT_PERCENT
}

/// Value `i` of a column as bytes, for string and binary columns and fixed-width primitives
/// (integers, timestamps, decimals: interning a distinct key or time costs the same for
/// nothing); `None` for other types. `values` and `offset` are `column`'s first buffer and
/// offset in it.
fn value_bytes<'a>(
    column: &'a dyn Array,
    values: Option<&'a Buffer>,
    offset: usize,
) -> Option<Box<dyn Fn(usize) -> &'a [u8] + 'a>> {
    Some(match column.data_type() {
        DataType::Utf8 => {
            let a = column.as_string::<i32>();
            Box::new(move |i| a.value(i).as_bytes())
        }
        DataType::LargeUtf8 => {
            let a = column.as_string::<i64>();
            Box::new(move |i| a.value(i).as_bytes())
        }
        DataType::Utf8View => {
            let a = column.as_string_view();
            Box::new(move |i| a.value(i).as_bytes())
        }
        DataType::Binary => {
            let a = column.as_binary::<i32>();
            Box::new(move |i| a.value(i))
        }
        DataType::LargeBinary => {
            let a = column.as_binary::<i64>();
            Box::new(move |i| a.value(i))
        }
        DataType::BinaryView => {
            let a = column.as_binary_view();
            Box::new(move |i| a.value(i))
        }
        other => {
            let width = other.primitive_width()?;
            let values = &values?.as_slice()[offset * width..];
            Box::new(move |i| &values[i * width..(i + 1) * width])
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{BooleanArray, Int32Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    #[test]
    fn distinct_values_go_without_a_dictionary_repeated_ones_keep_it() {
        let rows = 5_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("email", DataType::Utf8, true),
            Field::new("country", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
            Field::new("status", DataType::Int32, false),
            Field::new("active", DataType::Boolean, false),
        ]));
        let emails = (0..rows).map(|i| (i % 7 != 0).then(|| format!("user{i}@example.com")));
        let countries = (0..rows).map(|i| Some(["de", "fr", "us"][i % 3]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter(emails)),
                Arc::new(StringArray::from_iter(countries)),
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(Int32Array::from_iter_values(
                    (0..rows as i32).map(|i| i % 5),
                )),
                Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0)))),
            ],
        )
        .unwrap();
        assert_eq!(mostly_distinct_columns(&batch), ["email", "id"]);
        // A slice starts at its own first value.
        assert_eq!(
            mostly_distinct_columns(&batch.slice(1000, 1000)),
            ["email", "id"]
        );
        // Too few rows to judge.
        assert!(mostly_distinct_columns(&batch.slice(0, 100)).is_empty());
    }
}
