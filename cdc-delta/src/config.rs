//! Settings of the Delta sink.

use std::collections::HashMap;
use std::fmt;

use cdc_core::secrets::KeysOnly;
use cdc_core::sink::upsert::TestHooks;
use serde::{Deserialize, Serialize};

/// Settings of [`crate::DeltaWarehouse`] and its sinks.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeltaSinkConfig {
    /// Partition columns of tables this sink creates.
    pub partition_columns: Vec<String>,
    /// Table properties of tables this sink creates (`delta.*` and others).
    pub table_properties: HashMap<String, String>,
    /// Data files roll over at this size (bytes).
    pub target_file_size: u64,
    /// Attempts of one change set when other writers commit first.
    pub max_commit_attempts: usize,
    /// Deletion vectors: tables this sink creates get the `deletionVectors` reader and writer
    /// feature (protocol 3/7) and `delta.enableDeletionVectors=true`, and on tables that allow
    /// them a touched file with few changed rows gets a deletion vector instead of being
    /// rewritten. Turn off for readers without deletion-vector support (Athena's Delta reader,
    /// older Spark/Trino, delta-rs before 0.17): new tables then keep protocol 1/2 and every
    /// touched file is rewritten (copy-on-write), as tables without the feature always are.
    /// Existing deletion vectors are honoured either way.
    pub deletion_vectors: bool,
    /// A touched file gets a deletion vector when its changed rows are at most this fraction
    /// of its live rows; with more it is rewritten (its old deletion vector applied and
    /// dropped). Reads pay for deletion vectors until the file is rewritten, so this bounds
    /// how much dead data a file carries per change set.
    pub deletion_vector_max_fraction: f64,
    /// The sink runs [`crate::optimize`] after every this many of its commits (0: never):
    /// small files packed, files with many deleted rows rewritten, at most
    /// `optimize_max_bytes` read per run.
    pub optimize_every: u64,
    /// What one scheduled optimize reads at most (bytes), so a commit is held up briefly.
    pub optimize_max_bytes: u64,
    /// The sink runs [`crate::maintenance::vacuum`] (the table's
    /// `delta.deletedFileRetentionDuration`, a week by default) after every this many of its
    /// commits (0: never).
    pub vacuum_every: u64,
    /// Register tables in the AWS Glue Data Catalog (feature `glue`) so Athena reads them
    /// natively (`table_type=DELTA`); columns follow schema changes.
    pub glue: Option<cdc_core::glue::GlueConfig>,
    /// Object-store options (`AWS_ENDPOINT_URL`, `AWS_REGION`, ...). Never logged: `Debug`
    /// shows only the keys. Credentials are best left to the environment.
    #[serde(skip_serializing)]
    pub storage_options: HashMap<String, String>,
    /// Crash and concurrency tests: fail points and a hook before every commit.
    #[doc(hidden)]
    #[serde(skip)]
    pub test_hooks: TestHooks,
}

impl Default for DeltaSinkConfig {
    fn default() -> Self {
        DeltaSinkConfig {
            partition_columns: Vec::new(),
            table_properties: HashMap::new(),
            target_file_size: 128 << 20,
            max_commit_attempts: 10,
            deletion_vectors: true,
            deletion_vector_max_fraction: 0.2,
            optimize_every: 100,
            optimize_max_bytes: 256 << 20,
            vacuum_every: 1000,
            glue: None,
            storage_options: HashMap::new(),
            test_hooks: TestHooks::default(),
        }
    }
}

impl fmt::Debug for DeltaSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeltaSinkConfig")
            .field("partition_columns", &self.partition_columns)
            .field("table_properties", &self.table_properties)
            .field("target_file_size", &self.target_file_size)
            .field("max_commit_attempts", &self.max_commit_attempts)
            .field("deletion_vectors", &self.deletion_vectors)
            .field(
                "deletion_vector_max_fraction",
                &self.deletion_vector_max_fraction,
            )
            .field("optimize_every", &self.optimize_every)
            .field("optimize_max_bytes", &self.optimize_max_bytes)
            .field("vacuum_every", &self.vacuum_every)
            .field("glue", &self.glue)
            .field(
                "storage_options (keys only)",
                &KeysOnly(&self.storage_options),
            )
            .field("test_hooks", &self.test_hooks)
            .finish()
    }
}

impl DeltaSinkConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_commit_attempts == 0 {
            return Err("max_commit_attempts must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.deletion_vector_max_fraction) {
            return Err("deletion_vector_max_fraction must be between 0 and 1".into());
        }
        if self.target_file_size < 1 << 20 {
            return Err("target_file_size must be at least 1 MiB".into());
        }
        if let Some(glue) = &self.glue {
            glue.validate_in(cfg!(feature = "glue"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_option_values() {
        let config = DeltaSinkConfig {
            storage_options: HashMap::from([(
                "AWS_SECRET_ACCESS_KEY".to_string(),
                "s3cr3t".to_string(),
            )]),
            ..DeltaSinkConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            shown.contains("AWS_SECRET_ACCESS_KEY") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
