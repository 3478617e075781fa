//! Record keys and partition paths as Hudi writes them, and the record-key index that finds
//! the file groups a change set touches.
//!
//! A record key is the key column's value as text (`SimpleKeyGenerator` /
//! `NonpartitionedKeyGenerator` with one key column), or `col1:v1,col2:v2` for composite keys
//! and `col1:v1` for one key column with two or more partition columns (`ComplexKeyGenerator`,
//! as Hudi 0.14.0 writes it); a null value is `__null__` and an empty string `__empty__`.
//! Temporal values are their stored integer (Hudi renders the Avro long), dates `yyyy-MM-dd`,
//! decimals their plain text, binary values lower-case hex.
//!
//! Every base file carries the least and greatest record key of its rows in its footer
//! (`hoodie_min_record_key` / `hoodie_max_record_key`, compared as strings, as Hudi's bloom
//! index does), and for a single integer key its numeric range too; cdc-core's `KeyRanges`
//! counts the changed keys inside either range (see `crate::locate`), so a file group whose
//! range holds none is never read.

use std::collections::HashMap;
use std::fmt::Write;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::DataType;

/// Hudi's text of a null key or partition value.
pub const NULL_KEY: &str = "__null__";
/// Hudi's text of an empty key value.
pub const EMPTY_KEY: &str = "__empty__";
/// Hudi's partition directory of a null partition value.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The text of every value of a stored column, as one string array (nulls stay null).
fn value_texts(col: &ArrayRef) -> Result<StringArray, String> {
    use DataType::*;
    let text: ArrayRef = match col.data_type() {
        Timestamp(_, _) | Time32(_) | Time64(_) | Duration(_) | Date64 => {
            let ints = arrow_cast::cast(col, &Int64).map_err(|e| e.to_string())?;
            arrow_cast::cast(&ints, &Utf8).map_err(|e| e.to_string())?
        }
        Binary | LargeBinary | FixedSizeBinary(_) | BinaryView => {
            let bin = arrow_cast::cast(col, &Binary).map_err(|e| e.to_string())?;
            let bin = bin
                .as_any()
                .downcast_ref::<BinaryArray>()
                .expect("binary array");
            let hex = |b: &[u8]| {
                b.iter()
                    .fold(String::with_capacity(b.len() * 2), |mut s, x| {
                        let _ = write!(s, "{x:02x}");
                        s
                    })
            };
            return Ok(bin.iter().map(|v| v.map(hex)).collect());
        }
        List(_) | LargeList(_) | Struct(_) | Map(_, _) => {
            return Err(format!(
                "a {} column cannot be a record key or partition field",
                col.data_type()
            ))
        }
        _ => arrow_cast::cast(col, &Utf8).map_err(|e| e.to_string())?,
    };
    Ok(text
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("utf8 array")
        .clone())
}

/// A key value as the key generator writes it: `__null__` for null, `__empty__` for "".
fn key_text(v: Option<&str>) -> &str {
    match v {
        None => NULL_KEY,
        Some("") => EMPTY_KEY,
        Some(s) => s,
    }
}

/// The record key of every row of `batch` (stored types; must hold the key columns), as the
/// key generator of a table with `partition_fields` partition columns makes it: `field:value`
/// pairs for composite keys, and also for a single key field under `ComplexKeyGenerator`
/// (two or more partition fields; Hudi 0.14.0 and, by default, 0.14.2+/0.15.1+/1.1), else
/// the bare value. One array, not a string per row: a batch holds up to millions of keys.
pub fn record_keys(
    batch: &RecordBatch,
    key_columns: &[String],
    partition_fields: usize,
) -> Result<StringArray, String> {
    let prefixed = key_columns.len() > 1 || partition_fields > 1;
    let columns = key_columns
        .iter()
        .map(|k| {
            let col = batch
                .column_by_name(k)
                .ok_or_else(|| format!("key column `{k}` is missing"))?;
            value_texts(col).map_err(|e| format!("key column `{k}`: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if !prefixed {
        let texts = &columns[0];
        // The common case (no null or empty key) is the column's text as it is.
        if texts.null_count() == 0 && texts.iter().all(|v| v != Some("")) {
            return Ok(texts.clone());
        }
        return Ok(texts.iter().map(|v| Some(key_text(v))).collect());
    }
    let bytes = columns.iter().map(|c| c.value_data().len()).sum::<usize>();
    let mut keys = StringBuilder::with_capacity(batch.num_rows(), bytes * 2);
    for r in 0..batch.num_rows() {
        for (i, (k, c)) in key_columns.iter().zip(&columns).enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let v = key_text(c.is_valid(r).then(|| c.value(r)));
            let _ = write!(keys, "{sep}{k}:{v}");
        }
        keys.append_value("");
    }
    Ok(keys.finish())
}

/// The partition path of every row of `batch` (stored types): `""` when `fields` is empty,
/// else the values (`field=value` when `hive_style`) joined by `/`.
pub fn partition_paths(
    batch: &RecordBatch,
    fields: &[String],
    hive_style: bool,
) -> Result<Vec<String>, String> {
    if fields.is_empty() {
        return Ok(vec![String::new(); batch.num_rows()]);
    }
    let columns = fields
        .iter()
        .map(|f| {
            let col = batch
                .column_by_name(f)
                .ok_or_else(|| format!("partition column `{f}` is missing"))?;
            value_texts(col).map_err(|e| format!("partition column `{f}`: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((0..batch.num_rows())
        .map(|r| {
            fields
                .iter()
                .zip(&columns)
                .map(|(f, c)| {
                    let v = match c.is_valid(r).then(|| c.value(r)) {
                        None | Some("") => DEFAULT_PARTITION.to_string(),
                        // Escaped like Hudi's `PartitionPathEncodeUtils` (a slash would nest
                        // directories), so the directory name is the partition path.
                        Some(s) => escape_path_name(s),
                    };
                    if hive_style {
                        format!("{f}={v}")
                    } else {
                        v
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect())
}

/// The rows of `batch` grouped by partition path (see [`partition_paths`]), paths in order;
/// rows keep their order within a partition.
pub fn rows_by_partition(
    batch: &RecordBatch,
    fields: &[String],
    hive_style: bool,
) -> Result<Vec<(String, Vec<usize>)>, String> {
    let n = batch.num_rows();
    if fields.is_empty() || n == 0 {
        let all = (n > 0).then(|| (String::new(), (0..n).collect()));
        return Ok(all.into_iter().collect());
    }
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, path) in partition_paths(batch, fields, hive_style)?
        .into_iter()
        .enumerate()
    {
        groups.entry(path).or_default().push(i);
    }
    let mut groups: Vec<(String, Vec<usize>)> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(groups)
}

/// A partition value escaped as Hudi's `PartitionPathEncodeUtils.escapePathName` does (the
/// Hive rule; `hoodie.datasource.write.partitionpath.urlencode=true`): control characters and
/// `"#%'*/:=?\\{[]^` and DEL become `%XX`. A value of only dots (`.`, `..`) also escapes its
/// dots, since no store takes such a directory name.
pub fn escape_path_name(value: &str) -> String {
    let escape = |c: char| {
        matches!(
            c,
            '\u{1}'..='\u{1f}' | '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?'
        ) || matches!(c, '\\' | '\u{7f}' | '{' | '[' | ']' | '^')
    };
    let dots = !value.is_empty() && value.len() <= 2 && value.chars().all(|c| c == '.');
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if escape(c) || (dots && c == '.') {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// The least and greatest value of an integer key column.
pub fn int_key_range(col: &ArrayRef) -> Option<(i64, i64)> {
    let ints = cdc_core::sink::upsert::int_keys(col)?;
    let mut it = ints.iter().flatten();
    let first = it.next()?;
    Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Date32Array, Int32Array, TimestampMicrosecondArray};
    use arrow_schema::{Field, Schema, TimeUnit};
    use std::sync::Arc;

    #[test]
    fn keys_like_hudi_key_generators() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec![Some(""), Some("a/b")])),
                Arc::new(Date32Array::from(vec![Some(19_723), None])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            record_keys(&batch, &["id".into()], 0).unwrap(),
            StringArray::from(vec!["7", "__null__"])
        );
        assert_eq!(
            record_keys(&batch, &["id".into(), "name".into()], 1).unwrap(),
            StringArray::from(vec!["id:7,name:__empty__", "id:__null__,name:a/b"])
        );
        assert_eq!(
            record_keys(&batch, &["at".into()], 1).unwrap(),
            StringArray::from(vec!["1700000000000000", "__null__"])
        );
        // One key field, two partition fields: ComplexKeyGenerator writes `field:value`.
        assert_eq!(
            record_keys(&batch, &["id".into()], 2).unwrap(),
            StringArray::from(vec!["id:7", "id:__null__"])
        );
        assert_eq!(
            partition_paths(&batch, &["day".into(), "name".into()], true).unwrap(),
            [
                "day=2024-01-01/name=__HIVE_DEFAULT_PARTITION__",
                "day=__HIVE_DEFAULT_PARTITION__/name=a%2Fb"
            ]
        );
        assert_eq!(
            record_keys(&batch, &["name".into()], 0).unwrap(),
            StringArray::from(vec!["__empty__", "a/b"])
        );
        assert_eq!(partition_paths(&batch, &[], true).unwrap(), ["", ""]);

        assert_eq!(escape_path_name("a/b%c:d=e"), "a%2Fb%25c%3Ad%3De");
        assert_eq!(escape_path_name("ü\u{7f}x\t"), "ü%7Fx%09");
        assert_eq!(escape_path_name(".."), "%2E%2E");
        let col: ArrayRef = Arc::new(Int32Array::from(vec![Some(4), None, Some(-2)]));
        let schema = Arc::new(Schema::new(vec![Field::new("p", DataType::Int32, true)]));
        let batch = RecordBatch::try_new(schema, vec![col.clone()]).unwrap();
        let groups = |fields: &[String]| rows_by_partition(&batch, fields, true).unwrap();
        assert_eq!(
            groups(&["p".into()]),
            [
                ("p=-2".to_string(), vec![2]),
                ("p=4".to_string(), vec![0]),
                ("p=__HIVE_DEFAULT_PARTITION__".to_string(), vec![1])
            ]
        );
        assert_eq!(groups(&[]), [(String::new(), vec![0, 1, 2])]);
        assert_eq!(int_key_range(&col), Some((-2, 4)));
        assert_eq!(escape_path_name("a.b"), "a.b");
    }
}
