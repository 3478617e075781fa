//! Helpers of the command-line tests.
// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cdc_core::model::TableId;
use cdc_core::sink::JsonlWarehouse;
use cdc_core::testing::{compare_with_expected, Scenario};

/// Runs the binary with `args`.
pub fn cdc_lake(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cdc-lake"))
        .args(args)
        .output()
        .expect("runs")
}

/// `sync` of the raw files at `topics` into jsonl tables at `wh`, then `extra`.
pub fn jsonl_sync<'a>(topics: &'a Path, wh: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["sync", "--format", "jsonl", "--source", s(topics)];
    args.extend(["--warehouse", s(wh)]);
    args.extend(extra);
    args
}

/// A path as the `&str` a command line takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A scenario's S3-sink layout in a temporary directory: (dir guard, topics dir, warehouse dir).
pub fn layout(
    name: &str,
    per_file: usize,
    gzip: bool,
) -> (Scenario, tempfile::TempDir, PathBuf, PathBuf) {
    let scenario = Scenario::load(name);
    let dir = tempfile::tempdir().unwrap();
    let topics = dir.path().join("topics");
    let wh = dir.path().join("wh");
    scenario.write_s3_layout(&topics, per_file, gzip);
    (scenario, dir, topics, wh)
}

/// Asserts `table` of the jsonl `warehouse` equals the scenario's expected state.
pub fn assert_jsonl_expected(
    warehouse: &JsonlWarehouse,
    scenario: &Scenario,
    table: &TableId,
    keys: &[String],
) {
    let t = warehouse.load(table).unwrap().unwrap();
    let rows = t.sorted_rows().unwrap();
    compare_with_expected(table, keys, &rows, &scenario.expected()[table]).unwrap();
}

/// Sends SIGTERM to `child` and asserts it then exits successfully; returns its output.
pub fn terminate(child: std::process::Child) -> std::process::Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    out
}
