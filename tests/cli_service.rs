//! The binary as a service: gaps in the source, `sync --watch`, the progress bar, and
//! `run --config`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cdc_core::sink::JsonlWarehouse;
use common::{assert_jsonl_expected, cdc_lake, jsonl_sync, layout, s};

mod common;

/// A raw file missing from the middle of a partition stops the sync with the table, partition
/// and missing offsets, before anything is applied; `--allow-gaps` logs the gap and goes on.
#[test]
fn a_missing_raw_file_is_reported_unless_gaps_are_allowed() {
    let (_scenario, dir, topics, wh) = layout("crud", 25, false);
    let customers = topics.join("dbserver1.public.customers/partition=0");
    let mut missing = 0;
    for name in [
        "dbserver1.public.customers+0+0000000025.json",
        "dbserver1.public.customers+0+0000000025.keys.json",
    ] {
        if std::fs::remove_file(customers.join(name)).is_ok() {
            missing += 1;
        }
    }
    assert!(missing > 0, "no such file in {}", customers.display());
    let args = jsonl_sync(&topics, &wh, &[]);
    let out = cdc_lake(&args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("table `public.customers`, topic `dbserver1.public.customers` partition 0: offsets 25..=49 are missing")
            && err.contains("--allow-gaps"),
        "{err}"
    );
    assert!(!wh.join("public/customers").exists(), "nothing applied");

    let out = cdc_lake(&[&args[..], &["--allow-gaps"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("offsets missing from the raw files") && err.contains("first=25"),
        "{err}"
    );
    drop(dir);
}

/// `sync --watch`: files the S3 sink writes while it runs are applied as they land; SIGTERM
/// stops it after the commit in flight, and the table equals the expected state.
#[test]
fn sync_watch_applies_files_as_they_land() {
    let (scenario, dir, topics, wh) = layout("crud", 20, false);
    // Hold back the second half of every partition's files.
    let held = dir.path().join("held");
    let mut files = walk(&topics);
    files.sort();
    // Split between two files' pairs (a data file sorts just before its keys file).
    let mut half = files.len() / 2;
    while files[half].to_str().unwrap().ends_with(".keys.json") {
        half += 1;
    }
    let later: Vec<PathBuf> = files[half..].to_vec();
    for f in &later {
        let to = held.join(f.strip_prefix(&topics).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(f, &to).unwrap();
    }
    let child = Command::new(env!("CARGO_BIN_EXE_cdc-lake"))
        .args([
            "sync",
            "--format",
            "jsonl",
            "--watch",
            "--poll-interval-ms",
            "100",
        ])
        .args(["--source", s(&topics), "--warehouse", s(&wh)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let warehouse = JsonlWarehouse::new(&wh);
    let applied = |table: &cdc_core::model::TableId| -> i64 {
        warehouse
            .load(table)
            .ok()
            .flatten()
            .map(|t| t.checkpoint.offsets.values().flat_map(|p| p.values()).sum())
            .unwrap_or(0)
    };
    let total = |topics: &Path| walk(topics).len();
    let (table, keys) = &scenario.tables[0];
    let wait_until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_until("the first half applied", &|| applied(table) > 0);
    assert!(total(&topics) < files.len());
    // The rest lands, keys file before its data file as the connector may write them.
    let mut landing = later.clone();
    landing.sort_by_key(|f| !f.to_str().unwrap().ends_with(".keys.json"));
    for f in &landing {
        std::fs::rename(held.join(f.strip_prefix(&topics).unwrap()), f).unwrap();
    }
    let end: i64 = scenario
        .records()
        .iter()
        .filter(|r| r.topic.ends_with(&format!(".{}", table.name)))
        .count() as i64;
    wait_until("the files that landed applied", &|| applied(table) == end);
    let out = common::terminate(child);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopping after the commit in flight"), "{err}");
    assert_jsonl_expected(&warehouse, &scenario, table, keys);
}

/// On a terminal, `sync` draws a progress bar of the files and bytes read (run under
/// util-linux `script`, which gives it a pseudo-terminal).
#[test]
fn sync_on_a_terminal_shows_a_progress_bar() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "util-linux `script` is missing"
        );
        eprintln!("skipping: no `script` to run the CLI on a pseudo-terminal");
        return;
    }
    let (_scenario, _dir, topics, wh) = layout("crud", 5, false);
    let command = format!(
        "{} sync --format jsonl --source {} --warehouse {}",
        env!("CARGO_BIN_EXE_cdc-lake"),
        s(&topics),
        s(&wh)
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("synced 359 records"), "{screen}");
    // The bar as drawn (before it was cleared): bytes of the total, files of the total.
    assert!(screen.contains("72/72 files"), "{screen}");
    assert!(screen.contains("iB/"), "{screen}");
}

/// `run --config`: a TOML file is the whole service. One of two tables goes to Delta in a
/// warehouse of its own with its own settings, the other to the default sink; both end equal
/// to the expected state.
#[cfg(feature = "delta")]
#[test]
fn run_from_a_config_file_with_a_table_in_another_format() {
    let (scenario, dir, topics, wh) = layout("pk_change", 10, false);
    let delta_wh = dir.path().join("delta");
    let config = dir.path().join("service.toml");
    let text = format!(
        r#"
[source.raw]
location = "{}"

[sink]
format = "jsonl"
warehouse = "{}"

[limits]
max_batch_events = 10

[[tables]]
name = "public.order_lines"
format = "delta"
warehouse = "{}"
settings = {{ deletion_vectors = false, target_file_size = 1048576 }}
"#,
        s(&topics),
        s(&wh),
        s(&delta_wh)
    );
    std::fs::write(&config, text).unwrap();
    let out = cdc_lake(&["run", "--config", s(&config)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("synced 72 records"));

    let jsonl = JsonlWarehouse::new(&wh);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (table, keys) in &scenario.tables {
        if &*table.name == "order_lines" {
            assert!(
                jsonl.load(table).unwrap().is_none(),
                "not in the default sink"
            );
            let delta = cdc_lake::open_warehouse(cdc_lake::Format::Delta, s(&delta_wh)).unwrap();
            let checkpoint = runtime.block_on(async {
                let mut sink = delta.open(table).await.unwrap();
                sink.committed_checkpoint().await.unwrap().unwrap()
            });
            assert_eq!(
                checkpoint.next_offset("dbserver1.public.order_lines", 0),
                Some(37)
            );
            continue;
        }
        assert_jsonl_expected(&jsonl, &scenario, table, keys);
    }
    // Running it again applies nothing.
    let again = cdc_lake(&["run", "--config", s(&config)]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("in 0 commits"));
}

/// A misspelt key in the config file is an error naming it, as is a bad value.
#[test]
fn a_config_file_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("service.toml");
    let base =
        "[source.raw]\nlocation = \"topics\"\n[sink]\nformat = \"jsonl\"\nwarehouse = \"wh\"\n";
    for (extra, expected) in [
        ("warehous = \"x\"\n", "unknown field `warehous`"),
        (
            "[limits]\nmax_batch_event = 5\n",
            "unknown field `max_batch_event`",
        ),
        (
            "[[tables]]\nname = \"public.t\"\nformat = \"parquet\"\n",
            "unknown format `parquet`",
        ),
    ] {
        std::fs::write(&config, format!("{base}{extra}")).unwrap();
        let out = cdc_lake(&["run", "--config", s(&config)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains(expected) && err.contains("service.toml"),
            "{err}"
        );
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
