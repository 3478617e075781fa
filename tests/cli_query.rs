//! `cdc-lake query`: the first run from an empty directory writes the bundled sample as Delta
//! tables that `query` counts; and SQL over each format's tables (Delta through deltalake,
//! Iceberg through iceberg-datafusion, Hudi through hudi-rs) returns the fixtures' expected
//! state.

#![cfg(all(feature = "delta", feature = "query"))]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

mod common;

/// The binary with `args`, run in `dir`.
fn run_in(dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cdc-lake"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?}: {stderr}");
    (stdout, stderr)
}

/// The customers the sample's events leave, by folding them here (creates, snapshot reads and
/// updates make a key live, deletes end it), and the number of records.
fn sample_customers() -> (usize, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/sample/topics/dbserver1.public.customers/partition=0");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_str().unwrap().ends_with(".keys.json"))
        .collect();
    files.sort();
    let (mut live, mut records) = (BTreeSet::new(), 0);
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            records += 1;
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let payload = event.get("payload").unwrap_or(&event);
            if payload.is_null() {
                continue;
            }
            match payload["op"].as_str().unwrap() {
                "d" => live.remove(&payload["before"]["id"].to_string()),
                _ => live.insert(payload["after"]["id"].to_string()),
            };
        }
    }
    (live.len(), records)
}

#[test]
fn the_first_run_writes_delta_tables_that_query_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = run_in(dir.path(), &["sync"]);
    assert!(stdout.contains("into delta tables"), "{stdout}");
    for table in ["public.customers", "public.all_types"] {
        assert!(
            stdout.contains(&format!("  {table}: delta version ")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("next: cdc-lake query \""), "{stdout}");
    assert!(!stderr.contains("ERROR"), "{stderr}");

    let count = "select count(*) as n from public.customers";
    let (table, _) = run_in(dir.path(), &["query", count]);
    let (expected, records) = sample_customers();
    assert!(table.contains(&format!("| {expected} ")), "{table}");
    let (csv, _) = run_in(dir.path(), &["query", count, "--output", "csv"]);
    assert_eq!(csv, format!("n\n{expected}\n"));
    let (json, _) = run_in(
        dir.path(),
        &[
            "query",
            "select id from public.customers",
            "--output",
            "json",
        ],
    );
    assert_eq!(json.lines().count(), expected);

    let (status, _) = run_in(dir.path(), &["status"]);
    let customers = format!("public.customers: delta version 1, {expected} rows in 1 files");
    assert!(status.contains(&customers), "{status}");
    let checkpoint = format!("  dbserver1.public.customers[0]: next offset {records}\n");
    assert!(status.contains(&checkpoint), "{status}");
    assert!(
        status.contains("public.all_types: delta version 1, "),
        "{status}"
    );
}

#[cfg(all(feature = "iceberg", feature = "hudi"))]
#[test]
fn sql_over_every_format_returns_the_expected_state() {
    use cdc_core::testing::{compare_raw_with_expected, VariantLoss};
    use common::{layout, s};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for scenario_name in ["crud", "schema_change", "types"] {
        for format in ["delta", "iceberg", "hudi"] {
            let (scenario, _dir, topics, wh) = layout(scenario_name, 40, false);
            let (_, wh_str) = (s(&topics), s(&wh));
            run_in(
                Path::new("."),
                &[
                    "sync",
                    "--format",
                    format,
                    "--source",
                    s(&topics),
                    "--warehouse",
                    wh_str,
                ],
            );
            let expected = scenario.expected();
            let (status, _) = run_in(Path::new("."), &["status", "--warehouse", wh_str]);
            for (table, keys) in &scenario.tables {
                let tables = cdc_lake::query::Tables {
                    warehouse: wh_str,
                    format: None,
                    settings: None,
                };
                let sql = format!("select * from {table}");
                let batches = runtime.block_on(tables.run(&sql)).unwrap();
                let schema = batches[0].schema();
                let rows = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
                compare_raw_with_expected(
                    table,
                    keys,
                    &rows,
                    &expected[table],
                    VariantLoss::of(scenario_name),
                )
                .unwrap_or_else(|e| panic!("{scenario_name} {format} {table}: {e}"));
                let line = format!("{table}: {format} version ");
                let rows_line = format!(", {} rows in ", expected[table].len());
                let shown = status.lines().find(|l| l.starts_with(&line));
                assert!(
                    shown.is_some_and(|l| l.contains(&rows_line)),
                    "{scenario_name}: {status}"
                );
            }
        }
    }
}

/// `status --source`: a table synced before the sink's last file landed trails by its records.
#[test]
fn status_shows_how_far_each_table_trails_its_source() {
    let (_scenario, dir, topics, wh) = common::layout("crud", 100, false);
    let customers = topics.join("dbserver1.public.customers/partition=0");
    let mut files: Vec<_> = std::fs::read_dir(&customers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_str().unwrap().ends_with(".keys.json"))
        .collect();
    files.sort();
    let last = files.pop().unwrap();
    let held_back = dir.path().join("held-back");
    std::fs::create_dir(&held_back).unwrap();
    let keys = last.with_extension("keys.json");
    for f in [&last, &keys] {
        std::fs::rename(f, held_back.join(f.file_name().unwrap())).unwrap();
    }
    let (topics_s, wh_s) = (common::s(&topics), common::s(&wh));
    run_in(
        Path::new("."),
        &["sync", "--source", topics_s, "--warehouse", wh_s],
    );
    for f in [&last, &keys] {
        std::fs::rename(held_back.join(f.file_name().unwrap()), f).unwrap();
    }
    let records = std::fs::read_to_string(&last).unwrap().lines().count();
    let args = ["status", "--warehouse", wh_s, "--source", topics_s];
    let (status, _) = run_in(Path::new("."), &args);
    let line = (status.lines())
        .find(|l| l.starts_with("  dbserver1.public.customers[0]: "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(line.ends_with(&format!(": lag {records}")), "{status}");
}
