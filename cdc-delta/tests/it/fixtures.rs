//! Every fixture scenario and variant synced into Delta (batches of 40 events, so tables see
//! many commits) reads back equal to its `expected/` state through delta-rs and DuckDB.

use std::collections::HashMap;

use cdc_core::decode::TableHint;
use cdc_core::sink::MemoryWarehouse;
use cdc_core::testing::Scenario;
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};

use crate::common::{assert_expected, sync};

/// For schemaless variants: the schema of the base scenario, as a user would give it.
async fn hints(scenario: &Scenario) -> HashMap<cdc_core::model::TableId, TableHint> {
    if scenario.variant() != "noschema" {
        return HashMap::new();
    }
    let base = Scenario::load(scenario.base());
    let dir = tempfile::tempdir().unwrap();
    let wh = MemoryWarehouse::new();
    sync(&base, dir.path(), 1_000_000, HashMap::new(), &wh)
        .await
        .unwrap();
    base.tables
        .iter()
        .map(|(t, _)| {
            let hint = TableHint {
                schema: Some(wh.table(t).unwrap().schema),
                key_columns: None,
            };
            (t.clone(), hint)
        })
        .collect()
}

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    let dir = tempfile::tempdir().unwrap();
    let warehouse = DeltaWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        DeltaSinkConfig::default(),
    )
    .unwrap();
    let stats = sync(
        &scenario,
        dir.path(),
        40,
        hints(&scenario).await,
        &warehouse,
    )
    .await
    .unwrap();
    assert!(stats.commits > 0);
    assert_expected(&scenario, &warehouse, true).await;
    // Replaying everything changes nothing.
    let again = sync(&scenario, dir.path(), 40, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
}

macro_rules! scenarios {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                check($name).await;
            }
        )*
    };
}

scenarios! {
    crud => "crud",
    crud_connect_time => "crud-connect-time",
    crud_decimal_double => "crud-decimal-double",
    crud_decimal_string => "crud-decimal-string",
    crud_noschema => "crud-noschema",
    crud_unwrap => "crud-unwrap",
    pk_change => "pk_change",
    schema_change => "schema_change",
    toast => "toast",
    truncate => "truncate",
    types => "types",
    types_connect_time => "types-connect-time",
    types_decimal_double => "types-decimal-double",
    types_decimal_string => "types-decimal-string",
    types_noschema => "types-noschema",
    types_unwrap => "types-unwrap",
}

/// A partitioned table (by a column that updates change, so rows move between partitions)
/// ends equal too, and its files sit in hive-style partition directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_table_ends_equal() {
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let config = DeltaSinkConfig {
        partition_columns: vec!["name".into()],
        ..DeltaSinkConfig::default()
    };
    let root = dir.path().join("wh");
    let warehouse = DeltaWarehouse::new(root.to_str().unwrap(), config).unwrap();
    sync(&scenario, dir.path(), 40, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_expected(&scenario, &warehouse, true).await;
    let partitions = std::fs::read_dir(root.join("public/customers"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("name=")
        })
        .count();
    assert!(partitions > 5, "{partitions} partition directories");
}
