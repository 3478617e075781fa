//! The Avro captures of the fixture scenarios (`cdc-core/tests/data/avro/<scenario>/`, made by
//! `tests/avro/capture.py` with Debezium's engine and Confluent's real `AvroConverter`): the
//! records as the converter framed them, the schemas it registered, and the base scenario
//! whose `expected/` state they must fold to.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;

use super::Scenario;
use crate::decode::avro::SchemaId;
use crate::decode::MemoryRegistry;
use crate::source::RawRecord;

/// The registry id in a Confluent-framed record (the captures' frames are all Confluent's).
pub fn schema_id(framed: &[u8]) -> u32 {
    match crate::decode::avro::unframe(framed) {
        Ok((SchemaId::Confluent(id), _)) => id,
        other => panic!("not a Confluent-framed record: {other:?}"),
    }
}

/// The scenarios captured in Avro.
pub const AVRO_SCENARIOS: [&str; 6] = [
    "crud",
    "pk_change",
    "schema_change",
    "toast",
    "truncate",
    "types",
];

/// One captured scenario.
pub struct AvroScenario {
    /// Its directory under `tests/data/avro/`.
    pub dir: PathBuf,
    /// The JSON scenario it was replayed from (tables, keys, `expected/`).
    pub base: Scenario,
}

impl AvroScenario {
    /// Loads the capture of `name`.
    pub fn load(name: &str) -> AvroScenario {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/avro")
            .join(name);
        AvroScenario {
            dir,
            base: Scenario::load(name),
        }
    }

    /// The records, in capture order.
    pub fn records(&self) -> Vec<RawRecord> {
        #[derive(serde::Deserialize)]
        struct Line {
            topic: String,
            partition: i32,
            offset: i64,
            key: Option<String>,
            value: Option<String>,
        }
        let b64 = |s: Option<String>| {
            s.map(|s| {
                Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .expect("base64 in events.jsonl"),
                )
            })
        };
        let text = std::fs::read_to_string(self.dir.join("events.jsonl")).expect("events.jsonl");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let line: Line = serde_json::from_str(l).expect("capture line");
                RawRecord {
                    topic: Arc::from(line.topic),
                    partition: line.partition,
                    offset: line.offset,
                    key: b64(line.key),
                    value: b64(line.value),
                    value_schema: None,
                    key_schema: None,
                }
            })
            .collect()
    }

    /// The schemas the converter registered, by id.
    pub fn schemas(&self) -> BTreeMap<u32, String> {
        let text = std::fs::read_to_string(self.dir.join("schemas.json")).expect("schemas.json");
        let by_id: BTreeMap<String, String> = serde_json::from_str(&text).expect("schemas.json");
        by_id
            .into_iter()
            .map(|(id, s)| (id.parse().expect("numeric schema id"), s))
            .collect()
    }

    /// A registry holding the captured schemas.
    pub fn registry(&self) -> Arc<MemoryRegistry> {
        let registry = MemoryRegistry::new();
        for (id, text) in self.schemas() {
            registry.insert(SchemaId::Confluent(id), text);
        }
        Arc::new(registry)
    }
}

/// Where a layout's tombstones go: the S3 sink's `AvroFormat` cannot store a null value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tombstones {
    /// As if Debezium ran with `tombstones.on.delete=false`: none were produced, the other
    /// records' offsets follow one another.
    NotProduced,
    /// Produced and skipped by the sink (`behavior.on.null.values=ignore`): each leaves a
    /// missing offset between two files.
    SkippedBySink,
}

/// Which of the S3 sink's formats a layout is written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkFormat {
    /// `AvroFormat`: container files of plain datums with their writer schema (`.avro`).
    Avro,
    /// `ByteArrayFormat` with the `ByteArrayConverter`: each record's framed bytes, then the
    /// separator (`.bin`, `.bin.gz` when gzipped).
    ByteArray {
        /// The sink's `format.bytearray.separator`.
        separator: Vec<u8>,
        /// `compression.type=gzip`.
        gzip: bool,
    },
}

impl AvroScenario {
    /// Writes the records as the Confluent S3 sink does in `format`: files of at most
    /// `per_file` records, keys in `.keys.*` files, a new file whenever the value or key
    /// schema changes (as the sink's schema compatibility `NONE` rotates).
    pub fn write_s3_layout(
        &self,
        dest: &std::path::Path,
        per_file: usize,
        tombstones: Tombstones,
        format: &SinkFormat,
    ) {
        let schemas = self.schemas();
        let write =
            |dir: &std::path::Path, topic: &str, partition, file: &[(i64, RawRecord)]| match format
            {
                SinkFormat::Avro => write_avro_file(dir, topic, partition, file, &schemas),
                SinkFormat::ByteArray { separator, gzip } => {
                    write_byte_array_file(dir, topic, partition, file, separator, *gzip)
                }
            };
        let mut by_tp: BTreeMap<(String, i32), Vec<RawRecord>> = BTreeMap::new();
        for r in self.records() {
            by_tp
                .entry((r.topic.to_string(), r.partition))
                .or_default()
                .push(r);
        }
        for ((topic, partition), records) in by_tp {
            let dir = dest.join(&topic).join(format!("partition={partition}"));
            std::fs::create_dir_all(&dir).expect("create layout dir");
            let mut file: Vec<(i64, RawRecord)> = Vec::new();
            let mut renumbered = 0;
            for r in records {
                let id = |b: &Option<Bytes>| b.as_ref().map(|b| schema_id(b));
                let Some(_) = r.value else {
                    if tombstones == Tombstones::SkippedBySink {
                        write(&dir, &topic, partition, &file);
                        file.clear();
                    }
                    continue;
                };
                let offset = match tombstones {
                    Tombstones::NotProduced => renumbered,
                    Tombstones::SkippedBySink => r.offset,
                };
                renumbered += 1;
                let rotate = file.last().is_some_and(|(_, last)| {
                    id(&last.value) != id(&r.value) || id(&last.key) != id(&r.key)
                });
                if rotate || file.len() == per_file {
                    write(&dir, &topic, partition, &file);
                    file.clear();
                }
                file.push((offset, r));
            }
            write(&dir, &topic, partition, &file);
        }
    }
}

/// One container file of framed records (and its keys file), named by its first offset.
fn write_avro_file(
    dir: &std::path::Path,
    topic: &str,
    partition: i32,
    records: &[(i64, RawRecord)],
    schemas: &BTreeMap<u32, String>,
) {
    use crate::decode::avro::container::write_container;
    let Some((start, first)) = records.first() else {
        return;
    };
    let schema_of = |b: &Bytes| &schemas[&schema_id(b)];
    let base = format!("{topic}+{partition}+{start:010}");
    let values: Vec<&[u8]> = records
        .iter()
        .map(|(_, r)| &r.value.as_ref().unwrap()[5..])
        .collect();
    let value_schema = schema_of(first.value.as_ref().unwrap());
    std::fs::write(
        dir.join(format!("{base}.avro")),
        write_container(value_schema, &values),
    )
    .unwrap();
    if let Some(key) = &first.key {
        let keys: Vec<&[u8]> = records
            .iter()
            .map(|(_, r)| &r.key.as_ref().expect("every record keyed")[5..])
            .collect();
        std::fs::write(
            dir.join(format!("{base}.keys.avro")),
            write_container(schema_of(key), &keys),
        )
        .unwrap();
    }
}

/// One `ByteArrayFormat` file of framed records (and its keys file), named by its first offset.
fn write_byte_array_file(
    dir: &std::path::Path,
    topic: &str,
    partition: i32,
    records: &[(i64, RawRecord)],
    separator: &[u8],
    gzip: bool,
) {
    let Some((start, first)) = records.first() else {
        return;
    };
    let write = |name: String, parts: Vec<&Bytes>| {
        let mut out = Vec::new();
        for part in parts {
            out.extend_from_slice(part);
            out.extend_from_slice(separator);
        }
        let (name, out) = match gzip {
            false => (name, out),
            true => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                std::io::Write::write_all(&mut gz, &out).expect("gzip in memory");
                (format!("{name}.gz"), gz.finish().expect("gzip in memory"))
            }
        };
        std::fs::write(dir.join(name), out).expect("write layout file");
    };
    let base = format!("{topic}+{partition}+{start:010}");
    let values = records.iter().map(|(_, r)| r.value.as_ref().unwrap());
    write(format!("{base}.bin"), values.collect());
    if first.key.is_some() {
        let keys = records
            .iter()
            .map(|(_, r)| r.key.as_ref().expect("every record keyed"));
        write(format!("{base}.keys.bin"), keys.collect());
    }
}

/// A bounded source over records held in memory, read in their order (a stand-in for a
/// broker topic whose records the test already has).
pub struct RecordsSource {
    records: Vec<RawRecord>,
    next: usize,
    /// Next offset to read per topic-partition (`None`: from the start).
    positions: BTreeMap<(String, i32), Option<i64>>,
}

impl RecordsSource {
    /// A source of `records`.
    pub fn new(records: Vec<RawRecord>) -> Self {
        RecordsSource {
            records,
            next: 0,
            positions: BTreeMap::new(),
        }
    }

    fn wanted(&self, r: &RawRecord) -> bool {
        match self.positions.get(&(r.topic.to_string(), r.partition)) {
            Some(Some(next)) => r.offset >= *next,
            Some(None) => true,
            None => false,
        }
    }
}

#[async_trait::async_trait]
impl crate::source::Source for RecordsSource {
    async fn topic_partitions(&mut self) -> crate::Result<Vec<(String, i32)>> {
        let mut tps: Vec<(String, i32)> = self
            .records
            .iter()
            .map(|r| (r.topic.to_string(), r.partition))
            .collect();
        tps.sort();
        tps.dedup();
        Ok(tps)
    }

    async fn start(&mut self, positions: &[((String, i32), Option<i64>)]) -> crate::Result<()> {
        self.positions = positions.iter().cloned().collect();
        self.next = 0;
        Ok(())
    }

    async fn rewind(&mut self, positions: &[((String, i32), Option<i64>)]) -> crate::Result<()> {
        self.positions.extend(positions.iter().cloned());
        self.next = 0;
        Ok(())
    }

    async fn next_batch(
        &mut self,
        limits: &crate::source::BatchLimits,
    ) -> crate::Result<Option<Vec<RawRecord>>> {
        let mut batch = Vec::new();
        while self.next < self.records.len() && batch.len() < limits.max_events {
            let r = &self.records[self.next];
            self.next += 1;
            if self.wanted(r) {
                let key = (r.topic.to_string(), r.partition);
                self.positions.insert(key, Some(r.offset + 1));
                batch.push(r.clone());
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    fn is_bounded(&self) -> bool {
        true
    }
}

/// The Confluent Schema Registry REST API as `tests/avro/registry.py` serves it (no registry
/// server is installable here; Debezium's real `AvroConverter` registers its schemas with it,
/// and our client reads them back), on a free loopback port, stopped on drop.
#[derive(Debug)]
pub struct RegistryServer {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests it answered: one JSON line each (method, path, status).
    pub log: std::path::PathBuf,
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl RegistryServer {
    /// Starts the registry with `args` (`--schemas FILE`, `--user-info U:P`, `--fail-first N`);
    /// `None` when the tests' venv is missing (outside CI).
    pub fn start(args: &[&str]) -> Option<RegistryServer> {
        let python = super::venv_python()?;
        let port = super::free_loopback_port();
        let log = std::env::temp_dir().join(format!("cdc-lake-registry-{port}.jsonl"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/avro/registry.py");
        let child = std::process::Command::new(python)
            .arg(script)
            .args(["--port", &port.to_string(), "--log"])
            .arg(&log)
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the registry");
        super::servers::wait_for_port(port, "the schema registry");
        Some(RegistryServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        })
    }

    /// The requests answered so far, as `METHOD PATH STATUS`.
    pub fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                format!(
                    "{} {} {}",
                    v["method"].as_str().unwrap_or(""),
                    v["path"].as_str().unwrap_or(""),
                    v["status"]
                )
            })
            .collect()
    }
}
