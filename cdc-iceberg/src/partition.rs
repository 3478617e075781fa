//! Partition specs of new tables, from the config's `partition_by` list.
//!
//! Each entry is a column (identity) or a transform of one: `identity(c)`, `year(c)`,
//! `month(c)`, `day(c)`, `hour(c)`, `bucket(N, c)`, `truncate(W, c)`. The partition field is
//! named after the column (`c` for identity, else `c_day`, `c_bucket_16`, ...).
//!
//! Row deletes never need the partition of the deleted row: positions are found in data files,
//! and each position-delete file is written into the partition of the data files it names.
//!
//! ```
//! use cdc_iceberg::partition::parse_partition_field;
//! use iceberg::spec::Transform;
//! assert_eq!(parse_partition_field("bucket(16, id)").unwrap(), ("id".to_string(), Transform::Bucket(16)));
//! assert_eq!(parse_partition_field("day(updated_at)").unwrap(), ("updated_at".to_string(), Transform::Day));
//! assert_eq!(parse_partition_field("name").unwrap(), ("name".to_string(), Transform::Identity));
//! assert!(parse_partition_field("bucket(id)").unwrap_err().contains("bucket(N, column)"));
//! ```

use iceberg::spec::{Schema as IcebergSchema, Transform, UnboundPartitionSpec};

use crate::error::{IcebergSinkError, Result};

/// The column and transform of one `partition_by` entry.
pub fn parse_partition_field(entry: &str) -> std::result::Result<(String, Transform), String> {
    let entry = entry.trim();
    let Some(open) = entry.find('(') else {
        if entry.is_empty() {
            return Err("an empty partition field; give a column or e.g. `day(column)`".into());
        }
        return Ok((entry.to_string(), Transform::Identity));
    };
    let Some(inner) = entry[open + 1..].strip_suffix(')') else {
        return Err(format!("partition field `{entry}` lacks its closing `)`"));
    };
    let name = entry[..open].trim().to_ascii_lowercase();
    let args: Vec<&str> = inner.split(',').map(str::trim).collect();
    let number = |what: &str| -> std::result::Result<u32, String> {
        match args.as_slice() {
            [n, column] if !column.is_empty() => n.parse::<u32>().map_err(|_| {
                format!("partition field `{entry}`: `{n}` is not a {what}; write {name}(N, column)")
            }),
            _ => Err(format!(
                "partition field `{entry}` must be {name}(N, column), with N the {what}"
            )),
        }
    };
    let transform = match name.as_str() {
        "identity" => Transform::Identity,
        "year" | "years" => Transform::Year,
        "month" | "months" => Transform::Month,
        "day" | "days" => Transform::Day,
        "hour" | "hours" => Transform::Hour,
        "bucket" => Transform::Bucket(number("bucket count")?),
        "truncate" => Transform::Truncate(number("width")?),
        other => {
            return Err(format!(
                "partition field `{entry}`: unknown transform `{other}`; use identity, year, \
                 month, day, hour, bucket(N, column) or truncate(W, column)"
            ))
        }
    };
    let column = match transform {
        Transform::Bucket(_) | Transform::Truncate(_) => args[1],
        _ => match args.as_slice() {
            [column] if !column.is_empty() => column,
            _ => return Err(format!("partition field `{entry}` must be {name}(column)")),
        },
    };
    Ok((column.to_string(), transform))
}

fn field_name(column: &str, transform: &Transform) -> String {
    match transform {
        Transform::Identity => column.to_string(),
        Transform::Bucket(n) => format!("{column}_bucket_{n}"),
        Transform::Truncate(w) => format!("{column}_trunc_{w}"),
        other => format!("{column}_{}", other.to_string().to_ascii_lowercase()),
    }
}

/// The partition spec of a new table with `schema`.
pub fn partition_spec(
    table: &str,
    schema: &IcebergSchema,
    partition_by: &[String],
) -> Result<UnboundPartitionSpec> {
    let mut builder = UnboundPartitionSpec::builder();
    for entry in partition_by {
        let (column, transform) =
            parse_partition_field(entry).map_err(|message| IcebergSinkError::Schema {
                table: table.to_string(),
                column: entry.clone(),
                message,
            })?;
        let field = schema
            .field_by_name(&column)
            .ok_or_else(|| IcebergSinkError::Schema {
                table: table.to_string(),
                column: column.clone(),
                message: "partition column is not a column of the table".into(),
            })?;
        builder = builder
            .add_partition_field(field.id, field_name(&column, &transform), transform)
            .map_err(|e| IcebergSinkError::Schema {
                table: table.to_string(),
                column: column.clone(),
                message: format!("cannot partition by `{entry}`: {e}"),
            })?;
    }
    Ok(builder.build())
}
