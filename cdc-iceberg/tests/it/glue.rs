//! Iceberg tables on S3 registered in the AWS Glue Data Catalog (moto_server's S3 and Glue on
//! 127.0.0.1): every fixture read back by pyiceberg's `GlueCatalog`, the Glue table checked
//! field by field against what Athena and Iceberg's own Glue catalog expect, a concurrent
//! writer resolved through the swap, and someone else's table refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use cdc_core::glue::GlueConfig;
use cdc_core::model::TableId;
use cdc_core::testing::conformance::OtherWriter;
use cdc_core::testing::proxy::{self, Fault};
use cdc_core::testing::{
    assert_replay_commits_nothing, glue_config_for, sync_fixture, MotoServer, Scenario,
};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::Value;

use crate::common::{
    assert_expected, assert_one_snapshot_per_commit, logical_schema, sync, Readers,
};
use crate::s3::MOTO_ENV;

/// Asserts the Glue table of `table` is what Iceberg's Glue catalog registers and Athena reads:
/// an external table with `table_type=ICEBERG`, the current metadata file, the table location
/// and the current schema's columns with their field ids.
async fn assert_registered(moto: &MotoServer, warehouse: &IcebergWarehouse, table: &TableId) {
    let (database, name) = warehouse.config().glue.as_ref().unwrap().names_of(table);
    let glue = moto
        .glue_table(&database, &name)
        .expect("registered in Glue");
    assert_eq!(glue["Name"], name);
    assert_eq!(glue["DatabaseName"], database);
    assert_eq!(glue["TableType"], "EXTERNAL_TABLE");
    let params = &glue["Parameters"];
    assert_eq!(params["table_type"], "ICEBERG");
    let current = warehouse.metadata_location(table).await.unwrap().unwrap();
    assert_eq!(params["metadata_location"], Value::String(current.clone()));
    assert!(
        current.starts_with(&warehouse.table_location(table)),
        "{current}"
    );
    let sd = &glue["StorageDescriptor"];
    assert_eq!(
        sd["Location"],
        Value::String(warehouse.table_location(table))
    );
    let (schema, _) = logical_schema(warehouse, table).await;
    let columns = sd["Columns"].as_array().unwrap();
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().to_lowercase())
        .collect();
    assert_eq!(names, expected, "{glue:#}");
    for (i, c) in columns.iter().enumerate() {
        assert!(!c["Type"].as_str().unwrap().is_empty(), "{c}");
        assert_eq!(c["Parameters"]["iceberg.field.current"], "true", "{c}");
        assert!(
            c["Parameters"]["iceberg.field.id"].as_str().is_some(),
            "{c}"
        );
        if i == 0 {
            assert!(c["Parameters"]["iceberg.field.optional"].as_str().is_some());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_into_iceberg_on_s3_through_glue() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("glue");
    moto.export_env();
    for scenario in Scenario::all() {
        let dir = tempfile::tempdir().unwrap();
        let config = IcebergSinkConfig {
            glue: Some(glue_config_for(&scenario)),
            ..IcebergSinkConfig::default()
        };
        let warehouse =
            IcebergWarehouse::new(&format!("s3://glue/{}", scenario.name), config).unwrap();
        sync_fixture(&scenario, dir.path(), &warehouse).await;
        for (table, _) in &scenario.tables {
            assert_registered(&moto, &warehouse, table).await;
        }
        let readers = Readers {
            pyiceberg: true,
            duckdb: false,
        };
        assert_expected(&scenario, &warehouse, readers).await;
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_through_glue_is_retried() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("race");
    moto.export_env();
    let config = IcebergSinkConfig {
        glue: Some(GlueConfig::default()),
        ..IcebergSinkConfig::default()
    };
    crate::concurrency::concurrent_writer_is_retried_at(config, Some("s3://race/wh")).await;
}

/// Commits the other writer's next row in the window between the sink's last read of the
/// table and its `UpdateTable`, and checks versions as Glue does.
struct CommitsBeforeSwaps(OtherWriter);

impl proxy::Front for CommitsBeforeSwaps {
    fn fault(&self, _request: &proxy::Request) -> Fault {
        Fault::Pass
    }

    fn before_forward<'a>(&'a self, request: &'a proxy::Request) -> BoxFuture<'a, ()> {
        let swap = request.header("x-amz-target") == Some("AWSGlue.UpdateTable");
        async move {
            if swap {
                self.0.commit_one().await;
            }
        }
        .boxed()
    }

    fn checks_glue_versions(&self) -> bool {
        true
    }
}

/// What Glue's `VersionId` guards against: another writer's swap landing after the sink checked
/// that Glue still points at its base, before the sink's own `UpdateTable` (the proxy runs the
/// other writer's commit there and refuses stale versions as Glue does; moto does not). The
/// refused swap is redone on the new metadata and both writers' rows are in the table once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_refused_for_its_glue_version_is_redone() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("versions");
    moto.export_env();
    let direct = IcebergSinkConfig {
        glue: Some(GlueConfig::default()),
        ..IcebergSinkConfig::default()
    };
    let other = IcebergWarehouse::new("s3://versions/wh", direct).unwrap();
    let writer = OtherWriter::new(Arc::new(other), 4);
    let front = Arc::new(CommitsBeforeSwaps(writer.clone()));
    let endpoint = proxy::fault_proxy(moto.endpoint.clone(), front).await;
    let config = IcebergSinkConfig {
        glue: Some(GlueConfig {
            endpoint: Some(endpoint),
            ..GlueConfig::default()
        }),
        ..IcebergSinkConfig::default()
    };
    let warehouse = IcebergWarehouse::new("s3://versions/wh", config).unwrap();
    crate::concurrency::sync_beside_other_writer(&writer, &warehouse, 4, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glue_table_of_someone_else_is_not_taken_over() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("taken");
    moto.export_env();
    let scenario = Scenario::load("crud");
    let glue = GlueConfig {
        databases: BTreeMap::from([("public".into(), "shared".into())]),
        ..GlueConfig::default()
    };
    let config = IcebergSinkConfig {
        glue: Some(glue),
        ..IcebergSinkConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let first = IcebergWarehouse::new("s3://taken/first", config.clone()).unwrap();
    sync_fixture(&scenario, dir.path(), &first).await;
    // Another pipeline, another warehouse, the same Glue names: refused, the table untouched.
    let second = IcebergWarehouse::new("s3://taken/second", config).unwrap();
    let table = TableId::new("public", "customers");
    let err = second
        .metadata_location(&table)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3://taken/first/public/customers"), "{err}");
    assert!(err.contains("glue.databases"), "{err}");
    assert_registered(&moto, &first, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_settings_are_checked() {
    let both = IcebergSinkConfig {
        glue: Some(GlueConfig::default()),
        rest: Some(cdc_iceberg::RestCatalogConfig {
            uri: "http://127.0.0.1:1".into(),
            ..Default::default()
        }),
        ..IcebergSinkConfig::default()
    };
    let err = IcebergWarehouse::new("s3://b/wh", both).unwrap_err();
    assert!(err.to_string().contains("one"), "{err}");
    // An S3 warehouse needs no local catalog file with Glue.
    let glue = IcebergSinkConfig {
        glue: Some(GlueConfig::default()),
        ..IcebergSinkConfig::default()
    };
    assert!(IcebergWarehouse::new("s3://b/wh", glue).is_ok());
}

/// Swaps whose answer is lost (a 502, a closed connection, a request sent twice) are found
/// landed by reading the table back, not redone; swaps whose request is lost are redone. The
/// client does not retry here (`max_attempts: 1`), so every fault reaches the commit. Every
/// change lands exactly once and every snapshot's checkpoint moves on from its parent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_swaps_with_lost_answers_land_exactly_once() {
    use Fault::*;
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("faults");
    moto.export_env();
    let swaps = [
        Pass,
        AnswerLost,
        Pass,
        RequestLost,
        ConnectionLost,
        Replayed,
        AnswerLost,
        RequestLost,
    ];
    let front = Arc::new(proxy::GlueFaults::new(&[("UpdateTable", &swaps)]));
    let endpoint = proxy::fault_proxy(moto.endpoint.clone(), front.clone()).await;
    let config = IcebergSinkConfig {
        glue: Some(GlueConfig {
            endpoint: Some(endpoint),
            max_attempts: 1,
            ..GlueConfig::default()
        }),
        ..IcebergSinkConfig::default()
    };
    let warehouse = IcebergWarehouse::new("s3://faults/wh", config).unwrap();
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let stats = sync(&scenario, dir.path(), 5, Default::default(), &warehouse)
        .await
        .unwrap();
    assert!(
        front.unmet().is_empty(),
        "too few commits ({})",
        stats.commits
    );
    // The two lost requests were redone; the lost answers were not.
    assert_eq!(warehouse.conflicts_retried(), 2);
    let readers = Readers {
        pyiceberg: true,
        duckdb: false,
    };
    assert_expected(&scenario, &warehouse, readers).await;
    assert_one_snapshot_per_commit(&scenario, &warehouse, stats.commits).await;
    // Nothing of the credentials is in the Debug form of what holds the Glue client.
    let debug = format!("{warehouse:?}");
    assert!(debug.contains("GlueClient"), "{debug}");
    for secret in [
        cdc_core::testing::MOTO_KEY_ID,
        cdc_core::testing::MOTO_SECRET,
    ] {
        assert!(!debug.contains(secret), "{debug}");
    }
}
