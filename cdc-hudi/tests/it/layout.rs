//! The files on disk are what Hudi writes: `hoodie.properties`, the three instant files per
//! commit with JSON commit metadata, base file names and meta columns; partitioned tables in
//! Hive-style directories with partition metadata; cleaning keeps only the file versions the
//! last N commits need.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use cdc_core::testing::Scenario;
use cdc_hudi::BaseFileName;
use cdc_hudi::META_COLUMNS;
use cdc_hudi::{CommitMetadata, Timeline};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse, AVRO_SCHEMA_KEY, CHECKPOINT_KEY};
use serde_json::Value;

use crate::common::{assert_expected, logical_schema, read_with_hudi_rs, sync, to_logical, Query};

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every parquet file under `dir` (recursively), as paths relative to it.
fn parquet_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == ".hoodie" {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if e.file_type().unwrap().is_dir() {
            parquet_files(&e.path(), &rel, out);
        } else if name.ends_with(".parquet") {
            out.push(rel);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_follow_the_hudi_layout() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let config = HudiSinkConfig {
        commits_retained: 0,
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let (table, keys) = &scenario.tables[0];
    let location = warehouse.table_location(table);
    let hoodie = Path::new(&location).join(".hoodie");

    // A non-partitioned table is one partition at the root (readers filter base files by it).
    let root_meta =
        std::fs::read_to_string(Path::new(&location).join(".hoodie_partition_metadata"))
            .expect("root .hoodie_partition_metadata");
    assert!(root_meta.contains("partitionDepth=0"), "{root_meta}");
    let commit_time = root_meta
        .lines()
        .find_map(|l| l.strip_prefix("commitTime="))
        .unwrap_or_else(|| panic!("no commitTime: {root_meta}"));
    assert_eq!(commit_time.len(), 17, "{root_meta}");

    let props = std::fs::read_to_string(hoodie.join("hoodie.properties")).unwrap();
    for line in [
        "hoodie.table.type=COPY_ON_WRITE",
        "hoodie.table.version=6",
        "hoodie.timeline.layout.version=1",
        &format!("hoodie.table.recordkey.fields={}", keys.join(",")),
        "hoodie.table.keygenerator.class=org.apache.hudi.keygen.NonpartitionedKeyGenerator",
        "hoodie.populate.meta.fields=true",
        "hoodie.table.metadata.partitions=\n",
    ] {
        assert!(
            props.contains(line),
            "hoodie.properties lacks {line:?}:\n{props}"
        );
    }

    let files = names(&hoodie);
    let timeline = Timeline::from_names(files.iter().map(String::as_str));
    let writes: Vec<_> = timeline.completed_writes().collect();
    assert!(writes.len() > 3, "{files:?}");
    let mut previous = String::new();
    for w in &writes {
        assert_eq!(w.time.len(), 17);
        assert!(w.time > previous, "instant times increase");
        previous = w.time.clone();
        if w.action == "commit" {
            for f in [
                format!("{}.commit.requested", w.time),
                format!("{}.inflight", w.time),
            ] {
                assert!(files.contains(&f), "{f} missing");
            }
        }
        let text = std::fs::read_to_string(hoodie.join(w.file_name())).unwrap();
        let raw: Value = serde_json::from_str(&text).unwrap();
        let top: Vec<&String> = raw.as_object().unwrap().keys().collect();
        assert_eq!(top[0], "partitionToWriteStats");
        let meta: CommitMetadata = serde_json::from_str(&text).unwrap();
        assert!(meta.extra_metadata[AVRO_SCHEMA_KEY].starts_with("{\"type\":\"record\""));
        assert!(meta.extra_metadata.contains_key(CHECKPOINT_KEY));
        for (partition, stats) in &meta.partition_to_write_stats {
            assert_eq!(partition, "");
            for s in stats {
                let path = s.path.as_deref().unwrap();
                let name = BaseFileName::parse(path).unwrap();
                assert_eq!(name.file_id, s.file_id);
                assert_eq!(name.instant, w.time);
                let size = std::fs::metadata(Path::new(&location).join(path))
                    .unwrap()
                    .len();
                assert_eq!(s.file_size_in_bytes as u64, size);
                assert_eq!(
                    s.num_writes,
                    s.num_inserts + s.num_update_writes + carried(s)
                );
            }
        }
    }

    // Meta columns first, record keys and file names right.
    let read = read_with_hudi_rs(&location, &Query::Snapshot).await;
    let read_schema = read.schema();
    let names: Vec<&str> = read_schema
        .fields()
        .iter()
        .take(5)
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, META_COLUMNS);
    let (logical, _) = logical_schema(&warehouse, table).await;
    let (meta, rows) = to_logical(&read, &logical);
    let strings = |b: &arrow_array::RecordBatch, c: &str| -> Vec<String> {
        let col =
            arrow_cast::cast(b.column_by_name(c).unwrap(), &arrow_schema::DataType::Utf8).unwrap();
        col.as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect()
    };
    assert_eq!(
        strings(&meta, "_hoodie_record_key"),
        strings(&rows, &keys[0])
    );
    for (f, t) in strings(&meta, "_hoodie_file_name")
        .iter()
        .zip(strings(&meta, "_hoodie_commit_time"))
    {
        let name = BaseFileName::parse(f).unwrap();
        assert!(name.instant >= t, "{f} holds a row of {t}");
    }
}

/// Records a rewritten file group carried over unchanged.
fn carried(s: &cdc_hudi::WriteStat) -> i64 {
    s.num_writes - s.num_inserts - s.num_update_writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_table_ends_equal() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let config = HudiSinkConfig {
        partition_fields: vec!["name".into()],
        ..HudiSinkConfig::default()
    };
    let root = dir.path().join("wh");
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_expected(&scenario, &warehouse, true).await;
    let location = warehouse.table_location(&scenario.tables[0].0);
    let partitions: Vec<String> = names(Path::new(&location))
        .into_iter()
        .filter(|n| n.starts_with("name="))
        .collect();
    assert!(partitions.len() > 5, "{partitions:?}");
    for p in &partitions {
        let meta = Path::new(&location)
            .join(p)
            .join(".hoodie_partition_metadata");
        let text = std::fs::read_to_string(&meta).unwrap();
        assert!(text.contains("partitionDepth=1"), "{text}");
    }
    let props =
        std::fs::read_to_string(Path::new(&location).join(".hoodie/hoodie.properties")).unwrap();
    assert!(props.contains("hoodie.table.partition.fields=name"));
    assert!(props.contains("hoodie.datasource.write.hive_style_partitioning=true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleaning_keeps_the_versions_of_the_last_commits() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    // Cleaning after every commit, so that the last one cleaned.
    let config = HudiSinkConfig {
        commits_retained: 2,
        clean_every: 1,
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 5, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_expected(&scenario, &warehouse, false).await;
    let (table, keys) = &scenario.tables[0];
    let location = warehouse.table_location(table);
    let mut files = Vec::new();
    parquet_files(Path::new(&location), "", &mut files);
    let mut per_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        let b = BaseFileName::parse(f.rsplit('/').next().unwrap()).unwrap();
        per_group.entry(b.file_id).or_default().push(b.instant);
    }
    let hoodie = names(&Path::new(&location).join(".hoodie"));
    let timeline = Timeline::from_names(hoodie.iter().map(String::as_str));
    // Commits that changed no file (checkpoint only) do not count toward the retained ones.
    let writes: Vec<String> = timeline
        .completed_writes()
        .filter(|i| {
            let text =
                std::fs::read_to_string(Path::new(&location).join(".hoodie").join(i.file_name()))
                    .unwrap();
            let meta: CommitMetadata = serde_json::from_str(&text).unwrap();
            meta.partition_to_write_stats
                .values()
                .any(|s| !s.is_empty())
                || meta
                    .partition_to_replace_file_ids
                    .is_some_and(|r| r.values().any(|ids| !ids.is_empty()))
        })
        .map(|i| i.time.clone())
        .collect();
    assert!(writes.len() > 5);
    let earliest = &writes[writes.len() - 2];
    for (id, versions) in &per_group {
        // At most one version older than the earliest retained commit (the one live then).
        let older = versions.iter().filter(|v| *v < earliest).count();
        assert!(
            older <= 1,
            "file group {id} keeps {versions:?} (earliest retained {earliest})"
        );
    }
    // Time travel to the earliest retained commit still works.
    let (logical, _) = logical_schema(&warehouse, table).await;
    let (meta, _) = to_logical(
        &read_with_hudi_rs(&location, &Query::AsOf(earliest.clone())).await,
        &logical,
    );
    crate::common::assert_unique_keys(&meta, "as of earliest retained");
    let _ = keys;
}

/// 100 rows spread over about ten file groups; updating one key rewrites only the file group
/// holding it (found by the numeric key range in the footers), and inserting a new key fills a
/// small file group instead of creating one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_rewrites_only_its_file_group() {
    use std::sync::Arc;

    use arrow_array::{BooleanArray, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use cdc_core::fold::ChangeSet;
    use cdc_core::model::{Checkpoint, TableId, UnchangedMask};
    use cdc_core::sink::{CommitOutcome, TableSink};

    let dir = tempfile::tempdir().unwrap();
    let config = HudiSinkConfig {
        max_file_size: 1 << 20,
        small_file_limit: 1 << 20,
        record_size_estimate: 100_000,
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(dir.path().to_str().unwrap(), config).unwrap();
    let table = TableId::new("public", "wide");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ]));
    let set = |ids: Vec<i64>, v: &str, offset: i64| {
        let n = ids.len();
        let upserts = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(vec![v; n])),
            ],
        )
        .unwrap();
        let mut checkpoint = Checkpoint::default();
        checkpoint.advance("t", 0, offset);
        ChangeSet {
            table: table.clone(),
            schema: schema.clone(),
            key_columns: Arc::from(vec!["id".to_string()]),
            truncate: false,
            upsert_unchanged: UnchangedMask::none(2),
            ignore_table_values: BooleanArray::from(vec![false; n]),
            deletes: upserts.project(&[0]).unwrap().slice(0, 0),
            upserts,
            checkpoint,
            first_offsets: Default::default(),
            events: n,
            max_source_ts_ms: None,
            history: None,
        }
    };
    let mut sink = warehouse.sink(&table);
    sink.apply(&set((0..100).collect(), "a", 0)).await.unwrap();
    let groups = sink.file_groups().await.unwrap();
    assert!(groups.len() >= 9, "{} file groups", groups.len());
    let CommitOutcome::Committed { version, .. } =
        sink.apply(&set(vec![42], "b", 1)).await.unwrap()
    else {
        panic!("not committed")
    };
    let location = warehouse.table_location(&table);
    let text =
        std::fs::read_to_string(Path::new(&location).join(format!(".hoodie/{version}.commit")))
            .unwrap();
    let meta: CommitMetadata = serde_json::from_str(&text).unwrap();
    let stats = &meta.partition_to_write_stats[""];
    assert_eq!(stats.len(), 1, "one file group rewritten");
    assert_eq!((stats[0].num_update_writes, stats[0].num_inserts), (1, 0));
    assert_ne!(stats[0].prev_commit, "null");
    // A new key goes to an existing small file group.
    sink.apply(&set(vec![1000], "c", 2)).await.unwrap();
    assert_eq!(sink.file_groups().await.unwrap().len(), groups.len());
    let rows = read_with_hudi_rs(&location, &Query::Snapshot).await;
    assert_eq!(rows.num_rows(), 101);
    crate::common::assert_unique_keys(&rows, "after updates");
}

/// A truncate is a `replacecommit` that replaces every live file group (operation
/// `INSERT_OVERWRITE_TABLE`); readers stop seeing the replaced groups, and time travel to the
/// commit before it still sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_is_a_replacecommit() {
    let scenario = Scenario::load("truncate");
    let dir = tempfile::tempdir().unwrap();
    let config = HudiSinkConfig {
        commits_retained: 0,
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 5, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_expected(&scenario, &warehouse, false).await;
    let mut replaces = 0;
    for (table, _) in &scenario.tables {
        let location = warehouse.table_location(table);
        let hoodie = Path::new(&location).join(".hoodie");
        let files = names(&hoodie);
        let timeline = Timeline::from_names(files.iter().map(String::as_str));
        let writes: Vec<_> = timeline.completed_writes().cloned().collect();
        for (k, w) in writes.iter().enumerate() {
            if w.action != "replacecommit" {
                continue;
            }
            replaces += 1;
            let text = std::fs::read_to_string(hoodie.join(w.file_name())).unwrap();
            let meta: CommitMetadata = serde_json::from_str(&text).unwrap();
            assert_eq!(meta.operation_type, "INSERT_OVERWRITE_TABLE");
            let replaced: usize = meta
                .partition_to_replace_file_ids
                .as_ref()
                .map_or(0, |m| m.values().map(Vec::len).sum());
            if k == 0 {
                continue;
            }
            // Rows before the truncate: as many as the replaced groups held.
            let before =
                read_with_hudi_rs(&location, &Query::AsOf(writes[k - 1].time.clone())).await;
            assert!(
                replaced > 0 || before.num_rows() == 0,
                "{}: nothing replaced",
                w.time
            );
            let after = read_with_hudi_rs(&location, &Query::AsOf(w.time.clone())).await;
            let written: i64 = meta
                .partition_to_write_stats
                .values()
                .flatten()
                .map(|s| s.num_writes)
                .sum();
            assert_eq!(
                after.num_rows() as i64,
                written,
                "{}: only the new rows",
                w.time
            );
        }
    }
    assert!(replaces > 0, "the scenario truncates");
}

/// The footer's Avro schema (`parquet.avro.schema`) agrees with the Parquet physical type of
/// every column of the `types` fixture (parquet-avro readers, such as Hudi's Java merge path
/// and Hive, refuse a mismatch): decimals are FIXED_LEN_BYTE_ARRAY and Avro `fixed` of the
/// same size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footer_avro_types_match_parquet_types() {
    use parquet::basic::Type as Physical;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::schema::types::Type;

    fn check(avro: &Value, t: &Type, path: &str, seen: &mut usize) {
        // Nullable: ["null", T].
        let avro = match avro.as_array() {
            Some(u) => u.iter().find(|v| *v != "null").unwrap(),
            None => avro,
        };
        let kind = avro
            .get("type")
            .and_then(Value::as_str)
            .or_else(|| avro.as_str())
            .unwrap_or_else(|| panic!("{path}: {avro}"));
        match t {
            Type::GroupType { fields, .. } => match kind {
                "record" => {
                    let avro_fields = avro["fields"].as_array().unwrap();
                    assert_eq!(avro_fields.len(), fields.len(), "{path}");
                    for (a, f) in avro_fields.iter().zip(fields) {
                        assert_eq!(a["name"], f.name(), "{path}");
                        check(&a["type"], f, &format!("{path}.{}", f.name()), seen);
                    }
                }
                "array" => {
                    // LIST → repeated group → element.
                    let element = match &fields[0].as_ref() {
                        Type::GroupType { fields, .. } => fields[0].clone(),
                        other => Arc::new((*other).clone()),
                    };
                    check(&avro["items"], &element, &format!("{path}[]"), seen);
                }
                other => panic!("{path}: Avro {other} for a Parquet group"),
            },
            Type::PrimitiveType {
                physical_type,
                type_length,
                ..
            } => {
                *seen += 1;
                let ok = match (kind, physical_type) {
                    ("boolean", Physical::BOOLEAN)
                    | ("int", Physical::INT32)
                    | ("long", Physical::INT64)
                    | ("float", Physical::FLOAT)
                    | ("double", Physical::DOUBLE)
                    | ("string" | "bytes" | "enum", Physical::BYTE_ARRAY) => true,
                    ("fixed", Physical::FIXED_LEN_BYTE_ARRAY) => {
                        avro["size"].as_i64() == Some(i64::from(*type_length))
                    }
                    _ => false,
                };
                assert!(
                    ok,
                    "{path}: Avro {avro} but Parquet {physical_type:?}({type_length})"
                );
            }
        }
    }

    use std::sync::Arc;
    let scenario = Scenario::load("types");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("wh");
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), HudiSinkConfig::default()).unwrap();
    sync(&scenario, dir.path(), 40, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let mut decimals = 0;
    for (table, _) in &scenario.tables {
        let location = warehouse.table_location(table);
        let mut files = Vec::new();
        parquet_files(Path::new(&location), "", &mut files);
        assert!(!files.is_empty());
        for f in &files {
            let file = std::fs::File::open(Path::new(&location).join(f)).unwrap();
            let reader = SerializedFileReader::new(file).unwrap();
            let meta = reader.metadata().file_metadata();
            let avro_text = meta
                .key_value_metadata()
                .unwrap()
                .iter()
                .find(|kv| kv.key == "parquet.avro.schema")
                .and_then(|kv| kv.value.clone())
                .unwrap();
            decimals += avro_text.matches("\"decimal\"").count();
            let avro: Value = serde_json::from_str(&avro_text).unwrap();
            let mut seen = 0;
            check(&avro, meta.schema(), f, &mut seen);
            assert!(seen >= 6, "{f}: only {seen} leaves");
        }
    }
    assert!(decimals > 0, "the types fixture has decimal columns");
}

/// One key column and two partition columns: `ComplexKeyGenerator`, whose record keys are
/// `field:value` (as Hudi 0.14.0 writes them); the table still ends equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complex_key_generator_prefixes_a_single_key_field() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let config = HudiSinkConfig {
        partition_fields: vec!["name".into(), "balance".into()],
        ..HudiSinkConfig::default()
    };
    let root = dir.path().join("wh");
    let warehouse = HudiWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_expected(&scenario, &warehouse, false).await;
    let (table, keys) = &scenario.tables[0];
    let location = warehouse.table_location(table);
    let props =
        std::fs::read_to_string(Path::new(&location).join(".hoodie/hoodie.properties")).unwrap();
    assert!(props.contains("org.apache.hudi.keygen.ComplexKeyGenerator"));
    let read = read_with_hudi_rs(&location, &Query::Snapshot).await;
    let (logical, _) = logical_schema(&warehouse, table).await;
    let (meta, rows) = to_logical(&read, &logical);
    let ids = arrow_cast::cast(
        rows.column_by_name(&keys[0]).unwrap(),
        &arrow_schema::DataType::Utf8,
    )
    .unwrap();
    let ids = ids
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap();
    let record_keys = meta
        .column_by_name("_hoodie_record_key")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap();
    assert!(rows.num_rows() > 0);
    for r in 0..rows.num_rows() {
        assert_eq!(
            record_keys.value(r),
            format!("{}:{}", keys[0], ids.value(r))
        );
    }
}
