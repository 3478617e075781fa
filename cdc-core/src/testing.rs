//! Test support shared by every crate of the workspace (feature `test-util`): the loader of the
//! Debezium fixtures in `../shared/fixtures/debezium/`, a writer of the Confluent S3 sink layout,
//! and the comparison of a table with a scenario's `expected/` state.
//!
//! The comparison follows the fixtures' README: values are compared in the canonical rendering
//! of [`crate::render`]; for the lossy variants the same loss is applied to the expected value
//! (decimals as doubles in `-decimal-double`, millisecond times in `-connect-time`), and
//! intervals are compared as Debezium's microsecond approximation (365.25-day years,
//! 30.4375-day months).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::model::TableId;

pub mod avro;
pub mod backlog;
pub mod bench;
mod changes;
mod postgres;
pub mod proxy;
mod readers;
mod stepwise;

mod broker;
mod compare;
pub mod conformance;
mod glue;
mod raw;
mod servers;
pub mod shapes;
mod sync;
pub mod type_matrix;

#[cfg(feature = "kafka")]
pub use broker::produce_to_kafka;
pub use broker::{scenario_topics_regex, TansuBroker};
pub use changes::{keyed_change, other_writer_change, OTHER_WRITER_TOPIC};
pub use compare::{compare_with_expected, iso_interval_micros};
pub use glue::glue_config_for;
pub use postgres::PostgresServer;
pub use raw::{compare_raw_with_expected, VariantLoss};
pub use readers::{external_to_logical, rows_from_python_reader};
pub use servers::free_loopback_port;
pub use servers::{
    venv_python, AzuriteServer, MotoServer, AZURITE_ACCOUNT, MOTO_KEY_ID, MOTO_SECRET,
};
pub use stepwise::assert_equal_to_reference_after_every_batch;
pub use sync::{
    assert_replay_commits_nothing, schemaless_hints, sync_fixture, sync_scenario, sync_shaped,
    FIXTURE_BATCH_EVENTS,
};

/// The fixtures' `debezium/` directory: `$CDC_LAKE_FIXTURES`, else `../shared/fixtures/debezium`
/// beside the repository.
pub fn fixtures_root() -> PathBuf {
    if let Ok(p) = std::env::var("CDC_LAKE_FIXTURES") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/debezium")
}

/// One record of a fixture's `events.jsonl`, key and value as their verbatim JSON text.
#[derive(Debug, Clone)]
pub struct FixtureRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key JSON text (`None` when null).
    pub key: Option<String>,
    /// Value JSON text (`None` for a tombstone).
    pub value: Option<String>,
}

impl FixtureRecord {
    /// The record as a source reads it.
    pub fn into_raw(self) -> crate::source::RawRecord {
        crate::source::RawRecord {
            topic: std::sync::Arc::from(self.topic),
            partition: self.partition,
            offset: self.offset,
            key: self.key.map(bytes::Bytes::from),
            value: self.value.map(bytes::Bytes::from),
            value_schema: None,
            key_schema: None,
        }
    }
}

/// One fixture scenario directory.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `crud`, `types-noschema`, ...
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Tables with their primary keys.
    pub tables: Vec<(TableId, Vec<String>)>,
}

impl Scenario {
    /// Loads `postgres/<name>`.
    pub fn load(name: &str) -> Scenario {
        Scenario::load_from(&fixtures_root().join("postgres").join(name), name)
    }

    /// Loads the scenario in `dir` (the fixtures' layout: `scenario.json`, `events.jsonl`,
    /// `expected/`) under `name`.
    pub fn load_from(dir: &Path, name: &str) -> Scenario {
        let dir = dir.to_path_buf();
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("scenario.json"))
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())),
        )
        .expect("scenario.json is JSON");
        let tables = meta["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .map(|t| {
                (
                    TableId::new(t["schema"].as_str().unwrap(), t["table"].as_str().unwrap()),
                    t["primary_key"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| k.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect();
        Scenario {
            name: name.to_string(),
            dir,
            tables,
        }
    }

    /// Every scenario under `postgres/`, sorted by name.
    pub fn all() -> Vec<Scenario> {
        let mut names: Vec<String> = std::fs::read_dir(fixtures_root().join("postgres"))
            .unwrap_or_else(|e| panic!("fixtures not found at {}: {e}", fixtures_root().display()))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("events.jsonl").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.iter().map(|n| Scenario::load(n)).collect()
    }

    /// The variant suffix (`noschema`, `unwrap`, ...), or `""` for the base form.
    pub fn variant(&self) -> &str {
        for v in [
            "noschema",
            "decimal-string",
            "decimal-double",
            "unwrap",
            "connect-time",
        ] {
            if self.name.ends_with(&format!("-{v}")) {
                return v;
            }
        }
        ""
    }

    /// The base scenario name (`types` for `types-noschema`).
    pub fn base(&self) -> &str {
        let v = self.variant();
        if v.is_empty() {
            &self.name
        } else {
            &self.name[..self.name.len() - v.len() - 1]
        }
    }

    /// The records of `events.jsonl`.
    pub fn records(&self) -> Vec<FixtureRecord> {
        #[derive(serde::Deserialize)]
        struct Line<'a> {
            topic: String,
            partition: i32,
            offset: i64,
            #[serde(borrow)]
            key: &'a serde_json::value::RawValue,
            #[serde(borrow)]
            value: &'a serde_json::value::RawValue,
        }
        let text = std::fs::read_to_string(self.dir.join("events.jsonl")).expect("events.jsonl");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let line: Line = serde_json::from_str(l).expect("fixture line");
                let opt = |v: &serde_json::value::RawValue| {
                    Some(v.get().to_string()).filter(|s| s != "null")
                };
                FixtureRecord {
                    topic: line.topic,
                    partition: line.partition,
                    offset: line.offset,
                    key: opt(line.key),
                    value: opt(line.value),
                }
            })
            .collect()
    }

    /// Writes the records in the Confluent S3 sink layout under `dest`, `per_file` records a
    /// file, keys in `.keys.json` files, gzipped when `gzip`.
    pub fn write_s3_layout(&self, dest: &Path, per_file: usize, gzip: bool) {
        let mut by_tp: BTreeMap<(String, i32), Vec<FixtureRecord>> = BTreeMap::new();
        for r in self.records() {
            by_tp
                .entry((r.topic.clone(), r.partition))
                .or_default()
                .push(r);
        }
        for ((topic, partition), records) in by_tp {
            let dir = dest.join(&topic).join(format!("partition={partition}"));
            std::fs::create_dir_all(&dir).expect("create layout dir");
            for chunk in records.chunks(per_file) {
                let start = chunk[0].offset;
                let base = format!("{topic}+{partition}+{start:010}");
                let ext = if gzip { ".json.gz" } else { ".json" };
                let mut values = String::new();
                let mut keys = String::new();
                for r in chunk {
                    values.push_str(r.value.as_deref().unwrap_or("null"));
                    values.push('\n');
                    keys.push_str(r.key.as_deref().unwrap_or("null"));
                    keys.push('\n');
                }
                write_file(&dir.join(format!("{base}{ext}")), values.as_bytes(), gzip);
                write_file(
                    &dir.join(format!("{base}.keys{ext}")),
                    keys.as_bytes(),
                    gzip,
                );
            }
        }
    }

    /// `expected/<schema>.<table>.json` of every table.
    pub fn expected(&self) -> BTreeMap<TableId, Vec<Map<String, Value>>> {
        self.tables
            .iter()
            .map(|(t, _)| {
                let path = self.dir.join("expected").join(format!("{t}.json"));
                let rows: Vec<Map<String, Value>> =
                    serde_json::from_str(&std::fs::read_to_string(&path).expect("expected file"))
                        .expect("expected JSON");
                (t.clone(), rows)
            })
            .collect()
    }
}

fn write_file(path: &Path, bytes: &[u8], gzip: bool) {
    let mut f = std::fs::File::create(path).expect("create fixture file");
    if gzip {
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        gz.write_all(bytes).expect("write");
        gz.finish().expect("finish gzip");
    } else {
        f.write_all(bytes).expect("write");
    }
}
