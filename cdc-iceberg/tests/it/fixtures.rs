//! Every fixture scenario and variant synced into Iceberg (batches of 40 events, so tables see
//! many snapshots with position deletes) reads back equal to its `expected/` state through
//! iceberg-rust, pyiceberg and DuckDB; replaying everything commits nothing.

use std::collections::HashMap;

use cdc_core::testing::{schemaless_hints, Scenario};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};

use crate::common::{assert_expected, sync, Readers};

async fn check(name: &str) {
    let scenario = Scenario::load(name);
    let dir = tempfile::tempdir().unwrap();
    let warehouse = IcebergWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        IcebergSinkConfig::default(),
    )
    .unwrap();
    let stats = sync(
        &scenario,
        dir.path(),
        40,
        schemaless_hints(&scenario).await,
        &warehouse,
    )
    .await
    .unwrap();
    assert!(stats.commits > 0);
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
    // Replaying everything changes nothing.
    let again = sync(&scenario, dir.path(), 40, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
}

cdc_core::fixture_tests!(check);
