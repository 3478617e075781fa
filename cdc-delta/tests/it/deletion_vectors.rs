//! Deletion vectors: a small change to a big file marks rows in the file's deletion vector
//! instead of rewriting it; later changes union into it; every read (the sink's own probes and
//! TOAST lookups, delta-rs, DuckDB) honours it; with `deletion_vectors: false` tables stay
//! copy-on-write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId, UnchangedMask};
use cdc_core::sink::{CommitOutcome, TableSink};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};
use serde_json::Value;

use crate::common::{read_with_delta_rs, read_with_duckdb};

fn table() -> TableId {
    TableId::new("public", "accounts")
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// Upserts `(id, name, note)` (a `None` note is an unchanged TOAST cell) and deletes of `ids`.
fn change(upserts: &[(i64, &str, Option<&str>)], deletes: &[i64], offset: i64) -> ChangeSet {
    let schema = schema();
    let ids = Int64Array::from_iter_values(upserts.iter().map(|u| u.0));
    let names = StringArray::from_iter_values(upserts.iter().map(|u| u.1));
    let notes: StringArray = upserts.iter().map(|u| u.2).collect();
    let unchanged = BooleanArray::from_iter(upserts.iter().map(|u| Some(u.2.is_none())));
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(ids) as ArrayRef, Arc::new(names), Arc::new(notes)],
    )
    .unwrap();
    let key_schema = Arc::new(Schema::new(vec![schema.field(0).clone()]));
    let deletes = RecordBatch::try_new(
        key_schema,
        vec![Arc::new(Int64Array::from(deletes.to_vec())) as ArrayRef],
    )
    .unwrap();
    let mut checkpoint = Checkpoint::default();
    checkpoint.advance("db.public.accounts", 0, offset);
    ChangeSet {
        table: table(),
        schema: schema.clone(),
        key_columns: Arc::from(vec!["id".to_string()]),
        truncate: false,
        upsert_unchanged: UnchangedMask::new(vec![None, None, Some(unchanged)]),
        ignore_table_values: BooleanArray::from(vec![false; rows.num_rows()]),
        events: rows.num_rows() + deletes.num_rows(),
        upserts: rows,
        deletes,
        checkpoint,
        first_offsets: Default::default(),
        max_source_ts_ms: None,
        history: None,
    }
}

/// Every action of every commit, in order, with its commit version.
fn log_actions(table_dir: &Path) -> Vec<(u64, Value)> {
    let mut commits: Vec<PathBuf> = std::fs::read_dir(table_dir.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    commits.sort();
    commits
        .iter()
        .flat_map(|p| {
            let version: u64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| (version, serde_json::from_str::<Value>(l).unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `add` and `remove` actions of one commit.
fn file_actions(table_dir: &Path, version: u64) -> (Vec<Value>, Vec<Value>) {
    let actions: Vec<Value> = log_actions(table_dir)
        .into_iter()
        .filter(|(v, _)| *v == version)
        .map(|(_, a)| a)
        .collect();
    let of = |kind: &str| {
        actions
            .iter()
            .filter_map(|a| a.get(kind).cloned())
            .collect::<Vec<_>>()
    };
    (of("add"), of("remove"))
}

fn committed_version(outcome: CommitOutcome) -> u64 {
    match outcome {
        CommitOutcome::Committed { version, .. } => version.parse().unwrap(),
        other => panic!("not committed: {other:?}"),
    }
}

/// The table's rows as id -> (name, note), read by delta-rs and (when `duckdb`) by DuckDB,
/// which must agree.
async fn rows(warehouse: &DeltaWarehouse, duckdb: bool) -> BTreeMap<i64, (String, String)> {
    let (batch, _) = read_with_delta_rs(warehouse, &table()).await;
    let ours = to_map(&batch);
    if duckdb {
        let dir = warehouse.table_url(&table()).to_file_path().unwrap();
        let theirs = to_map(&read_with_duckdb(dir.to_str().unwrap(), &batch.schema()));
        assert_eq!(ours, theirs, "delta-rs and DuckDB disagree");
    }
    ours
}

fn to_map(batch: &RecordBatch) -> BTreeMap<i64, (String, String)> {
    let col = |name: &str| batch.column_by_name(name).unwrap().clone();
    let ids = arrow_cast::cast(&col("id"), &DataType::Int64).unwrap();
    let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
    let text = |name: &str| {
        let c = arrow_cast::cast(&col(name), &DataType::Utf8).unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap().clone();
        (0..c.len())
            .map(|i| {
                if c.is_valid(i) {
                    c.value(i).to_string()
                } else {
                    String::new()
                }
            })
            .collect::<Vec<_>>()
    };
    let (names, notes) = (text("name"), text("note"));
    let mut map = BTreeMap::new();
    for i in 0..ids.len() {
        let prior = map.insert(ids.value(i), (names[i].clone(), notes[i].clone()));
        assert!(prior.is_none(), "key {} twice", ids.value(i));
    }
    map
}

const BIG: i64 = 1_000;

/// A table of one file with ids 0..BIG, and the expected state.
async fn big_table(
    config: DeltaSinkConfig,
) -> (
    tempfile::TempDir,
    DeltaWarehouse,
    PathBuf,
    BTreeMap<i64, (String, String)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = DeltaWarehouse::new(dir.path().join("wh").to_str().unwrap(), config).unwrap();
    let names: Vec<String> = (0..BIG).map(|i| format!("n{i}")).collect();
    let notes: Vec<String> = (0..BIG).map(|i| format!("toast{i}")).collect();
    let rows: Vec<(i64, &str, Option<&str>)> = (0..BIG)
        .map(|i| {
            (
                i,
                names[i as usize].as_str(),
                Some(notes[i as usize].as_str()),
            )
        })
        .collect();
    warehouse
        .sink(&table())
        .apply(&change(&rows, &[], 0))
        .await
        .unwrap();
    let expected = (0..BIG)
        .map(|i| (i, (format!("n{i}"), format!("toast{i}"))))
        .collect();
    let table_dir = warehouse.table_url(&table()).to_file_path().unwrap();
    (dir, warehouse, table_dir, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_changes_write_deletion_vectors_that_union() {
    let (_dir, warehouse, table_dir, mut expected) = big_table(DeltaSinkConfig::default()).await;
    let protocol = log_actions(&table_dir)
        .into_iter()
        .find_map(|(_, a)| a.get("protocol").cloned())
        .unwrap();
    assert_eq!(protocol["minReaderVersion"], 3);
    assert_eq!(protocol["minWriterVersion"], 7);
    assert!(protocol["readerFeatures"]
        .as_array()
        .unwrap()
        .contains(&Value::from("deletionVectors")));
    let big_file = log_actions(&table_dir)
        .into_iter()
        .find_map(|(_, a)| Some(a.get("add")?["path"].as_str()?.to_string()))
        .unwrap();

    // (a) A small update and delete: the big file comes back with a deletion vector.
    let mut sink = warehouse.sink(&table());
    let v = committed_version(
        sink.apply(&change(
            &[
                (3, "three", Some("x")),
                (7, "seven", Some("y")),
                (5000, "new", Some("z")),
            ],
            &[10, 11, 12],
            1,
        ))
        .await
        .unwrap(),
    );
    let (adds, removes) = file_actions(&table_dir, v);
    assert_eq!(removes.len(), 1);
    assert_eq!(removes[0]["path"], big_file.as_str());
    assert!(removes[0].get("deletionVector").is_none());
    let readded = adds
        .iter()
        .find(|a| a["path"] == big_file.as_str())
        .unwrap();
    assert_eq!(readded["deletionVector"]["cardinality"], 5);
    assert_eq!(readded["deletionVector"]["storageType"], "u");
    assert!(readded["stats"]
        .as_str()
        .unwrap()
        .contains("\"tightBounds\":false"));
    assert_eq!(adds.len(), 2, "one new file for the upserts: {adds:?}");
    for k in [10, 11, 12] {
        expected.remove(&k);
    }
    expected.insert(3, ("three".into(), "x".into()));
    expected.insert(7, ("seven".into(), "y".into()));
    expected.insert(5000, ("new".into(), "z".into()));
    assert_eq!(rows(&warehouse, true).await, expected);

    // (b) More deletes on the same file union into its deletion vector; deleting keys whose
    // old copies the deletion vector already hides, or updating them again, touches only their
    // live copies; an unchanged TOAST cell comes from the live old row.
    let v = committed_version(
        sink.apply(&change(
            &[(3, "three again", None), (20, "twenty", None)],
            &[7, 13, 14],
            2,
        ))
        .await
        .unwrap(),
    );
    let (adds, removes) = file_actions(&table_dir, v);
    let old = removes
        .iter()
        .find(|r| r["path"] == big_file.as_str())
        .unwrap();
    assert_eq!(old["deletionVector"]["cardinality"], 5);
    let readded = adds
        .iter()
        .find(|a| a["path"] == big_file.as_str())
        .unwrap();
    assert_eq!(
        readded["deletionVector"]["cardinality"], 8,
        "5 + 13, 14, 20"
    );
    for k in [7, 13, 14] {
        expected.remove(&k);
    }
    expected.insert(3, ("three again".into(), "x".into()));
    expected.insert(20, ("twenty".into(), "toast20".into()));
    assert_eq!(rows(&warehouse, true).await, expected);
    // The sink's own reads see the same: a key deleted above is absent, so an upsert of it
    // with an unchanged cell gets the default (null), not the hidden old value.
    sink.apply(&change(&[(13, "back", None)], &[], 3))
        .await
        .unwrap();
    expected.insert(13, ("back".into(), String::new()));
    assert_eq!(rows(&warehouse, true).await, expected);

    // Many changes to the file: it is rewritten, its deletion vector applied and dropped.
    let many: Vec<(i64, &str, Option<&str>)> = (100..500).map(|i| (i, "bulk", Some("b"))).collect();
    let v = committed_version(sink.apply(&change(&many, &[], 4)).await.unwrap());
    let (adds, removes) = file_actions(&table_dir, v);
    assert!(removes.iter().any(|r| r["path"] == big_file.as_str()));
    assert!(adds.iter().all(|a| a["path"] != big_file.as_str()));
    assert!(adds.iter().all(|a| a.get("deletionVector").is_none()));
    for i in 100..500 {
        expected.insert(i, ("bulk".into(), "b".into()));
    }
    assert_eq!(rows(&warehouse, true).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_deletion_vectors_tables_stay_copy_on_write() {
    let off = DeltaSinkConfig {
        deletion_vectors: false,
        ..DeltaSinkConfig::default()
    };
    // A table created with them off keeps protocol 1/2 and is rewritten.
    let (_dir, warehouse, table_dir, mut expected) = big_table(off.clone()).await;
    let protocol = log_actions(&table_dir)
        .into_iter()
        .find_map(|(_, a)| a.get("protocol").cloned())
        .unwrap();
    assert!(
        protocol["minReaderVersion"].as_i64().unwrap() < 3,
        "{protocol}"
    );
    let v = committed_version(
        warehouse
            .sink(&table())
            .apply(&change(&[(1, "one", None)], &[2], 1))
            .await
            .unwrap(),
    );
    let (adds, removes) = file_actions(&table_dir, v);
    assert_eq!(removes.len(), 1);
    assert!(adds.iter().all(|a| a.get("deletionVector").is_none()));
    assert!(adds.iter().all(|a| a["path"] != removes[0]["path"]));
    expected.remove(&2);
    expected.insert(1, ("one".into(), "toast1".into()));
    assert_eq!(rows(&warehouse, true).await, expected);

    // A table with deletion vectors, written by a sink with them off: copy-on-write too, and
    // the deletion vectors already there are applied when its files are rewritten.
    let (_dir, warehouse, table_dir, mut expected) = big_table(DeltaSinkConfig::default()).await;
    warehouse
        .sink(&table())
        .apply(&change(&[(1, "one", None)], &[2], 1))
        .await
        .unwrap();
    let cow = DeltaWarehouse::new(
        table_dir
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_str()
            .unwrap(),
        off,
    )
    .unwrap();
    let v = committed_version(
        cow.sink(&table())
            .apply(&change(&[(1, "uno", None)], &[4], 2))
            .await
            .unwrap(),
    );
    let (adds, _) = file_actions(&table_dir, v);
    assert!(adds.iter().all(|a| a.get("deletionVector").is_none()));
    let live_dvs = log_actions(&table_dir)
        .into_iter()
        .filter(|(v2, a)| *v2 == v && a.get("remove").is_some())
        .count();
    assert_eq!(live_dvs, 2, "the big file and the first upsert's file");
    expected.remove(&2);
    expected.remove(&4);
    expected.insert(1, ("uno".into(), "toast1".into()));
    assert_eq!(rows(&cow, true).await, expected);
}

/// A schema change that needs every row rewritten (a new column with a default) rewrites files
/// that carry deletion vectors with those applied: deleted rows stay deleted, the others show
/// the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_for_a_schema_change_applies_deletion_vectors() {
    let (_dir, warehouse, table_dir, mut expected) = big_table(DeltaSinkConfig::default()).await;
    let mut sink = warehouse.sink(&table());
    sink.apply(&change(&[(1, "one", Some("x"))], &[2, 3], 1))
        .await
        .unwrap();
    expected.remove(&2);
    expected.remove(&3);
    expected.insert(1, ("one".into(), "x".into()));

    let tier = Field::new("tier", DataType::Int64, true).with_metadata(
        [(
            cdc_core::decode::debezium::types::META_DEFAULT.to_string(),
            "7".to_string(),
        )]
        .into(),
    );
    let mut fields: Vec<Field> = schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(tier);
    let evolved: SchemaRef = Arc::new(Schema::new(fields));
    let base = change(&[(5000, "new", Some("n"))], &[], 2);
    let upserts = RecordBatch::try_new(
        evolved.clone(),
        vec![
            base.upserts.column(0).clone(),
            base.upserts.column(1).clone(),
            base.upserts.column(2).clone(),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    let set = ChangeSet {
        schema: evolved,
        upsert_unchanged: UnchangedMask::none(4),
        upserts,
        ..base
    };
    let v = committed_version(sink.apply(&set).await.unwrap());
    let (adds, removes) = file_actions(&table_dir, v);
    assert_eq!(removes.len(), 2, "both files rewritten");
    assert!(removes.iter().any(|r| r.get("deletionVector").is_some()));
    assert!(adds.iter().all(|a| a.get("deletionVector").is_none()));
    expected.insert(5000, ("new".into(), "n".into()));
    assert_eq!(rows(&warehouse, true).await, expected);
    let (batch, _) = read_with_delta_rs(&warehouse, &table()).await;
    let ids = batch.column_by_name("id").unwrap();
    let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
    let tiers = batch.column_by_name("tier").unwrap();
    let tiers = tiers.as_any().downcast_ref::<Int64Array>().unwrap();
    for i in 0..batch.num_rows() {
        let want = if ids.value(i) == 5000 { 1 } else { 7 };
        assert_eq!(tiers.value(i), want, "id {}", ids.value(i));
    }
}

/// Two writers extending the same file's deletion vector: the one that commits second conflicts
/// (both remove the file with the same old deletion vector), redoes its change set on the new
/// version, and its deletion vector includes the first writer's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletion_vectors_on_one_file_both_count() {
    use std::sync::atomic::{AtomicBool, Ordering};

    use cdc_core::sink::upsert::{BeforeCommitHook, TestHooks};
    use futures::FutureExt;

    let (_dir, other, table_dir, mut expected) = big_table(DeltaSinkConfig::default()).await;
    let root = table_dir.parent().unwrap().parent().unwrap().to_path_buf();
    let done = Arc::new(AtomicBool::new(false));
    let (hook_other, hook_done) = (other.clone(), done.clone());
    let hook = BeforeCommitHook(Arc::new(move || {
        let (other, done) = (hook_other.clone(), hook_done.clone());
        async move {
            if done.swap(true, Ordering::SeqCst) {
                return;
            }
            let mut set = change(&[(600, "other", Some("o"))], &[500], 0);
            set.checkpoint = Checkpoint::default();
            set.checkpoint.advance("other.public.accounts", 0, 1);
            other.sink(&table()).apply(&set).await.unwrap();
        }
        .boxed()
    }));
    let warehouse = DeltaWarehouse::new(
        root.to_str().unwrap(),
        DeltaSinkConfig {
            test_hooks: TestHooks::before_commit(hook),
            ..DeltaSinkConfig::default()
        },
    )
    .unwrap();
    let v = committed_version(
        warehouse
            .sink(&table())
            .apply(&change(&[(7, "seven", None)], &[10], 1))
            .await
            .unwrap(),
    );
    assert!(warehouse.conflicts_retried() >= 1);
    let (adds, _) = file_actions(&table_dir, v);
    let dv = adds
        .iter()
        .find_map(|a| a.get("deletionVector"))
        .expect("the big file's deletion vector");
    assert_eq!(dv["cardinality"], 4, "500, 600 (other writer), 7, 10");
    for k in [10, 500] {
        expected.remove(&k);
    }
    expected.insert(600, ("other".into(), "o".into()));
    expected.insert(7, ("seven".into(), "toast7".into()));
    assert_eq!(rows(&warehouse, true).await, expected);
}
