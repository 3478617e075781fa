//! Timeline archival: after many commits `.hoodie/` keeps only the last few completed writes,
//! the older instants sit under `.hoodie/archived/`, and every reader (hudi-rs, Python `hudi`,
//! a writer loading the table again) still takes the base files of archived instants as
//! committed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use cdc_core::fold::ChangeSet;
use cdc_core::model::TableId;
use cdc_core::sink::{CommitOutcome, TableSink};
use cdc_core::testing::keyed_change;
use cdc_hudi::{CommitMetadata, HudiSinkConfig, HudiWarehouse, Timeline};

use crate::common::{read_with_hudi_rs, read_with_python, Query};

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `ids` set to `v` (a change set at source offset `offset`).
fn upsert(table: &TableId, ids: Vec<i32>, v: &str, offset: i64) -> ChangeSet {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    keyed_change(table, &schema, &ids, v, true, ("t", offset))
}

/// `id` → `name` of the rows a reader returned; fails on a repeated key.
fn values(rows: &RecordBatch) -> HashMap<i64, String> {
    let ids = rows
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let vs = rows.column_by_name("name").unwrap().as_string::<i32>();
    let mut out = HashMap::new();
    for i in 0..rows.num_rows() {
        let repeated = out.insert(ids.value(i), vs.value(i).to_string());
        assert!(repeated.is_none(), "key {} read twice", ids.value(i));
    }
    out
}

fn expected(last_of_42: &str, last_of_7: Option<&str>) -> HashMap<i64, String> {
    (0..100)
        .map(|id| {
            let v = match id {
                42 => last_of_42,
                7 => last_of_7.unwrap_or("a"),
                _ => "a",
            };
            (id, v.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_instants_leave_the_active_timeline_and_stay_committed() {
    let dir = tempfile::tempdir().unwrap();
    // About ten file groups of ten rows; later commits rewrite only the one holding key 42,
    // so the others keep the base files of the first instant, which gets archived.
    let config = HudiSinkConfig {
        max_file_size: 1 << 20,
        small_file_limit: 1 << 20,
        record_size_estimate: 100_000,
        commits_retained: 2,
        archive_max_commits: 6,
        archive_min_commits: 3,
        ..HudiSinkConfig::default()
    };
    let root = dir.path().to_str().unwrap().to_string();
    let warehouse = HudiWarehouse::new(&root, config.clone()).unwrap();
    let table = TableId::new("public", "aging");
    let mut sink = warehouse.sink(&table);
    sink.apply(&upsert(&table, (0..100).collect(), "a", 0))
        .await
        .unwrap();
    let groups = sink.file_groups().await.unwrap().len();
    assert!(groups >= 9, "{groups} file groups");
    let mut versions = Vec::new();
    for n in 1..=25 {
        let CommitOutcome::Committed { version, .. } = sink
            .apply(&upsert(&table, vec![42], &format!("v{n}"), n))
            .await
            .unwrap()
        else {
            panic!("commit {n} did not commit")
        };
        versions.push(version);
    }

    let location = warehouse.table_location(&table);
    let hoodie = Path::new(&location).join(".hoodie");
    let active = Timeline::from_names(names(&hoodie).iter().map(String::as_str));
    let active_writes: Vec<String> = active.completed_writes().map(|i| i.time.clone()).collect();
    assert!(
        (3..=6).contains(&active_writes.len()),
        "active completed writes: {active_writes:?}"
    );
    assert!(active.pending_writes().next().is_none());
    // Cleans older than the active timeline went with the commits.
    let (archived, cleans): (Vec<String>, Vec<String>) = names(&hoodie.join("archived"))
        .into_iter()
        .partition(|n| n.ends_with(".commit"));
    assert_eq!(archived.len(), 26 - active_writes.len(), "{archived:?}");
    assert!(
        !cleans.is_empty() && cleans.iter().all(|n| n.ends_with(".clean")),
        "{cleans:?}"
    );
    for name in &archived {
        let time = name.strip_suffix(".commit").expect("a completed commit");
        assert!(
            time < active_writes[0].as_str(),
            "{name} is not older than the active timeline"
        );
        let text = std::fs::read_to_string(hoodie.join("archived").join(name)).unwrap();
        serde_json::from_str::<CommitMetadata>(&text).expect("the commit metadata as it was");
        for gone in [
            format!("{time}.commit.requested"),
            format!("{time}.inflight"),
        ] {
            assert!(!hoodie.join(&gone).exists(), "{gone} left in .hoodie/");
        }
    }

    // Readers take the first instant's base files as committed.
    let want = expected("v25", None);
    assert_eq!(
        values(&read_with_hudi_rs(&location, &Query::Snapshot).await),
        want
    );
    assert_eq!(values(&read_with_python(&location, &Query::Snapshot)), want);
    // Time travel inside the retention (the cleaner keeps the last two commits readable).
    let earlier = &versions[versions.len() - 2];
    let as_of = read_with_hudi_rs(&location, &Query::AsOf(earlier.clone())).await;
    assert_eq!(values(&as_of), expected("v24", None));

    // Incremental reads inside the active timeline. (hudi-rs 0.5 selects incremental
    // commits from the active timeline only, whatever the archive holds: it warns when a
    // range starts before it, as for Hudi's own archive.)
    let window = Query::Incremental(
        versions[versions.len() - 3].clone(),
        versions.last().unwrap().clone(),
    );
    let changed = HashMap::from([(42, "v25".to_string())]);
    assert_eq!(
        values(&read_with_hudi_rs(&location, &window).await),
        changed
    );
    assert_eq!(values(&read_with_python(&location, &window)), changed);

    // A writer loading the table again knows every file group, the archived instant's too.
    let again = HudiWarehouse::new(&root, config).unwrap();
    let mut sink = again.sink(&table);
    assert_eq!(sink.file_groups().await.unwrap().len(), groups);
    sink.apply(&upsert(&table, vec![7], "b", 26)).await.unwrap();
    let want = expected("v25", Some("b"));
    assert_eq!(
        values(&read_with_hudi_rs(&location, &Query::Snapshot).await),
        want
    );
    assert_eq!(values(&read_with_python(&location, &Query::Snapshot)), want);
}

/// Another writer's instant that is still pending (begun long ago, in no state this writer
/// holds) stops archival: its files must not look committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archival_stops_at_another_writers_pending_instant() {
    let dir = tempfile::tempdir().unwrap();
    let config = HudiSinkConfig {
        commits_retained: 1,
        archive_max_commits: 4,
        archive_min_commits: 2,
        ..HudiSinkConfig::default()
    };
    let warehouse = HudiWarehouse::new(dir.path().to_str().unwrap(), config).unwrap();
    let table = TableId::new("public", "slow");
    let mut sink = warehouse.sink(&table);
    let mut versions = Vec::new();
    for n in 0..3 {
        // Room between the instants for the other writer's.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let CommitOutcome::Committed { version, .. } = sink
            .apply(&upsert(&table, vec![n], "a", i64::from(n)))
            .await
            .unwrap()
        else {
            panic!("commit {n}")
        };
        versions.push(version);
    }
    // The other writer's instant sorts right after the second commit.
    let theirs = (versions[1].parse::<u64>().unwrap() + 1).to_string();
    assert!(theirs > versions[1] && theirs < versions[2], "{theirs}");
    let hoodie = Path::new(&warehouse.table_location(&table)).join(".hoodie");
    std::fs::write(hoodie.join(format!("{theirs}.commit.requested")), b"").unwrap();
    for n in 3..15 {
        sink.apply(&upsert(&table, vec![n], "a", i64::from(n)))
            .await
            .unwrap();
    }
    let archived = names(&hoodie.join("archived"));
    assert!(!archived.is_empty(), "nothing archived");
    assert!(
        archived.iter().all(|name| name.as_str() < theirs.as_str()),
        "archived past the pending instant {theirs}: {archived:?}"
    );
    let active = Timeline::from_names(names(&hoodie).iter().map(String::as_str));
    assert!(active.is_completed_write(&versions[2]));
}
