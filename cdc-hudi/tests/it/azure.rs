//! Hudi tables on Azure Blob Storage (Azurite on 127.0.0.1): sync, read back with hudi-rs from
//! the container, replay.

use std::collections::HashMap;

use cdc_core::testing::{compare_with_expected, AzuriteServer, Scenario};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use hudi::table::{ReadOptions, Table};

use crate::common::{assert_unique_keys, logical_schema, sync, to_logical};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_into_hudi_on_azure() {
    let Some(azurite) = AzuriteServer::start() else {
        return;
    };
    azurite.create_container("lake");
    azurite.export_env();
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = HudiWarehouse::new("az://lake/wh", HudiSinkConfig::default()).unwrap();
    let stats = sync(&scenario, dir.path(), 30, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert!(stats.commits > 1);
    let expected = scenario.expected();
    // hudi-rs takes object_store's option names.
    let options: HashMap<String, String> = azurite
        .storage_options()
        .into_iter()
        .map(|(k, v)| (k.to_lowercase(), v))
        .collect();
    for (table, keys) in &scenario.tables {
        let location = warehouse.table_location(table);
        assert!(location.starts_with("az://lake/wh/"), "{location}");
        let hudi = Table::new_with_options(&location, options.clone())
            .await
            .unwrap();
        let batches = hudi.read(&ReadOptions::new()).await.unwrap();
        let rows = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        let (logical, _) = logical_schema(&warehouse, table).await;
        let (meta, rows) = to_logical(&rows, &logical);
        assert_unique_keys(&meta, "azure");
        compare_with_expected(table, keys, &rows, &expected[table])
            .unwrap_or_else(|e| panic!("hudi on azure via hudi-rs:\n{e}"));
    }
    let again = sync(&scenario, dir.path(), 30, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_eq!(again.commits, 0);
}
