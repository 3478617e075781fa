//! Hudi tables on S3 (moto_server on 127.0.0.1): sync, read back with hudi-rs, replay, and
//! restart after a crash.

use std::collections::HashMap;

use cdc_core::sink::upsert::{FailPoint, TestHooks};
use cdc_core::testing::{MotoServer, Scenario};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use hudi::table::{ReadOptions, Table};

use crate::common::{
    assert_hudi_rs_reads_expected_at, assert_unique_keys, logical_schema, sync, to_logical,
};

/// Each test exports its own moto server's address to the environment, which the stores read:
/// one test at a time.
pub static MOTO_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_into_hudi_on_s3() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("fixtures");
    moto.export_env();
    crate::common::every_fixture_at("s3://fixtures/wh", moto.storage_options()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_hudi_on_s3() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("lake");
    // The sink takes S3 settings from the environment, like the raw-file source.
    moto.export_env();
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let crashing = HudiWarehouse::new(
        "s3://lake/wh",
        HudiSinkConfig {
            test_hooks: TestHooks::fail_at(FailPoint::AfterDataFiles, 2),
            ..HudiSinkConfig::default()
        },
    )
    .unwrap();
    let err = sync(&scenario, dir.path(), 30, HashMap::new(), &crashing)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fail point"), "{err}");
    let table = &scenario.tables[0].0;
    let location = crashing.table_location(table);
    let left = unfinished_base_files(&location).await;
    assert!(!left.is_empty(), "the crash leaves its base files on S3");
    let warehouse = HudiWarehouse::new("s3://lake/wh", HudiSinkConfig::default()).unwrap();
    let stats = sync(&scenario, dir.path(), 30, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert!(stats.commits > 1);
    // The restart rolled the crashed instant back: its base files are gone from the bucket.
    assert_eq!(unfinished_base_files(&location).await, Vec::<String>::new());
    let options = moto.storage_options();
    assert_hudi_rs_reads_expected_at(&scenario, &warehouse, "s3://lake/wh/", options).await;
    let again = sync(&scenario, dir.path(), 30, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
}

/// Partition values with `/` and `%` are escaped once: the S3 key's directory is exactly the
/// `_hoodie_partition_path` of its rows and write stats (`name=a%2Fb`, not `name=a%252Fb`),
/// and updates find their file groups again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_values_are_escaped_once_on_s3() {
    use arrow_schema::{DataType, Field, Schema};
    use cdc_core::model::TableId;
    use cdc_core::sink::TableSink;
    use futures::TryStreamExt;
    use std::sync::Arc;

    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("lake");
    moto.export_env();
    let warehouse = HudiWarehouse::new(
        "s3://lake/escaped",
        HudiSinkConfig {
            partition_fields: vec!["name".into()],
            ..HudiSinkConfig::default()
        },
    )
    .unwrap();
    let table = TableId::new("public", "customers");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let values = [(1, "a/b"), (2, "50%"), (3, "plain")];
    // Inserted, then updated in place (the file group is found again under its directory).
    let mut offset = 0;
    for _ in 0..2 {
        for (id, name) in values {
            let set = crate::concurrency::change(&schema, id, name, offset, true);
            warehouse.sink(&table).apply(&set).await.unwrap();
            offset += 1;
        }
    }

    let (store, _) = cdc_core::source::raw::object_store_from_url("s3://lake/escaped").unwrap();
    let prefix = object_store::path::Path::from("escaped/public/customers");
    let keys: Vec<String> = store
        .list(Some(&prefix))
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let data: Vec<&String> = keys.iter().filter(|k| k.ends_with(".parquet")).collect();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("%252") || k.contains("%2525")),
        "double-encoded keys: {keys:?}"
    );
    for dir in ["name=a%2Fb/", "name=50%25/", "name=plain/"] {
        assert!(
            data.iter().any(|k| k.contains(dir)),
            "no base file under {dir}: {keys:?}"
        );
    }

    // Each row's `_hoodie_partition_path` is its file's directory; three rows, each once.
    let location = warehouse.table_location(&table);
    let hudi = Table::new_with_options(&location, moto.storage_options())
        .await
        .unwrap();
    let batches = hudi.read(&ReadOptions::new()).await.unwrap();
    let rows = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(rows.num_rows(), 3);
    let (logical, _) = logical_schema(&warehouse, &table).await;
    let (meta, _) = to_logical(&rows, &logical);
    assert_unique_keys(&meta, "escaped partitions");
    let col = |n: &str| {
        meta.column_by_name(n)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap()
            .clone()
    };
    let (parts, files) = (col("_hoodie_partition_path"), col("_hoodie_file_name"));
    for r in 0..meta.num_rows() {
        let key = format!("{}/{}", parts.value(r), files.value(r));
        assert!(
            data.iter().any(|k| k.ends_with(&key)),
            "{key} is no S3 key: {keys:?}"
        );
    }
    let mut partitions: Vec<&str> = (0..meta.num_rows()).map(|r| parts.value(r)).collect();
    partitions.sort();
    assert_eq!(partitions, ["name=50%25", "name=a%2Fb", "name=plain"]);
}

/// Base files under the table at `location` whose instant is not a completed one (the files
/// of an attempt that crashed before completing its instant).
async fn unfinished_base_files(location: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let (store, prefix) = cdc_core::source::raw::object_store_from_url(location).unwrap();
    let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
    let names: Vec<String> = (listed.iter())
        .map(|m| m.location.as_ref().to_string())
        .collect();
    let completed: std::collections::HashSet<&str> = (names.iter())
        .filter(|n| n.contains("/.hoodie/"))
        .filter_map(|n| {
            let file = n.rsplit('/').next()?;
            (file.strip_suffix(".commit")).or_else(|| file.strip_suffix(".replacecommit"))
        })
        .collect();
    let mut unfinished: Vec<String> = (names.iter())
        .filter(|n| !n.contains("/.hoodie/") && n.ends_with(".parquet"))
        .filter(|n| {
            let instant = n.trim_end_matches(".parquet").rsplit('_').next().unwrap();
            !completed.contains(instant)
        })
        .cloned()
        .collect();
    unfinished.sort();
    unfinished
}
