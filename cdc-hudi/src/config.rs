//! Settings of the Hudi sink.

use cdc_core::sink::upsert::TestHooks;
use serde::{Deserialize, Serialize};

/// Settings of [`crate::HudiWarehouse`] and its sinks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HudiSinkConfig {
    /// Partition columns of tables this sink creates (`hoodie.table.partition.fields`); empty
    /// for a non-partitioned table.
    pub partition_fields: Vec<String>,
    /// Partition directories as `column=value` (Hive style) instead of `value`.
    pub hive_style_partitioning: bool,
    /// `hoodie.table.precombine.field` of tables this sink creates (a column of the table).
    /// Readers do not need it; Spark writers of the same table do.
    pub precombine_field: Option<String>,
    /// A base file grows to at most this many bytes (`hoodie.parquet.max.file.size`).
    pub max_file_size: u64,
    /// Base files smaller than this take new inserts (`hoodie.parquet.small.file.limit`).
    pub small_file_limit: u64,
    /// Bytes per record assumed before the table has any (`hoodie.copyonwrite.record.size.estimate`).
    pub record_size_estimate: u64,
    /// Cleaning: base-file versions needed by the last this many commits are kept, older ones
    /// are deleted after each commit (`hoodie.cleaner.commits.retained`). 0 keeps everything.
    pub commits_retained: usize,
    /// Cleaning (and then archival) runs once this many writes completed since the last
    /// clean (`hoodie.clean.max.commits`; 1: after every commit). A clean is an instant of
    /// its own, a few sequential requests that a stream committing every second would pay on
    /// each commit; versions wait at most this many commits longer to be deleted.
    pub clean_every: usize,
    /// The sink clusters small file groups ([`crate::cluster`]) after every this many of its
    /// commits (0: never).
    pub cluster_every: usize,
    /// Cleaning also keeps the versions a query started this many hours ago can read (the
    /// snapshot of the latest commit at that time), so a long query does not lose its files
    /// (like `hoodie.cleaner.hours.retained`). `None`: only `commits_retained` counts.
    pub retain_hours: Option<u64>,
    /// Timeline archival: once more than this many completed writes are in the active
    /// timeline, the oldest instants move to `.hoodie/archived/` (`hoodie.keep.max.commits`).
    /// 0 never archives.
    pub archive_max_commits: usize,
    /// Archival leaves this many completed writes in the active timeline
    /// (`hoodie.keep.min.commits`), and never passes the oldest commit cleaning keeps readable.
    pub archive_min_commits: usize,
    /// Attempts of one change set when another writer commits to the same table meanwhile
    /// (each retry starts over on the new table state).
    pub max_commit_attempts: usize,
    /// This writer's id, kept in the heartbeat of each instant it writes. Give every
    /// concurrently running writer of a table its own id: a pending instant of our own id is
    /// a crashed predecessor and is rolled back at once, one of another id only once its
    /// heartbeat has expired.
    pub writer_id: String,
    /// How often the heartbeat of an instant in flight is refreshed (milliseconds,
    /// `hoodie.client.heartbeat.interval_in_ms`); it expires after two missed refreshes.
    pub heartbeat_interval_ms: u64,
    /// Register tables and their partitions in the AWS Glue Data Catalog (feature `glue`) as
    /// Hudi's own Glue sync does, so Athena, Spark and Trino read them through Glue.
    pub glue: Option<cdc_core::glue::GlueConfig>,
    /// Crash and concurrency tests: fail points and a hook before every commit, after the
    /// base files are written.
    #[doc(hidden)]
    #[serde(skip)]
    pub test_hooks: TestHooks,
}

impl Default for HudiSinkConfig {
    fn default() -> Self {
        HudiSinkConfig {
            partition_fields: Vec::new(),
            hive_style_partitioning: true,
            precombine_field: None,
            max_file_size: 120 << 20,
            small_file_limit: 100 << 20,
            record_size_estimate: 1024,
            commits_retained: 10,
            clean_every: 5,
            cluster_every: 100,
            retain_hours: None,
            archive_max_commits: 30,
            archive_min_commits: 20,
            max_commit_attempts: 10,
            writer_id: "cdc-lake".into(),
            heartbeat_interval_ms: 60_000,
            glue: None,
            test_hooks: TestHooks::default(),
        }
    }
}

impl HudiSinkConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_file_size < 1 << 20 {
            return Err("max_file_size must be at least 1 MiB".into());
        }
        if self.small_file_limit > self.max_file_size {
            return Err(format!(
                "small_file_limit ({}) must not exceed max_file_size ({})",
                self.small_file_limit, self.max_file_size
            ));
        }
        let archives = self.archive_max_commits > 0;
        if archives && !(1..self.archive_max_commits).contains(&self.archive_min_commits) {
            return Err(format!(
                "archive_min_commits ({}) must be at least 1 and less than archive_max_commits ({})",
                self.archive_min_commits, self.archive_max_commits
            ));
        }
        if archives && self.commits_retained >= self.archive_min_commits {
            return Err(format!(
                "commits_retained ({}) must be less than archive_min_commits ({}): archival \
                 never passes the commits cleaning keeps readable",
                self.commits_retained, self.archive_min_commits
            ));
        }
        if self.max_commit_attempts == 0 {
            return Err("max_commit_attempts must be at least 1".into());
        }
        if self.writer_id.trim().is_empty() || self.writer_id.contains(['\n', '\r']) {
            return Err("writer_id must be a non-empty single line".into());
        }
        if self.heartbeat_interval_ms == 0 {
            return Err("heartbeat_interval_ms must be at least 1".into());
        }
        if self.record_size_estimate == 0 {
            return Err("record_size_estimate must be at least 1 byte".into());
        }
        for f in self
            .partition_fields
            .iter()
            .chain(self.precombine_field.iter())
        {
            if f.is_empty() || f.contains(',') {
                return Err(format!(
                    "column name `{f}` cannot be a Hudi partition or precombine field (empty or \
                     contains a comma)"
                ));
            }
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
    fn bad_settings_fail_at_start() {
        assert!(HudiSinkConfig::default().validate().is_ok());
        let bad = HudiSinkConfig {
            small_file_limit: 200 << 20,
            ..HudiSinkConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("small_file_limit"));
        for bad in [
            HudiSinkConfig {
                writer_id: " ".into(),
                ..HudiSinkConfig::default()
            },
            HudiSinkConfig {
                writer_id: "a\nb".into(),
                ..HudiSinkConfig::default()
            },
        ] {
            assert!(bad.validate().unwrap_err().contains("writer_id"));
        }
        let bad = HudiSinkConfig {
            heartbeat_interval_ms: 0,
            ..HudiSinkConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("heartbeat_interval_ms"));
        let parsed: HudiSinkConfig = serde_json::from_str(
            r#"{"writer_id": "pipeline-2", "heartbeat_interval_ms": 5000, "retain_hours": 24}"#,
        )
        .unwrap();
        assert_eq!(
            (
                parsed.writer_id.as_str(),
                parsed.heartbeat_interval_ms,
                parsed.retain_hours
            ),
            ("pipeline-2", 5000, Some(24))
        );
        let bad = HudiSinkConfig {
            archive_min_commits: 30,
            ..HudiSinkConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("archive_min_commits"));
        let bad = HudiSinkConfig {
            commits_retained: 20,
            ..HudiSinkConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("commits_retained"));
        let parsed: Result<HudiSinkConfig, _> = serde_json::from_str(r#"{"max_file_sise": 1}"#);
        assert!(parsed.is_err());
    }
}
