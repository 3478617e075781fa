//! Candidate data files are pruned by the manifest bounds of the key column: a change set opens
//! only the data files whose key range holds a changed key. The test moves every other data
//! file out of the table while the change set applies, so reading one of them fails the apply.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use cdc_core::model::TableId;
use cdc_core::sink::TableSink;
use cdc_core::testing::keyed_change;
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::read_with_iceberg_rust;

const TOPIC: &str = "dbserver1.public.accounts";

fn parquet_files(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect()
}

/// Moves the files named `files` from the folder `from` to the folder `to`.
fn move_files(files: &[PathBuf], from: &Path, to: &Path) {
    for f in files {
        std::fs::rename(from.join(f), to.join(f)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_files_whose_key_range_holds_a_changed_key_are_read() {
    let table = TableId::new("public", "accounts");
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let warehouse = IcebergWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        IcebergSinkConfig::default(),
    )
    .unwrap();
    let mut sink = warehouse.sink(&table);
    // Three data files holding the keys 1-100, 101-200 and 201-300.
    let data_dir = dir.path().join("wh/public/accounts/data");
    let mut files_by_range: Vec<PathBuf> = Vec::new();
    for (offset, first) in [1, 101, 201].into_iter().enumerate() {
        let ids: Vec<i32> = (first..first + 100).collect();
        sink.apply(&keyed_change(
            &table,
            &schema,
            &ids,
            "v1",
            true,
            (TOPIC, offset as i64),
        ))
        .await
        .unwrap();
        let before: BTreeSet<PathBuf> = files_by_range.iter().cloned().collect();
        let new: Vec<PathBuf> = parquet_files(&data_dir)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert_eq!(new.len(), 1, "one data file per commit: {new:?}");
        files_by_range.extend(new);
    }
    let names: Vec<PathBuf> = files_by_range
        .iter()
        .map(|p| PathBuf::from(p.file_name().unwrap()))
        .collect();
    let aside = dir.path().join("aside");
    std::fs::create_dir(&aside).unwrap();

    // An update and a delete of keys in the middle file: the other two are never opened.
    let outer = [names[0].clone(), names[2].clone()];
    move_files(&outer, &data_dir, &aside);
    sink.apply(&keyed_change(
        &table,
        &schema,
        &[150],
        "v2",
        true,
        (TOPIC, 3),
    ))
    .await
    .expect("the update reads only the file of keys 101-200");
    sink.apply(&keyed_change(
        &table,
        &schema,
        &[120],
        "",
        false,
        (TOPIC, 4),
    ))
    .await
    .expect("the delete reads only the file of keys 101-200");
    move_files(&outer, &aside, &data_dir);

    // Inserts of keys beyond every file's range open no data file at all.
    move_files(&names, &data_dir, &aside);
    sink.apply(&keyed_change(
        &table,
        &schema,
        &[1000, 1001],
        "new",
        true,
        (TOPIC, 5),
    ))
    .await
    .expect("new keys read no data file");
    move_files(&names, &aside, &data_dir);

    // And the pruned table is right.
    let rows = read_with_iceberg_rust(&warehouse, &table).await;
    let ids = rows
        .column_by_name("id")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let names_col = rows
        .column_by_name("name")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let mut got: Vec<(i64, String)> = (0..rows.num_rows())
        .map(|i| (ids.value(i), names_col.value(i).to_string()))
        .collect();
    got.sort();
    let mut want: Vec<(i64, String)> = (1..=300)
        .filter(|id| *id != 120)
        .map(|id| (id, if id == 150 { "v2" } else { "v1" }.to_string()))
        .chain([(1000, "new".to_string()), (1001, "new".to_string())])
        .collect();
    want.sort();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    assert_eq!(names_col.null_count(), 0);

    // The control: a change of a key inside a hidden file's range does read it, and fails.
    move_files(&names[1..2], &data_dir, &aside);
    let err = sink
        .apply(&keyed_change(
            &table,
            &schema,
            &[160],
            "v3",
            true,
            (TOPIC, 6),
        ))
        .await
        .expect_err("an update of key 160 reads the file of keys 101-200");
    // The error chain names the file it could not read.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(chain.contains(names[1].to_str().unwrap()), "{chain}");
}
