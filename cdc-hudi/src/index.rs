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

use std::fmt::Write;

use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::DataType;

/// Hudi's text of a null key or partition value.
pub const NULL_KEY: &str = "__null__";
/// Hudi's text of an empty key value.
pub const EMPTY_KEY: &str = "__empty__";
/// Hudi's partition directory of a null partition value.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The text of every value of a stored column (`None` for nulls).
pub fn value_strings(col: &ArrayRef) -> Result<Vec<Option<String>>, String> {
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
            return Ok(bin
                .iter()
                .map(|v| {
                    v.map(|b| {
                        b.iter()
                            .fold(String::with_capacity(b.len() * 2), |mut s, x| {
                                let _ = write!(s, "{x:02x}");
                                s
                            })
                    })
                })
                .collect());
        }
        List(_) | LargeList(_) | Struct(_) | Map(_, _) => {
            return Err(format!(
                "a {} column cannot be a record key or partition field",
                col.data_type()
            ))
        }
        _ => arrow_cast::cast(col, &Utf8).map_err(|e| e.to_string())?,
    };
    let strings = text
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("utf8 array");
    Ok(strings.iter().map(|v| v.map(str::to_string)).collect())
}

/// The record key of every row of `batch` (stored types; must hold the key columns), as the
/// key generator of a table with `partition_fields` partition columns makes it: `field:value`
/// pairs for composite keys, and also for a single key field under `ComplexKeyGenerator`
/// (two or more partition fields; Hudi 0.14.0 and, by default, 0.14.2+/0.15.1+/1.1), else
/// the bare value.
pub fn record_keys(
    batch: &RecordBatch,
    key_columns: &[String],
    partition_fields: usize,
) -> Result<Vec<String>, String> {
    let prefixed = key_columns.len() > 1 || partition_fields > 1;
    let columns = key_columns
        .iter()
        .map(|k| {
            let col = batch
                .column_by_name(k)
                .ok_or_else(|| format!("key column `{k}` is missing"))?;
            value_strings(col).map_err(|e| format!("key column `{k}`: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let one = |v: &Option<String>| match v.as_deref() {
        None => NULL_KEY.to_string(),
        Some("") => EMPTY_KEY.to_string(),
        Some(s) => s.to_string(),
    };
    Ok((0..batch.num_rows())
        .map(|r| {
            if !prefixed {
                one(&columns[0][r])
            } else {
                key_columns
                    .iter()
                    .zip(&columns)
                    .map(|(k, c)| format!("{k}:{}", one(&c[r])))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        })
        .collect())
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
            value_strings(col).map_err(|e| format!("partition column `{f}`: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((0..batch.num_rows())
        .map(|r| {
            fields
                .iter()
                .zip(&columns)
                .map(|(f, c)| {
                    let v = match c[r].as_deref() {
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
            ["7", "__null__"]
        );
        assert_eq!(
            record_keys(&batch, &["id".into(), "name".into()], 1).unwrap(),
            ["id:7,name:__empty__", "id:__null__,name:a/b"]
        );
        assert_eq!(
            record_keys(&batch, &["at".into()], 1).unwrap(),
            ["1700000000000000", "__null__"]
        );
        // One key field, two partition fields: ComplexKeyGenerator writes `field:value`.
        assert_eq!(
            record_keys(&batch, &["id".into()], 2).unwrap(),
            ["id:7", "id:__null__"]
        );
        assert_eq!(
            partition_paths(&batch, &["day".into(), "name".into()], true).unwrap(),
            [
                "day=2024-01-01/name=__HIVE_DEFAULT_PARTITION__",
                "day=__HIVE_DEFAULT_PARTITION__/name=a%2Fb"
            ]
        );
        assert_eq!(partition_paths(&batch, &[], true).unwrap(), ["", ""]);
        assert_eq!(escape_path_name("a/b%c:d=e"), "a%2Fb%25c%3Ad%3De");
        assert_eq!(escape_path_name("ü\u{7f}x\t"), "ü%7Fx%09");
        assert_eq!(escape_path_name(".."), "%2E%2E");
        let col: ArrayRef = Arc::new(Int32Array::from(vec![Some(4), None, Some(-2)]));
        assert_eq!(int_key_range(&col), Some((-2, 4)));
        assert_eq!(escape_path_name("a.b"), "a.b");
    }
}
