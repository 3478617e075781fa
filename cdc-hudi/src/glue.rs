//! Hudi tables in the AWS Glue Data Catalog, registered as Hudi's own Glue (Hive) sync does for
//! a copy-on-write table, so Athena, EMR/Spark and Trino read them through Glue: an
//! `EXTERNAL_TABLE` whose input format is Hudi's (`HoodieParquetInputFormat`, which reads only
//! the latest committed base file of each file group), the Parquet SerDe, the meta columns
//! first, partition fields as partition keys with one Glue partition per partition path, and
//! `last_commit_time_sync`, updated when a commit adds partitions or columns.

use std::collections::{BTreeMap, BTreeSet};

use cdc_core::glue::{
    columns_of, partition_keys_of, Column, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};

use crate::error::{HudiSinkError, Result};
use crate::schema::{stored_schema, META_COLUMNS};
use crate::table::{TableAt, TableState};

const INPUT_FORMAT: &str = "org.apache.hudi.hadoop.HoodieParquetInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

impl TableAt {
    /// Registers the table and its partitions as `state` shows them (nothing is called when
    /// neither changed since this process last registered them).
    pub(crate) async fn register_in_glue(&self, state: &TableState) -> Result<()> {
        let (Some(registry), Some(latest)) = (&self.glue, &state.latest) else {
            return Ok(());
        };
        let props = &state.props;
        let stored = stored_schema(&latest.logical);
        let partition_fields: Vec<&str> =
            props.partition_fields.iter().map(String::as_str).collect();
        let schema_err = |(column, message): (String, String)| {
            HudiSinkError::Core(cdc_core::Error::UnsupportedSchema {
                table: self.table.to_string(),
                column,
                message: format!("cannot register it in Glue: {message}"),
            })
        };
        let meta = META_COLUMNS.iter().map(|name| Column {
            name: name.to_string(),
            r#type: "string".into(),
            ..Column::default()
        });
        let data =
            columns_of(&stored, &partition_fields, |_| BTreeMap::new()).map_err(schema_err)?;
        let partition_keys = partition_keys_of(&stored, &partition_fields).map_err(schema_err)?;
        let storage = |location: String, columns: Vec<Column>| StorageDescriptor {
            columns,
            location: Some(location),
            input_format: Some(INPUT_FORMAT.into()),
            output_format: Some(OUTPUT_FORMAT.into()),
            serde_info: Some(SerDeInfo {
                serialization_library: Some(SERDE.into()),
                parameters: BTreeMap::from([
                    ("hoodie.query.as.ro.table".to_string(), "false".to_string()),
                    ("path".to_string(), self.location.clone()),
                ]),
            }),
            ..StorageDescriptor::default()
        };
        let columns: Vec<Column> = meta.chain(data).collect();
        let input = TableInput {
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters: BTreeMap::from([
                ("EXTERNAL".to_string(), "TRUE".to_string()),
                ("spark.sql.sources.provider".to_string(), "hudi".to_string()),
            ]),
            storage_descriptor: Some(storage(self.location.clone(), columns.clone())),
            partition_keys,
            ..TableInput::default()
        };
        let partitions: BTreeSet<&str> = (state.groups.values())
            .map(|g| g.partition.as_str())
            .filter(|p| !p.is_empty())
            .collect();
        let partitions = (partitions.into_iter())
            .map(|path| PartitionInput {
                values: partition_values(path, props.hive_style),
                storage_descriptor: storage(format!("{}/{path}", self.location), columns.clone()),
                parameters: BTreeMap::new(),
            })
            .collect();
        let last = state.timeline.completed_writes().next_back();
        let last = last.map(|i| i.time.as_str()).unwrap_or_default();
        let volatile = [("last_commit_time_sync", last)];
        Ok(registry
            .sync(&self.table, input, &volatile, partitions)
            .await?)
    }
}

/// The partition values of a partition path, as Hudi's `MultiPartKeysValueExtractor` takes
/// them: one per directory level, the part after `=` in Hive-style paths.
fn partition_values(path: &str, hive_style: bool) -> Vec<String> {
    path.split('/')
        .map(|level| match (hive_style, level.split_once('=')) {
            (true, Some((_, value))) => value.to_string(),
            _ => level.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_of_paths() {
        assert_eq!(
            partition_values("region=eu/day=2024-01-02", true),
            ["eu", "2024-01-02"]
        );
        assert_eq!(
            partition_values("eu/2024-01-02", false),
            ["eu", "2024-01-02"]
        );
    }
}
