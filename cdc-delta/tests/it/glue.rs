//! Delta tables on S3 registered in the AWS Glue Data Catalog (moto_server's S3 and Glue on
//! 127.0.0.1): every fixture synced, the Glue table checked field by field against what
//! Athena's Delta support reads, and the table read by DuckDB (delta + httpfs extensions) at
//! the location Glue returns.

use cdc_core::model::TableId;
use cdc_core::testing::{
    assert_replay_commits_nothing, compare_raw_with_expected, glue_config_for, sync_fixture,
    MotoServer, Scenario, VariantLoss,
};
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};
use serde_json::Value;

use crate::common::{raw_duckdb, read_with_delta_rs};

/// Each test exports its moto server's address to the environment, where the Glue client finds
/// it: one test at a time.
static MOTO_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Asserts the Glue table of `table` is what Athena reads natively as Delta: an external table
/// at the table's location with `table_type=DELTA`, and the columns of the table's schema.
/// Returns the location Glue gives.
async fn assert_registered(
    moto: &MotoServer,
    warehouse: &DeltaWarehouse,
    table: &TableId,
) -> String {
    let (database, name) = warehouse.config().glue.as_ref().unwrap().names_of(table);
    let glue = moto
        .glue_table(&database, &name)
        .expect("registered in Glue");
    assert_eq!(glue["Name"], name);
    assert_eq!(glue["TableType"], "EXTERNAL_TABLE");
    assert_eq!(glue["Parameters"]["table_type"], "DELTA");
    assert_eq!(glue["Parameters"]["EXTERNAL"], "TRUE");
    let sd = &glue["StorageDescriptor"];
    let location = sd["Location"].as_str().unwrap().to_string();
    let url = warehouse.table_url(table).to_string();
    assert_eq!(location, url.trim_end_matches('/'));
    assert_eq!(
        sd["SerdeInfo"]["Parameters"]["path"],
        Value::String(location.clone())
    );
    let (rows, _) = read_with_delta_rs(warehouse, table).await;
    let names: Vec<&str> = (sd["Columns"].as_array().unwrap().iter())
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (rows.schema().fields().iter())
        .map(|f| f.name().to_lowercase())
        .collect();
    assert_eq!(names, expected, "{glue:#}");
    assert!(glue["PartitionKeys"].as_array().unwrap().is_empty());
    location
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_into_delta_on_s3_registered_in_glue() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("glue");
    moto.export_env();
    for scenario in Scenario::all() {
        let config = DeltaSinkConfig {
            storage_options: moto.storage_options(),
            glue: Some(glue_config_for(&scenario)),
            ..DeltaSinkConfig::default()
        };
        let root = format!("s3://glue/{}", scenario.name);
        let warehouse = DeltaWarehouse::new(&root, config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sync_fixture(&scenario, dir.path(), &warehouse).await;
        let expected = scenario.expected();
        for (table, keys) in &scenario.tables {
            let location = assert_registered(&moto, &warehouse, table).await;
            // What DuckDB reads at the location Glue gives, after only generic conversions.
            let raw = raw_duckdb(&location);
            let loss = VariantLoss::of(&scenario.name);
            compare_raw_with_expected(table, keys, &raw, &expected[table], loss)
                .unwrap_or_else(|e| panic!("{} as DuckDB returns it:\n{e}", scenario.name));
        }
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glue_table_of_someone_else_is_not_overwritten() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("taken");
    moto.export_env();
    let scenario = Scenario::load("crud");
    let config = DeltaSinkConfig {
        storage_options: moto.storage_options(),
        glue: Some(glue_config_for(&scenario)),
        ..DeltaSinkConfig::default()
    };
    let first = DeltaWarehouse::new("s3://taken/first", config.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    sync_fixture(&scenario, dir.path(), &first).await;
    let second = DeltaWarehouse::new("s3://taken/second", config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err =
        cdc_core::testing::sync_scenario(&scenario, dir.path(), 1000, Default::default(), &second)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("s3://taken/first/public/customers"), "{err}");
    assert!(err.contains("glue.databases"), "{err}");
    let table = TableId::new("public", "customers");
    assert_registered(&moto, &first, &table).await;
}

/// Glue unreachable after a commit landed: the sync stops with an error naming the catalog and
/// the call (never a credential), the commit stands, and the next run with Glue reachable
/// registers the table and finishes the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glue_outage_fails_cleanly_and_the_next_run_registers() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("outage");
    moto.export_env();
    let scenario = Scenario::load("crud");
    let glue = glue_config_for(&scenario);
    let unreachable = cdc_core::glue::GlueConfig {
        endpoint: Some("http://127.0.0.1:9".into()),
        max_attempts: 2,
        request_timeout_secs: 2,
        ..glue.clone()
    };
    let config = |glue| DeltaSinkConfig {
        storage_options: moto.storage_options(),
        glue: Some(glue),
        ..DeltaSinkConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let down = DeltaWarehouse::new("s3://outage/wh", config(unreachable)).unwrap();
    let err =
        cdc_core::testing::sync_scenario(&scenario, dir.path(), 40, Default::default(), &down)
            .await
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("catalog http://127.0.0.1:9") && err.contains("Network"),
        "{err}"
    );
    assert!(!err.contains(cdc_core::testing::MOTO_SECRET), "{err}");
    let table = TableId::new("public", "customers");
    let (database, name) = glue.names_of(&table);
    assert!(moto.glue_table(&database, &name).is_none());
    let up = DeltaWarehouse::new("s3://outage/wh", config(glue)).unwrap();
    let (landed, _) = read_with_delta_rs(&up, &table).await;
    assert!(landed.num_rows() > 0, "the first commit stands");
    sync_fixture(&scenario, dir.path(), &up).await;
    let location = assert_registered(&moto, &up, &table).await;
    let raw = raw_duckdb(&location);
    let keys = &scenario.tables[0].1;
    compare_raw_with_expected(
        &table,
        keys,
        &raw,
        &scenario.expected()[&table],
        VariantLoss::of("crud"),
    )
    .unwrap();
}

/// Glue calls whose answers are lost (a 502, a closed connection, a request sent twice) while a
/// table is created and while its columns change: the client retries, a retried create or
/// update that already landed is recognised, and the table ends registered as it is, with
/// every change applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_registrations_with_lost_answers_converge() {
    use cdc_core::testing::proxy::{self, Fault::*};
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("lossy");
    moto.export_env();
    let front = std::sync::Arc::new(proxy::GlueFaults::new(&[
        ("CreateDatabase", &[AnswerLost]),
        ("CreateTable", &[ConnectionLost, Replayed]),
        ("UpdateTable", &[AnswerLost, ConnectionLost, Replayed]),
    ]));
    let endpoint = proxy::fault_proxy(moto.endpoint.clone(), front.clone()).await;
    let scenario = Scenario::load("schema_change");
    let config = DeltaSinkConfig {
        storage_options: moto.storage_options(),
        glue: Some(cdc_core::glue::GlueConfig {
            endpoint: Some(endpoint),
            ..glue_config_for(&scenario)
        }),
        ..DeltaSinkConfig::default()
    };
    let warehouse = DeltaWarehouse::new("s3://lossy/wh", config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    cdc_core::testing::sync_scenario(&scenario, dir.path(), 5, Default::default(), &warehouse)
        .await
        .unwrap();
    assert_eq!(front.unmet(), Vec::<(String, usize)>::new());
    let expected = scenario.expected();
    for (table, keys) in &scenario.tables {
        // The registered columns are the table's final ones.
        let location = assert_registered(&moto, &warehouse, table).await;
        let raw = raw_duckdb(&location);
        compare_raw_with_expected(
            table,
            keys,
            &raw,
            &expected[table],
            VariantLoss::of("schema_change"),
        )
        .unwrap();
    }
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
}
