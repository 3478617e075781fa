//! `cdc-lake run --config FILE`: a long-running service described in TOML. Every flag of
//! `sync` and `stream` has a key here; unknown keys are errors (with the key's path), so a
//! misspelt setting never falls back to a default silently.
//!
//! ```toml
//! metrics_addr = "0.0.0.0:9898"
//! dead_letter = "s3://bucket/dead-letters"
//!
//! [source.kafka]                      # or [source.raw]: location, watch, poll_interval_ms
//! brokers = "b-1.msk:9096"
//! topics = 'dbserver1\.public\..*'
//! properties = { "security.protocol" = "SASL_SSL" }
//!
//! [sink]                              # every table not listed under [[tables]]
//! format = "delta"
//! warehouse = "s3://bucket/lake"
//! catalog = "glue"
//! settings = { partition_columns = ["region"] }
//!
//! [[tables]]                          # one table in another format or place
//! name = "public.orders"
//! format = "iceberg"
//! warehouse = "s3://bucket/iceberg"
//! settings = { catalog_path = "/var/lib/cdc-lake/catalog.db" }
//!
//! [[tables]]                          # a table that keeps every version
//! name = "public.customers"
//! shape = "scd2"                      # mirror, soft_delete, scd2, change_log
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Where change events come from.
    pub source: SourceConfig,
    /// Where tables go, unless `tables` says otherwise.
    pub sink: SinkConfig,
    /// Tables with their own format, location or settings, schema or key.
    #[serde(default)]
    pub tables: Vec<TableConfig>,
    /// Topic → table rules tried before the default `<prefix>.<schema>.<table>`.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Batch bounds.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `--dead-letter`.
    pub dead_letter: Option<String>,
    /// `--schema-registry`.
    pub schema_registry: Option<String>,
    /// `--ignore-unknown-columns`.
    #[serde(default)]
    pub ignore_unknown_columns: bool,
    /// `--allow-gaps`.
    #[serde(default)]
    pub allow_gaps: bool,
    /// `--metrics-addr`.
    pub metrics_addr: Option<String>,
}

/// `[source.raw]` (the S3 sink's files, as `sync`) or `[source.kafka]` (as `stream`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// Raw files.
    Raw {
        /// `--source`.
        location: String,
        /// `--watch`.
        #[serde(default)]
        watch: bool,
        /// `--poll-interval-ms`.
        poll_interval_ms: Option<u64>,
        /// `--byte-array-separator`.
        byte_array_separator: Option<String>,
    },
    /// Kafka.
    Kafka {
        /// `--brokers`.
        brokers: String,
        /// `--topics`.
        topics: String,
        /// `--group`.
        group: Option<String>,
        /// `--kafka-property KEY=VALUE`, as a table.
        #[serde(default)]
        properties: BTreeMap<String, String>,
        /// `--topic-refresh-ms`.
        topic_refresh_ms: Option<u64>,
    },
}

/// A format, where its tables go, and its settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `--format`.
    pub format: String,
    /// `--warehouse`.
    pub warehouse: String,
    /// `--catalog` (`glue`).
    pub catalog: Option<String>,
    /// What `--sink-config` holds, as a TOML table.
    pub settings: Option<toml::Table>,
}

/// One table's own settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// `SCHEMA.TABLE`.
    pub name: String,
    /// Its format (default: `[sink]`'s).
    pub format: Option<String>,
    /// Its warehouse (default: `[sink]`'s).
    pub warehouse: Option<String>,
    /// Its catalog (default: `[sink]`'s).
    pub catalog: Option<String>,
    /// Its sink settings (default: `[sink]`'s).
    pub settings: Option<toml::Table>,
    /// `--schema TABLE=FILE`.
    pub schema_file: Option<PathBuf>,
    /// `--key TABLE=COLUMNS`.
    pub key: Option<Vec<String>>,
    /// `--shape TABLE=SHAPE`.
    pub shape: Option<String>,
    /// `--order-by TABLE=ORDER`.
    pub order_by: Option<String>,
}

impl TableConfig {
    /// Whether the table goes somewhere else than `[sink]`.
    pub fn has_own_sink(&self) -> bool {
        self.format.is_some()
            || self.warehouse.is_some()
            || self.catalog.is_some()
            || self.settings.is_some()
    }
}

/// `--route REGEX=TABLE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Regex over whole topic names.
    pub topic: String,
    /// `SCHEMA.TABLE`, captures usable as `$1`.
    pub table: String,
}

/// Batch bounds; unset ones keep the CLI's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// `--max-batch-events`.
    pub max_batch_events: Option<usize>,
    /// `--max-batch-bytes`.
    pub max_batch_bytes: Option<usize>,
    /// `--max-wait-ms` (Kafka).
    pub max_wait_ms: Option<u64>,
}

impl ServiceConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl ServiceConfig {
    /// The command line this service is (`sync ...` or `stream ...`), so the file is checked
    /// and defaulted by the same parser as the flags. Sink settings and tables with sinks of
    /// their own are not flags: the caller adds them.
    pub fn to_args(&self) -> Vec<String> {
        let mut command = match &self.source {
            SourceConfig::Raw {
                location,
                watch,
                poll_interval_ms,
                byte_array_separator,
            } => {
                let mut c = vec!["sync".to_string(), "--source".into(), location.clone()];
                if *watch {
                    c.push("--watch".into());
                }
                if let Some(ms) = poll_interval_ms {
                    c.extend(["--poll-interval-ms".into(), ms.to_string()]);
                }
                flag_values(
                    &mut c,
                    "byte-array-separator",
                    byte_array_separator.as_ref(),
                );
                c
            }
            SourceConfig::Kafka {
                brokers,
                topics,
                group,
                properties,
                topic_refresh_ms,
            } => {
                let mut c = vec!["stream".to_string(), "--brokers".into(), brokers.clone()];
                c.extend(["--topics".into(), topics.clone()]);
                if let Some(group) = group {
                    c.extend(["--group".into(), group.clone()]);
                }
                for (k, v) in properties {
                    c.extend(["--kafka-property".into(), format!("{k}={v}")]);
                }
                if let Some(ms) = self.limits.max_wait_ms {
                    c.extend(["--max-wait-ms".into(), ms.to_string()]);
                }
                if let Some(ms) = topic_refresh_ms {
                    c.extend(["--topic-refresh-ms".into(), ms.to_string()]);
                }
                c
            }
        };
        flag_values(&mut command, "format", Some(&self.sink.format));
        flag_values(&mut command, "warehouse", Some(&self.sink.warehouse));
        flag_values(&mut command, "catalog", self.sink.catalog.as_ref());
        for r in &self.routes {
            flag_values(
                &mut command,
                "route",
                Some(&format!("{}={}", r.topic, r.table)),
            );
        }
        for t in &self.tables {
            if let Some(file) = &t.schema_file {
                let pair = format!("{}={}", t.name, file.display());
                flag_values(&mut command, "schema", Some(&pair));
            }
            if let Some(key) = &t.key {
                let pair = format!("{}={}", t.name, key.join(","));
                flag_values(&mut command, "key", Some(&pair));
            }
            for (flag, value) in [("shape", &t.shape), ("order-by", &t.order_by)] {
                if let Some(v) = value {
                    flag_values(&mut command, flag, Some(&format!("{}={v}", t.name)));
                }
            }
        }
        let limits = [
            (
                "max-batch-events",
                self.limits.max_batch_events.map(|n| n.to_string()),
            ),
            (
                "max-batch-bytes",
                self.limits.max_batch_bytes.map(|n| n.to_string()),
            ),
            ("dead-letter", self.dead_letter.clone()),
            ("schema-registry", self.schema_registry.clone()),
            ("metrics-addr", self.metrics_addr.clone()),
        ];
        for (name, value) in limits {
            flag_values(&mut command, name, value.as_ref());
        }
        for (name, on) in [
            ("ignore-unknown-columns", self.ignore_unknown_columns),
            ("allow-gaps", self.allow_gaps),
        ] {
            if on {
                command.push(format!("--{name}"));
            }
        }
        command.insert(0, "cdc-lake".into());
        command
    }
}

/// Appends `--name value` when there is a value.
fn flag_values(args: &mut Vec<String>, name: &str, value: Option<&String>) {
    if let Some(value) = value {
        args.extend([format!("--{name}"), value.clone()]);
    }
}

/// A TOML table as the JSON text `--sink-config` holds.
pub fn settings_json(settings: &toml::Table) -> Result<String, String> {
    serde_json::to_string(settings).map_err(|e| format!("sink settings: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_service_is_the_stream_command_line() {
        let config: ServiceConfig = toml::from_str(
            r#"
            allow_gaps = true
            metrics_addr = "127.0.0.1:9898"
            [source.kafka]
            brokers = "b:9092"
            topics = "db\\..*"
            topic_refresh_ms = 500
            properties = { "security.protocol" = "SSL" }
            [sink]
            format = "delta"
            warehouse = "s3://lake"
            [limits]
            max_wait_ms = 250
            [[routes]]
            topic = "x_(\\w+)"
            table = "raw.$1"
            [[tables]]
            name = "public.t"
            key = ["a", "b"]
            shape = "scd2"
            order_by = "source_ts"
            "#,
        )
        .unwrap();
        let expected = "cdc-lake stream --brokers b:9092 --topics db\\..* \
             --kafka-property security.protocol=SSL --max-wait-ms 250 --topic-refresh-ms 500 \
             --format delta --warehouse s3://lake --route x_(\\w+)=raw.$1 --key public.t=a,b \
             --shape public.t=scd2 --order-by public.t=source_ts --metrics-addr 127.0.0.1:9898 --allow-gaps";
        assert_eq!(config.to_args().join(" "), expected);
    }

    #[test]
    fn pairs_split_where_their_names_end() {
        let property = "sasl.oauthbearer.config=principal=a scope=b";
        let (key, value) = crate::split_pair(property, "--kafka-property").unwrap();
        assert_eq!(
            (key, value),
            ("sasl.oauthbearer.config", "principal=a scope=b")
        );
        let (regex, table) = crate::split_route("a=(\\w+)=raw.$1").unwrap();
        assert_eq!((regex, table), ("a=(\\w+)", "raw.$1"));
    }
}
