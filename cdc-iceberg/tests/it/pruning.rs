//! Candidate data files are pruned by the manifest bounds of the first key column (integer and
//! text keys): a change set opens only the data files whose key range holds a changed key. The
//! test moves every other data file out of the table while the change set applies, so reading
//! one of them fails the apply.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, StringArray};
use arrow_cast::display::array_value_to_string;
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

/// The error and its sources, one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_files_whose_key_range_holds_a_changed_key_are_read() {
    // Keys 1000-1099, 2000-2099 and 3000-3099 are disjoint ranges as numbers and as text.
    for key_type in [DataType::Int64, DataType::Utf8] {
        prune(key_type).await;
    }
}

async fn prune(key_type: DataType) {
    let table = TableId::new("public", "accounts");
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", key_type.clone(), false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let warehouse = IcebergWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        IcebergSinkConfig::default(),
    )
    .unwrap();
    let mut sink = warehouse.sink(&table);
    let change = |ids: &[i32], name: &str, upsert: bool, offset: i64| {
        keyed_change(&table, &schema, ids, name, upsert, (TOPIC, offset))
    };
    // Three data files, one per key range.
    let data_dir = dir.path().join("wh/public/accounts/data");
    let mut files: Vec<PathBuf> = Vec::new();
    for (offset, first) in [1000, 2000, 3000].into_iter().enumerate() {
        let ids: Vec<i32> = (first..first + 100).collect();
        sink.apply(&change(&ids, "v1", true, offset as i64))
            .await
            .unwrap();
        let new: Vec<PathBuf> = parquet_files(&data_dir)
            .into_iter()
            .map(|p| PathBuf::from(p.file_name().unwrap()))
            .filter(|p| !files.contains(p))
            .collect();
        assert_eq!(
            new.len(),
            1,
            "{key_type}: one data file per commit: {new:?}"
        );
        files.extend(new);
    }
    let aside = dir.path().join("aside");
    std::fs::create_dir(&aside).unwrap();

    // An update and a delete of keys in the middle file: the other two are never opened.
    let outer = [files[0].clone(), files[2].clone()];
    move_files(&outer, &data_dir, &aside);
    sink.apply(&change(&[2050], "v2", true, 3))
        .await
        .unwrap_or_else(|e| panic!("{key_type}: the update read another file: {}", chain(&e)));
    sink.apply(&change(&[2020], "", false, 4))
        .await
        .unwrap_or_else(|e| panic!("{key_type}: the delete read another file: {}", chain(&e)));
    move_files(&outer, &aside, &data_dir);

    // Inserts of keys beyond every file's range open no data file at all.
    move_files(&files, &data_dir, &aside);
    sink.apply(&change(&[9000, 9001], "new", true, 5))
        .await
        .unwrap_or_else(|e| panic!("{key_type}: new keys read a data file: {}", chain(&e)));
    move_files(&files, &aside, &data_dir);

    // And the pruned table is right.
    let rows = read_with_iceberg_rust(&warehouse, &table).await;
    let ids = rows.column_by_name("id").unwrap();
    let names = rows
        .column_by_name("name")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.null_count(), 0);
    let mut got: Vec<(String, String)> = (0..rows.num_rows())
        .map(|i| {
            let id = array_value_to_string(ids, i).unwrap();
            (id, names.value(i).to_string())
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = [1000, 2000, 3000]
        .into_iter()
        .flat_map(|first| first..first + 100)
        .filter(|id| *id != 2020)
        .map(|id| (id, if id == 2050 { "v2" } else { "v1" }))
        .chain([(9000, "new"), (9001, "new")])
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{key_type}");

    // The control: a change of a key inside a hidden file's range does read it, and fails.
    move_files(&files[1..2], &data_dir, &aside);
    let err = sink
        .apply(&change(&[2060], "v3", true, 6))
        .await
        .expect_err("an update of key 2060 reads the file of keys 2000-2099");
    let err = chain(&err);
    assert!(
        err.contains(files[1].to_str().unwrap()),
        "{key_type}: {err}"
    );
}
