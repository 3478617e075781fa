//! The `clean` instant a cleaning writes, as Hudi's cleaner writes it: `t.clean.requested` and
//! `t.clean.inflight` hold the cleaner plan (`HoodieCleanerPlan`, version 2: the earliest
//! instant kept and the files to delete per partition), `t.clean` the clean metadata
//! (`HoodieCleanMetadata`, version 2: what was deleted per partition), each an Avro object
//! container file whose writer schema is Hudi's record of that name (readers resolve it
//! against their own by field name, so fields later Hudi versions added take their defaults).

use std::collections::BTreeMap;

use apache_avro::types::Value;
use apache_avro::{Schema, Writer};

use crate::timeline::COMMIT;

/// Hudi's cleaning policy name for what [`crate::clean`] does.
const POLICY: &str = "KEEP_LATEST_COMMITS";

/// The version Hudi 0.14 writes of both records.
const VERSION: i32 = 2;

/// `HoodieCleanerPlan` (its fields of version 2).
const PLAN_SCHEMA: &str = r#"{
  "type": "record", "name": "HoodieCleanerPlan", "namespace": "org.apache.hudi.avro.model",
  "fields": [
    {"name": "earliestInstantToRetain", "default": null, "type": ["null", {
      "type": "record", "name": "HoodieActionInstant", "fields": [
        {"name": "timestamp", "type": "string"},
        {"name": "action", "type": "string"},
        {"name": "state", "type": "string"}]}]},
    {"name": "policy", "type": "string"},
    {"name": "filesToBeDeletedPerPartition", "default": null,
     "type": ["null", {"type": "map", "values": {"type": "array", "items": "string"}}]},
    {"name": "version", "type": ["int", "null"], "default": 1},
    {"name": "filePathsToBeDeletedPerPartition", "default": null, "type": ["null", {
      "type": "map", "values": {"type": "array", "items": {
        "type": "record", "name": "HoodieCleanFileInfo", "fields": [
          {"name": "filePath", "type": ["null", "string"], "default": null},
          {"name": "isBootstrapBaseFile", "type": ["null", "boolean"], "default": null}]}}}]},
    {"name": "partitionsToBeDeleted", "default": null,
     "type": ["null", {"type": "array", "items": "string"}]}
  ]}"#;

/// `HoodieCleanMetadata` with `HoodieCleanPartitionMetadata` (fields of version 2).
const METADATA_SCHEMA: &str = r#"{
  "type": "record", "name": "HoodieCleanMetadata", "namespace": "org.apache.hudi.avro.model",
  "fields": [
    {"name": "startCleanTime", "type": "string"},
    {"name": "timeTakenInMillis", "type": "long"},
    {"name": "totalFilesDeleted", "type": "int"},
    {"name": "earliestCommitToRetain", "type": "string"},
    {"name": "lastCompletedCommitTimestamp", "type": "string", "default": ""},
    {"name": "partitionMetadata", "type": {"type": "map", "values": {
      "type": "record", "name": "HoodieCleanPartitionMetadata", "fields": [
        {"name": "partitionPath", "type": "string"},
        {"name": "policy", "type": "string"},
        {"name": "deletePathPatterns", "type": {"type": "array", "items": "string"}},
        {"name": "successDeleteFiles", "type": {"type": "array", "items": "string"}},
        {"name": "failedDeleteFiles", "type": {"type": "array", "items": "string"}},
        {"name": "isPartitionDeleted", "type": ["null", "boolean"], "default": null}]}}},
    {"name": "version", "type": ["int", "null"], "default": 1},
    {"name": "bootstrapPartitionMetadata", "default": null,
     "type": ["null", {"type": "map", "values": "HoodieCleanPartitionMetadata"}]}
  ]}"#;

/// One cleaning: what it keeps and the base files it deletes (paths relative to the table,
/// by partition path, `""` when not partitioned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CleanPlan {
    pub instant: String,
    pub earliest_retained: String,
    pub last_completed: String,
    pub files: BTreeMap<String, Vec<String>>,
}

impl CleanPlan {
    /// The plan's Avro file (`t.clean.requested`, `t.clean.inflight`).
    pub fn plan_bytes(&self) -> Vec<u8> {
        let schema = Schema::parse_str(PLAN_SCHEMA).expect("the cleaner plan schema parses");
        let earliest = Value::Record(vec![
            ("timestamp".into(), text(&self.earliest_retained)),
            ("action".into(), text(COMMIT)),
            ("state".into(), text("COMPLETED")),
        ]);
        let files = self.files.iter().map(|(partition, paths)| {
            let infos = paths.iter().map(|p| {
                Value::Record(vec![
                    ("filePath".into(), union(1, text(p))),
                    (
                        "isBootstrapBaseFile".into(),
                        union(1, Value::Boolean(false)),
                    ),
                ])
            });
            (partition.clone(), Value::Array(infos.collect()))
        });
        let record = Value::Record(vec![
            ("earliestInstantToRetain".into(), union(1, earliest)),
            ("policy".into(), text(POLICY)),
            ("filesToBeDeletedPerPartition".into(), union(0, Value::Null)),
            ("version".into(), union(0, Value::Int(VERSION))),
            (
                "filePathsToBeDeletedPerPartition".into(),
                union(1, Value::Map(files.collect())),
            ),
            (
                "partitionsToBeDeleted".into(),
                union(1, Value::Array(Vec::new())),
            ),
        ]);
        container(&schema, record)
    }

    /// The completed clean's Avro file (`t.clean`): `deleted` of the planned files went.
    pub fn metadata_bytes(&self, deleted: &[String], took_ms: i64) -> Vec<u8> {
        let schema = Schema::parse_str(METADATA_SCHEMA).expect("the clean metadata schema parses");
        let names = |paths: &mut dyn Iterator<Item = &String>| {
            Value::Array(paths.map(|p| text(file_name(p))).collect())
        };
        let partitions = self.files.iter().map(|(partition, paths)| {
            let (gone, failed): (Vec<&String>, Vec<&String>) =
                paths.iter().partition(|p| deleted.contains(p));
            let meta = Value::Record(vec![
                ("partitionPath".into(), text(partition)),
                ("policy".into(), text(POLICY)),
                ("deletePathPatterns".into(), names(&mut paths.iter())),
                ("successDeleteFiles".into(), names(&mut gone.into_iter())),
                ("failedDeleteFiles".into(), names(&mut failed.into_iter())),
                ("isPartitionDeleted".into(), union(1, Value::Boolean(false))),
            ]);
            (partition.clone(), meta)
        });
        let record = Value::Record(vec![
            ("startCleanTime".into(), text(&self.instant)),
            ("timeTakenInMillis".into(), Value::Long(took_ms)),
            ("totalFilesDeleted".into(), Value::Int(deleted.len() as i32)),
            (
                "earliestCommitToRetain".into(),
                text(&self.earliest_retained),
            ),
            (
                "lastCompletedCommitTimestamp".into(),
                text(&self.last_completed),
            ),
            ("partitionMetadata".into(), Value::Map(partitions.collect())),
            ("version".into(), union(0, Value::Int(VERSION))),
            ("bootstrapPartitionMetadata".into(), union(0, Value::Null)),
        ]);
        container(&schema, record)
    }
}

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

fn union(branch: u32, v: Value) -> Value {
    Value::Union(branch, Box::new(v))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// One record in an Avro object container file (null codec, as Hudi writes them).
fn container(schema: &Schema, record: Value) -> Vec<u8> {
    let mut writer = Writer::new(schema, Vec::new());
    writer
        .append(record)
        .expect("the record matches the schema it was built for");
    writer.into_inner().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> CleanPlan {
        CleanPlan {
            instant: "20261205120000000".into(),
            earliest_retained: "20261205110000000".into(),
            last_completed: "20261205115959000".into(),
            files: BTreeMap::from([(
                "region=eu".to_string(),
                vec!["region=eu/f1-0_0-0-0_20261205100000000.parquet".to_string()],
            )]),
        }
    }

    /// Both files read back as one record of their schema, with what the plan said.
    #[test]
    fn plan_and_metadata_read_back_as_written() {
        let p = plan();
        let read = |bytes: Vec<u8>| {
            let reader = apache_avro::Reader::new(&bytes[..]).unwrap();
            let name = reader.writer_schema().name().unwrap().name.clone();
            let records: Vec<Value> = reader.map(|r| r.unwrap()).collect();
            assert_eq!(records.len(), 1);
            (name, format!("{:?}", records[0]))
        };
        let (name, record) = read(p.plan_bytes());
        assert_eq!(name, "HoodieCleanerPlan");
        assert!(
            record.contains("f1-0_0-0-0_20261205100000000.parquet"),
            "{record}"
        );
        assert!(record.contains("20261205110000000"), "{record}");
        let deleted = p.files["region=eu"].clone();
        let (name, record) = read(p.metadata_bytes(&deleted, 7));
        assert_eq!(name, "HoodieCleanMetadata");
        assert!(record.contains("Int(1)"), "one file deleted: {record}");
    }
}
