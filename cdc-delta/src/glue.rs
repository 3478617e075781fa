//! Delta tables in the AWS Glue Data Catalog, registered the way Athena reads Delta natively:
//! an `EXTERNAL_TABLE` at the table's location with `table_type=DELTA` (Athena takes the
//! schema and files from the Delta log), plus the columns and partition keys for the Glue
//! console and crawlers, kept in step with the table's schema. Its storage is declared the way
//! Spark declares data-source tables (a sequence-file placeholder and the `path` SerDe
//! parameter), so a Hive-only engine cannot misread the Parquet files without the log.

use std::collections::BTreeMap;

use cdc_core::glue::{columns_of, partition_keys_of, SerDeInfo, StorageDescriptor, TableInput};

use crate::error::{DeltaSinkError, Result};
use crate::schema::stored_from_delta;
use crate::table::{Loaded, TableLocation};

impl TableLocation {
    /// Registers the table as `loaded` shows it (a no-op when nothing registered changed).
    pub(crate) async fn register_in_glue(&self, loaded: &Loaded) -> Result<()> {
        let Some(registry) = &self.glue else {
            return Ok(());
        };
        let input = self.glue_table_input(loaded)?;
        Ok(registry.sync(&self.table, input, &[], Vec::new()).await?)
    }

    fn glue_table_input(&self, loaded: &Loaded) -> Result<TableInput> {
        let snapshot = loaded
            .table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        let stored = stored_from_delta(&snapshot.schema()).map_err(|e| {
            cdc_core::Error::arrow(format!("the Delta schema of {}", self.table), e)
        })?;
        let partitions: Vec<&str> = (snapshot.metadata().partition_columns().iter())
            .map(String::as_str)
            .collect();
        let schema_err = |(column, message): (String, String)| {
            DeltaSinkError::Core(cdc_core::Error::UnsupportedSchema {
                table: self.table.to_string(),
                column,
                message: format!("cannot register it in Glue: {message}"),
            })
        };
        let columns = columns_of(&stored, &partitions, |_| BTreeMap::new()).map_err(schema_err)?;
        let partition_keys = partition_keys_of(&stored, &partitions).map_err(schema_err)?;
        let location = self.location().trim_end_matches('/').to_string();
        let parameters = |pairs: &[(&str, &str)]| {
            (pairs.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        Ok(TableInput {
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters: parameters(&[
                ("table_type", "DELTA"),
                ("EXTERNAL", "TRUE"),
                ("spark.sql.sources.provider", "delta"),
            ]),
            storage_descriptor: Some(StorageDescriptor {
                columns,
                location: Some(location.clone()),
                input_format: Some("org.apache.hadoop.mapred.SequenceFileInputFormat".into()),
                output_format: Some(
                    "org.apache.hadoop.hive.ql.io.HiveSequenceFileOutputFormat".into(),
                ),
                serde_info: Some(SerDeInfo {
                    serialization_library: Some(
                        "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into(),
                    ),
                    parameters: parameters(&[("path", &location), ("serialization.format", "1")]),
                }),
                ..StorageDescriptor::default()
            }),
            partition_keys,
            ..TableInput::default()
        })
    }
}
