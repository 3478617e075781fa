//! A concurrent writer on the same table: a second sink (another pipeline, another topic)
//! swaps the catalog pointer between the first sink's read of the table and its own swap. The
//! first sink's compare-and-swap fails, it redoes the change set on the new metadata, and both
//! writers' changes end up in the table with no duplicate key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use arrow_cast::display::array_value_to_string;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cdc_core::fold::ChangeSet;
use cdc_core::model::{Checkpoint, TableId, UnchangedMask};
use cdc_core::sink::upsert::{BeforeCommitHook, TestHooks};
use cdc_core::sink::TableSink;
use cdc_core::testing::conformance::OtherWriter;
use cdc_core::testing::{Scenario, OTHER_WRITER_TOPIC};
use cdc_iceberg::maintenance::orphan_files;
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, WriteMode};
use futures::FutureExt;

use crate::common::{assert_expected, read_with_iceberg_rust, sync, Readers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writer_between_read_and_swap_is_retried() {
    concurrent_writer_is_retried(IcebergSinkConfig::default()).await;
}

/// The concurrent-writer case on warehouses with the catalog settings of `base`.
pub async fn concurrent_writer_is_retried(base: IcebergSinkConfig) {
    concurrent_writer_is_retried_at(base, None).await
}

/// The concurrent-writer case on warehouses at `root` (default: a local directory); a remote
/// warehouse is read back by pyiceberg.
pub async fn concurrent_writer_is_retried_at(base: IcebergSinkConfig, root: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("wh").display().to_string();
    let root = root.unwrap_or(&local);
    let other = IcebergWarehouse::new(root, base.clone()).unwrap();
    // Before the pipeline's first six swap attempts, the other writer commits a row.
    let writer = OtherWriter::new(Arc::new(other.clone()), 6);
    let config = IcebergSinkConfig {
        test_hooks: writer.hook(),
        ..base
    };
    let warehouse = IcebergWarehouse::new(root, config).unwrap();
    let remote = root != local;
    sync_beside_other_writer(&writer, &warehouse, 6, remote).await;
}

/// Syncs the `crud` fixture into `warehouse` while `writer` commits `times` rows of its own to
/// the same table in the window before the sink's swaps; asserts every swap it beat was
/// redone, its rows are in the table once, and (after it deletes them) the table is exact. A
/// `remote` warehouse is read back by pyiceberg only.
pub async fn sync_beside_other_writer(
    writer: &OtherWriter,
    warehouse: &IcebergWarehouse,
    times: i64,
    remote: bool,
) {
    let scenario = Scenario::load("crud");
    let table = TableId::new("public", "customers");
    let dir = tempfile::tempdir().unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), warehouse)
        .await
        .unwrap();
    let concurrent = writer.commits();
    assert_eq!(concurrent, times);
    assert!(
        warehouse.conflicts_retried() >= concurrent as u64,
        "{concurrent} concurrent commits but {} conflicts retried",
        warehouse.conflicts_retried()
    );

    // The other writer's rows are all there, once; it then deletes them again.
    let rows = read_with_iceberg_rust(warehouse, &table).await;
    let schema = rows.schema();
    let ids = rows
        .column_by_name("id")
        .unwrap()
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap()
        .clone();
    for id in writer.ids() {
        assert_eq!(ids.iter().filter(|v| *v == Some(id)).count(), 1, "row {id}");
    }
    writer.undo(&schema).await;
    let readers = match remote {
        false => Readers::ALL,
        true => Readers {
            pyiceberg: true,
            duckdb: false,
        },
    };
    assert_expected(&scenario, warehouse, readers).await;
    // The lost attempts' files were deleted before each retry.
    let orphans = orphan_files(warehouse, &table).await.unwrap();
    assert!(orphans.is_empty(), "{orphans:#?}");
}

/// A change set on `schema` (id, name, email): upserts `(id, name, email)` (`None` email =
/// unchanged, a TOAST cell) and deletes `deletes`, at `topic` `offset`.
fn change_set(
    schema: &SchemaRef,
    upserts: &[(i32, &str, Option<&str>)],
    deletes: &[i32],
    topic: &str,
    offset: i64,
) -> ChangeSet {
    let table = TableId::new("public", "overlap");
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from_iter_values(upserts.iter().map(|u| u.0))) as ArrayRef,
            Arc::new(StringArray::from_iter_values(upserts.iter().map(|u| u.1))),
            Arc::new(StringArray::from_iter(upserts.iter().map(|u| u.2))),
        ],
    )
    .unwrap();
    let unchanged = BooleanArray::from_iter(upserts.iter().map(|u| Some(u.2.is_none())));
    let keys = RecordBatch::try_new(
        Arc::new(schema.project(&[0]).unwrap()),
        vec![Arc::new(Int32Array::from(deletes.to_vec())) as ArrayRef],
    )
    .unwrap();
    let mut checkpoint = Checkpoint::default();
    checkpoint.advance(topic, 0, offset);
    ChangeSet {
        table,
        schema: schema.clone(),
        key_columns: Arc::from(vec!["id".to_string()]),
        truncate: false,
        upsert_unchanged: UnchangedMask::new(vec![None, None, Some(unchanged)]),
        ignore_table_values: BooleanArray::from(vec![false; upserts.len()]),
        upserts: rows,
        deletes: keys,
        checkpoint,
        first_offsets: Default::default(),
        events: upserts.len() + deletes.len(),
        max_source_ts_ms: None,
        history: None,
    }
}

/// The table's rows as `id -> (name, email)`, failing on a duplicate key.
async fn rows_by_id(
    warehouse: &IcebergWarehouse,
    table: &TableId,
) -> HashMap<i32, (String, String)> {
    let rows = read_with_iceberg_rust(warehouse, table).await;
    let ids = arrow_cast::cast(rows.column_by_name("id").unwrap(), &DataType::Int32).unwrap();
    let ids = ids.as_any().downcast_ref::<Int32Array>().unwrap();
    let text = |c: &str, i: usize| {
        let col = rows.column_by_name(c).unwrap();
        if col.is_null(i) {
            "NULL".to_string()
        } else {
            array_value_to_string(col, i).unwrap()
        }
    };
    let mut out = HashMap::new();
    for i in 0..rows.num_rows() {
        let row = (text("name", i), text("email", i));
        assert!(
            out.insert(ids.value(i), row).is_none(),
            "key {} twice",
            ids.value(i)
        );
    }
    out
}

/// The other writer updates and deletes exactly the keys the sink's change set changes,
/// between the sink's read and its swap. The redone attempt must locate the rows again (stale
/// positions would leave the other writer's rows as duplicates) and take unchanged TOAST cells
/// from the other writer's rows (stale old rows would bring back overwritten values). The lost
/// attempt leaves no orphan files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writer_changing_the_same_keys_is_retried_on_fresh_rows() {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
    ]));
    let table = TableId::new("public", "overlap");
    for mode in [
        WriteMode::PositionDeletes,
        WriteMode::CopyOnWrite,
        WriteMode::EqualityDeletes,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("wh");
        let plain = IcebergSinkConfig {
            write_mode: mode,
            ..IcebergSinkConfig::default()
        };
        let other = IcebergWarehouse::new(root.to_str().unwrap(), plain.clone()).unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let (hook_other, hook_armed, hook_table, hook_schema) =
            (other.clone(), armed.clone(), table.clone(), schema.clone());
        let hook = BeforeCommitHook(Arc::new(move || {
            let (other, armed, table, schema) = (
                hook_other.clone(),
                hook_armed.clone(),
                hook_table.clone(),
                hook_schema.clone(),
            );
            async move {
                if !armed.swap(false, Ordering::SeqCst) {
                    return;
                }
                let set = change_set(
                    &schema,
                    &[
                        (1, "other", Some("other-e1")),
                        (2, "other", Some("other-e2")),
                        (4, "other", Some("other-e4")),
                    ],
                    &[3],
                    OTHER_WRITER_TOPIC,
                    0,
                );
                other
                    .sink(&table)
                    .apply(&set)
                    .await
                    .expect("other writer commits");
            }
            .boxed()
        }));
        let config = IcebergSinkConfig {
            test_hooks: TestHooks::before_commit(hook),
            ..plain
        };
        let warehouse = IcebergWarehouse::new(root.to_str().unwrap(), config).unwrap();
        let mut sink = warehouse.sink(&table);
        let seed: Vec<(i32, String, String)> = (1..=6)
            .map(|i| (i, format!("v0-{i}"), format!("e0-{i}")))
            .collect();
        let seed: Vec<(i32, &str, Option<&str>)> = seed
            .iter()
            .map(|(i, n, e)| (*i, n.as_str(), Some(e.as_str())))
            .collect();
        sink.apply(&change_set(&schema, &seed, &[], "main", 0))
            .await
            .unwrap();

        armed.store(true, Ordering::SeqCst);
        let batch = change_set(
            &schema,
            &[
                (1, "new", Some("new-e1")),
                (2, "new", None),
                (3, "new", Some("new-e3")),
            ],
            &[4],
            "main",
            1,
        );
        sink.apply(&batch).await.unwrap();
        assert!(
            !armed.load(Ordering::SeqCst),
            "{mode:?}: the hook never ran"
        );
        assert_eq!(warehouse.conflicts_retried(), 1, "{mode:?}");

        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        let expected = HashMap::from([
            (1, s("new", "new-e1")),
            // Unchanged email: the other writer's value, the row the retry read.
            (2, s("new", "other-e2")),
            (3, s("new", "new-e3")),
            (5, s("v0-5", "e0-5")),
            (6, s("v0-6", "e0-6")),
        ]);
        assert_eq!(rows_by_id(&warehouse, &table).await, expected, "{mode:?}");
        let orphans = orphan_files(&warehouse, &table).await.unwrap();
        assert!(
            orphans.is_empty(),
            "{mode:?}: the lost attempt left {orphans:#?}"
        );
    }
}
