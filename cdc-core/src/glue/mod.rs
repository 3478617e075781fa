//! The AWS Glue Data Catalog, where Athena, EMR/Spark and Trino find tables: its settings, the
//! table definitions the format adapters register, and (feature `glue`) a client for the few
//! Glue calls they make.
//!
//! Each format registers its tables the way that format's own Glue integration does (Iceberg:
//! `table_type=ICEBERG` and `metadata_location`; Delta: `table_type=DELTA`; Hudi: Hudi's
//! input format and partitions); the shared part is here: database per source schema, Hive
//! column types from the Arrow schema, create-or-update guarded by the table's `VersionId`.

#[cfg(feature = "glue")]
mod client;
mod model;
#[cfg(feature = "glue")]
mod registry;

use std::collections::BTreeMap;

#[cfg(feature = "glue")]
pub use client::{outcome_unknown, GlueClient, Registered};
pub use model::{
    columns_of, hive_type, partition_keys_of, Column, GlueTable, PartitionInput, SerDeInfo,
    StorageDescriptor, TableInput,
};
#[cfg(feature = "glue")]
pub use registry::GlueRegistry;
use serde::{Deserialize, Serialize};

use crate::model::TableId;

/// Where and how tables are registered in the Glue Data Catalog.
///
/// Credentials and region come from the AWS SDKs' usual chain (`AWS_*` environment, profile,
/// web identity, container and instance credentials); they are never part of the settings.
/// The endpoint is, in order: [`Self::endpoint`], `AWS_ENDPOINT_URL_GLUE`,
/// `AWS_ENDPOINT_URL`, then `https://glue.<region>.amazonaws.com`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlueConfig {
    /// AWS region; default: the SDK chain's (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// The Data Catalog's id (an AWS account id); default: the caller's account.
    pub catalog_id: Option<String>,
    /// Glue endpoint URL, e.g. a VPC endpoint or a local emulator.
    pub endpoint: Option<String>,
    /// Glue database of each source schema; a schema not listed goes to the database of its
    /// own name (lowercased, as Glue stores names).
    pub databases: BTreeMap<String, String>,
    /// Seconds one Glue call may take.
    pub request_timeout_secs: u64,
    /// Attempts of one call that failed in a way worth retrying (throttling, 5xx, network).
    pub max_attempts: usize,
}

impl Default for GlueConfig {
    fn default() -> Self {
        GlueConfig {
            region: None,
            catalog_id: None,
            endpoint: None,
            databases: BTreeMap::new(),
            request_timeout_secs: 30,
            max_attempts: 5,
        }
    }
}

impl GlueConfig {
    /// Checks the settings of a format crate built with (`built_in`) or without Glue support.
    pub fn validate_in(&self, built_in: bool) -> Result<(), String> {
        if !built_in {
            return Err("`glue`: this build has no Glue support (feature glue)".into());
        }
        self.validate()
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(endpoint) = &self.endpoint {
            let url = url::Url::parse(endpoint)
                .map_err(|e| format!("glue.endpoint `{endpoint}` is not a URL: {e}"))?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err("glue.endpoint must not carry credentials".into());
            }
        }
        if let Some((schema, _)) = self.databases.iter().find(|(_, db)| !valid_name(db)) {
            return Err(format!(
                "glue.databases: the database of schema `{schema}` must be 1 to 255 lowercase \
                 letters, digits or underscores"
            ));
        }
        if self.request_timeout_secs == 0 || self.max_attempts == 0 {
            return Err(
                "glue.request_timeout_secs and glue.max_attempts must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// The Glue database and table name of `table`.
    pub fn names_of(&self, table: &TableId) -> (String, String) {
        let database = match self.databases.get(&*table.namespace) {
            Some(db) => db.clone(),
            None => table.namespace.to_lowercase(),
        };
        (database, table.name.to_lowercase())
    }
}

/// Whether `name` is a name Athena can query unquoted and Glue keeps as given.
fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_the_lowercased_source_names() {
        let config = GlueConfig {
            databases: BTreeMap::from([("inventory".to_string(), "bronze_inventory".to_string())]),
            ..GlueConfig::default()
        };
        let t = TableId::new("Public", "Customers");
        assert_eq!(config.names_of(&t), ("public".into(), "customers".into()));
        let t = TableId::new("inventory", "orders");
        assert_eq!(
            config.names_of(&t),
            ("bronze_inventory".into(), "orders".into())
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(GlueConfig::default().validate().is_ok());
        let bad: GlueConfig =
            serde_json::from_str(r#"{"databases":{"public":"Bad-Name"}}"#).unwrap();
        assert!(bad.validate().unwrap_err().contains("public"));
        let creds: GlueConfig =
            serde_json::from_str(r#"{"endpoint":"http://key:secret@127.0.0.1:5000"}"#).unwrap();
        let e = creds.validate().unwrap_err();
        assert!(e.contains("credentials") && !e.contains("secret"), "{e}");
        let e = serde_json::from_str::<GlueConfig>(r#"{"secret_key":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
