//! Small-file clustering: the crud fixture written with no file group counting as small (so
//! each commit's inserts start a new group) leaves many groups; clustering packs them into one
//! in a `replacecommit` that keeps the checkpoint. hudi-rs and Python hudi read the source's
//! rows before and after, time travel to the instant before still reads them, every record key
//! is there once, and a replay commits nothing. With `cluster_every` the sink does it itself.

use cdc_core::testing::{assert_replay_commits_nothing, sync_scenario, Scenario};
use cdc_hudi::cluster::{cluster, ClusterOptions};
use cdc_hudi::{HudiSinkConfig, HudiWarehouse};

use crate::common::{assert_expected, assert_unique_keys, read_with_hudi_rs, Query};

fn warehouse(dir: &std::path::Path, cluster_every: usize) -> HudiWarehouse {
    let config = HudiSinkConfig {
        small_file_limit: 0,
        cluster_every,
        ..HudiSinkConfig::default()
    };
    HudiWarehouse::new(dir.join("wh").to_str().unwrap(), config).unwrap()
}

async fn groups(warehouse: &HudiWarehouse, table: &cdc_core::model::TableId) -> usize {
    warehouse.sink(table).file_groups().await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_packs_small_file_groups() {
    let scenario = Scenario::load("crud");
    let table = &scenario.tables[0].0;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = warehouse(dir.path(), 0);
    sync_scenario(&scenario, dir.path(), 10, Default::default(), &warehouse)
        .await
        .unwrap();
    let before = groups(&warehouse, table).await;
    assert!(before > 5, "{before} file groups");
    assert_expected(&scenario, &warehouse, true).await;
    let location = warehouse.table_location(table);
    let hoodie = std::path::Path::new(&location).join(".hoodie");
    let last_commit = || {
        let mut times: Vec<String> = std::fs::read_dir(&hoodie)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                let (t, action) = name.split_once('.')?;
                matches!(action, "commit" | "replacecommit").then(|| t.to_string())
            })
            .collect();
        times.sort();
        times.pop().unwrap()
    };
    let instant_before = last_commit();

    let done = cluster(&warehouse, table, &ClusterOptions::default())
        .await
        .unwrap()
        .expect("small groups to cluster");
    assert_eq!(done.groups, (before, 1));
    assert_eq!(done.rows, scenario.expected()[table].len() as u64);
    assert_eq!(groups(&warehouse, table).await, 1);
    let completed = hoodie.join(format!("{}.replacecommit", done.instant));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(completed).unwrap()).unwrap();
    assert_eq!(meta["operationType"], "CLUSTER");
    let replaced = meta["partitionToReplaceFileIds"][""].as_array().unwrap();
    assert_eq!(replaced.len(), before, "{meta}");
    assert_expected(&scenario, &warehouse, true).await;
    let now = read_with_hudi_rs(&location, &Query::Snapshot).await;
    assert_unique_keys(&now, "after clustering");
    // Time travel to the instant before reads the groups clustering replaced.
    let then = read_with_hudi_rs(&location, &Query::AsOf(instant_before)).await;
    assert_eq!(then.num_rows(), now.num_rows());
    assert_unique_keys(&then, "before clustering");
    assert_eq!(
        cluster(&warehouse, table, &ClusterOptions::default())
            .await
            .unwrap(),
        None
    );
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_clusters_on_its_own() {
    let scenario = Scenario::load("crud");
    let table = &scenario.tables[0].0;
    let mut counts = Vec::new();
    for every in [0, 5] {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = warehouse(dir.path(), every);
        sync_scenario(&scenario, dir.path(), 5, Default::default(), &warehouse)
            .await
            .unwrap();
        counts.push(groups(&warehouse, table).await);
        assert_expected(&scenario, &warehouse, true).await;
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
    assert!(
        counts[1] * 3 < counts[0],
        "groups without / with: {counts:?}"
    );
}
