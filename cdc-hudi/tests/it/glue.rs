//! Hudi tables on S3 registered in the AWS Glue Data Catalog (moto_server's S3 and Glue on
//! 127.0.0.1) as Hudi's own Glue sync registers a copy-on-write table: every fixture synced, the
//! Glue table checked field by field, partitions registered per partition path, and the table
//! read by the Python `hudi` package at the location Glue returns.

use std::collections::BTreeSet;

use cdc_core::model::TableId;
use cdc_core::testing::{
    assert_replay_commits_nothing, compare_raw_with_expected, glue_config_for, sync_fixture,
    MotoServer, Scenario, VariantLoss,
};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};
use serde_json::Value;

use crate::common::{logical_schema, read_with_python, Query};

/// Each test exports its moto server's address to the environment, where the stores and the
/// Glue client find it: one test at a time (shared with the other S3 tests).
use crate::s3::MOTO_ENV;

/// Asserts the Glue table of `table` is what Hudi's Glue sync registers for a copy-on-write
/// table (Hudi's input format, the Parquet SerDe, the meta columns first, the partition fields
/// as partition keys, the last commit synced) and returns it.
async fn assert_registered(
    moto: &MotoServer,
    warehouse: &HudiWarehouse,
    table: &TableId,
    partition_fields: &[&str],
) -> Value {
    let glue_config = warehouse.config().glue.clone().unwrap();
    let (database, name) = glue_config.names_of(table);
    let glue = moto
        .glue_table(&database, &name)
        .expect("registered in Glue");
    assert_eq!(glue["TableType"], "EXTERNAL_TABLE");
    assert_eq!(glue["Parameters"]["EXTERNAL"], "TRUE");
    assert_eq!(glue["Parameters"]["spark.sql.sources.provider"], "hudi");
    let synced = glue["Parameters"]["last_commit_time_sync"]
        .as_str()
        .unwrap();
    assert!(
        synced.len() == 17 && synced.bytes().all(|b| b.is_ascii_digit()),
        "{synced}"
    );
    let sd = &glue["StorageDescriptor"];
    let location = warehouse.table_location(table);
    assert_eq!(sd["Location"], Value::String(location.clone()));
    assert_eq!(
        sd["InputFormat"],
        "org.apache.hudi.hadoop.HoodieParquetInputFormat"
    );
    assert_eq!(
        sd["OutputFormat"],
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    );
    let serde = &sd["SerdeInfo"];
    assert_eq!(
        serde["SerializationLibrary"],
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    );
    assert_eq!(serde["Parameters"]["hoodie.query.as.ro.table"], "false");
    assert_eq!(serde["Parameters"]["path"], Value::String(location));
    let names: Vec<&str> = (sd["Columns"].as_array().unwrap().iter())
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    let (logical, _) = logical_schema(warehouse, table).await;
    let mut expected = vec![
        "_hoodie_commit_time",
        "_hoodie_commit_seqno",
        "_hoodie_record_key",
        "_hoodie_partition_path",
        "_hoodie_file_name",
    ];
    let data: Vec<String> = (logical.fields().iter())
        .map(|f| f.name().to_lowercase())
        .filter(|n| !partition_fields.contains(&n.as_str()))
        .collect();
    expected.extend(data.iter().map(String::as_str));
    assert_eq!(names, expected, "{glue:#}");
    let keys: Vec<&str> = (glue["PartitionKeys"].as_array().unwrap().iter())
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert_eq!(keys, partition_fields);
    glue
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_into_hudi_on_s3_registered_in_glue() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("glue");
    moto.export_env();
    for scenario in Scenario::all() {
        let config = HudiSinkConfig {
            glue: Some(glue_config_for(&scenario)),
            ..HudiSinkConfig::default()
        };
        let root = format!("s3://glue/{}", scenario.name);
        let warehouse = HudiWarehouse::new(&root, config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sync_fixture(&scenario, dir.path(), &warehouse).await;
        let expected = scenario.expected();
        for (table, keys) in &scenario.tables {
            let glue = assert_registered(&moto, &warehouse, table, &[]).await;
            // What Python hudi reads at the location Glue gives, after generic conversions.
            let location = glue["StorageDescriptor"]["Location"].as_str().unwrap();
            let raw = read_with_python(location, &Query::Snapshot);
            let loss = VariantLoss::of(&scenario.name);
            compare_raw_with_expected(table, keys, &raw, &expected[table], loss)
                .unwrap_or_else(|e| panic!("{} as python hudi returns it:\n{e}", scenario.name));
        }
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_registered_in_glue() {
    let _env = MOTO_ENV.lock().await;
    let Some(moto) = MotoServer::start() else {
        return;
    };
    moto.create_bucket("parts");
    moto.export_env();
    let scenario = Scenario::load("crud");
    let config = HudiSinkConfig {
        partition_fields: vec!["name".into()],
        glue: Some(glue_config_for(&scenario)),
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new("s3://parts/wh", config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    sync_fixture(&scenario, dir.path(), &warehouse).await;
    let table = TableId::new("public", "customers");
    let glue = assert_registered(&moto, &warehouse, &table, &["name"]).await;
    assert_eq!(glue["PartitionKeys"][0]["Type"], "string");
    assert_partitions_registered(&moto, &warehouse, &table);
}

/// Glue calls whose answers are lost (a 502, a closed connection, a request sent twice) while a
/// partitioned table is created, updated and its partitions added: the client retries, calls
/// that already landed are recognised, and the table ends registered with every partition, and
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
        ("CreateDatabase", &[Replayed]),
        ("CreateTable", &[AnswerLost]),
        ("UpdateTable", &[ConnectionLost, Replayed, AnswerLost]),
        (
            "BatchCreatePartition",
            &[AnswerLost, Replayed, ConnectionLost],
        ),
    ]));
    let endpoint = proxy::fault_proxy(moto.endpoint.clone(), front.clone()).await;
    let scenario = Scenario::load("crud");
    let config = HudiSinkConfig {
        partition_fields: vec!["name".into()],
        glue: Some(cdc_core::glue::GlueConfig {
            endpoint: Some(endpoint),
            ..glue_config_for(&scenario)
        }),
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new("s3://lossy/wh", config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    cdc_core::testing::sync_scenario(&scenario, dir.path(), 5, Default::default(), &warehouse)
        .await
        .unwrap();
    assert_eq!(front.unmet(), Vec::<(String, usize)>::new());
    let table = TableId::new("public", "customers");
    assert_registered(&moto, &warehouse, &table, &["name"]).await;
    assert_partitions_registered(&moto, &warehouse, &table);
    let location = warehouse.table_location(&table);
    let raw = read_with_python(&location, &Query::Snapshot);
    let keys = &scenario.tables[0].1;
    compare_raw_with_expected(
        &table,
        keys,
        &raw,
        &scenario.expected()[&table],
        VariantLoss::of("crud"),
    )
    .unwrap();
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
}

/// Asserts every partition path of `table`'s rows is a Glue partition at its directory.
fn assert_partitions_registered(moto: &MotoServer, warehouse: &HudiWarehouse, table: &TableId) {
    let location = warehouse.table_location(table);
    let rows = read_with_python(&location, &Query::Snapshot);
    let paths = rows
        .column_by_name("_hoodie_partition_path")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap()
        .iter()
        .map(|p| p.unwrap().to_string())
        .collect::<BTreeSet<_>>();
    assert!(paths.len() > 1, "{paths:?}");
    let (database, name) = warehouse.config().glue.as_ref().unwrap().names_of(table);
    let partitions = moto.glue_partitions(&database, &name);
    let registered: BTreeSet<(String, String)> = (partitions.iter())
        .map(|p| {
            let values = p["Values"].as_array().unwrap();
            assert_eq!(values.len(), 1, "{p}");
            let value = values[0].as_str().unwrap().to_string();
            let at = p["StorageDescriptor"]["Location"]
                .as_str()
                .unwrap()
                .to_string();
            (value, at)
        })
        .collect();
    let wanted: BTreeSet<(String, String)> = (paths.iter())
        .map(|p| {
            let value = p.strip_prefix("name=").unwrap().to_string();
            (value, format!("{location}/{p}"))
        })
        .collect();
    // Partitions whose rows were all deleted may stay registered (as with Hudi's own sync).
    assert!(
        registered.is_superset(&wanted),
        "{registered:#?}\n{wanted:#?}"
    );
}
