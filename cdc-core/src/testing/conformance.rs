//! The sink conformance kit every format runs: the same crash, concurrent-writer and replay
//! cases against each format's warehouse, which the format's tests then read back with its own
//! independent reader.
//!
//! - [`crash_mid_sync`]: the writer stops at a fail point ([`FAIL_POINTS`]) in the middle of a
//!   scenario; [`restart_after_crash`] syncs again with a healthy writer.
//! - [`OtherWriter`]: a second writer (another pipeline, another topic) commits to
//!   `public.customers` just before the first writer's commits; the first must redo its
//!   attempt on the new version and keep both writers' rows ([`OtherWriter::undo`] removes the
//!   second writer's rows again, so the table can be compared with the fixture).
//! - Replay: [`super::assert_replay_commits_nothing`].
//! - A column the source drops: [`dropped_column_scenario`].

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use futures::FutureExt;

use super::{other_writer_change, sync_scenario, Scenario};
use crate::model::TableId;
use crate::sink::upsert::{BeforeCommitHook, FailPoint, TestHooks};
use crate::sink::Warehouse;

/// Every fail point a crash test stops at.
pub const FAIL_POINTS: [FailPoint; 2] = [FailPoint::AfterDataFiles, FailPoint::AfterCommit];

/// Test hooks that stop the writer at `point` on the third commit of a table: crash in the
/// middle of a scenario.
pub fn crash_hooks(point: FailPoint) -> TestHooks {
    TestHooks::fail_at(point, 2)
}

/// Syncs `scenario` into `crashing` (opened with [`crash_hooks`]) and asserts that it stopped
/// at the fail point.
pub async fn crash_mid_sync(scenario: &Scenario, dir: &Path, crashing: &dyn Warehouse) {
    let err = sync_scenario(scenario, dir, 5, Default::default(), crashing)
        .await
        .expect_err("the fail point stops the sync");
    assert!(err.to_string().contains("fail point"), "{err}");
}

/// Syncs `scenario` again, into `healthy` (the same tables, no fail point): it resumes at
/// each table's checkpoint.
pub async fn restart_after_crash(scenario: &Scenario, dir: &Path, healthy: &dyn Warehouse) {
    sync_scenario(scenario, dir, 5, Default::default(), healthy)
        .await
        .expect("the restarted sync");
}

/// A second writer of `public.customers` that commits before the first writer's commits.
#[derive(Clone)]
pub struct OtherWriter {
    warehouse: Arc<dyn Warehouse>,
    commits: Arc<AtomicI64>,
    times: i64,
}

impl OtherWriter {
    /// The second writer commits through `warehouse`, before the first `times` commit attempts
    /// that find the table.
    pub fn new(warehouse: Arc<dyn Warehouse>, times: i64) -> Self {
        OtherWriter {
            warehouse,
            commits: Arc::default(),
            times,
        }
    }

    /// The table it writes.
    pub fn table() -> TableId {
        TableId::new("public", "customers")
    }

    /// The before-commit hook of the first writer: an upsert of key `100_000 + n` by the
    /// second writer (at offset `n` of its own topic).
    pub fn hook(&self) -> TestHooks {
        let other = self.clone();
        TestHooks::before_commit(BeforeCommitHook(Arc::new(move || {
            let other = other.clone();
            async move { other.commit_one().await }.boxed()
        })))
    }

    /// Commits the second writer's next row, if it has rows left to commit.
    pub async fn commit_one(&self) {
        let n = self.commits.load(Ordering::SeqCst);
        if n >= self.times {
            return;
        }
        let mut sink = self.warehouse.open(&Self::table()).await.expect("opens");
        // Before the table's first commit there is nothing to write to yet.
        let Some(schema) = sink.schema().await.expect("reads the schema") else {
            return;
        };
        let set = other_writer_change(&schema.schema, 100_000 + n as i32, n, true);
        sink.apply(&set).await.expect("other writer commits");
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// How many rows the second writer committed.
    pub fn commits(&self) -> i64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// The keys of its rows.
    pub fn ids(&self) -> Vec<i32> {
        (0..self.commits()).map(|n| 100_000 + n as i32).collect()
    }

    /// Deletes its rows again (the table's logical schema is `schema`).
    pub async fn undo(&self, schema: &SchemaRef) {
        for n in 0..self.commits() {
            let set = other_writer_change(schema, 100_000 + n as i32, 100 + n, false);
            let mut sink = self.warehouse.open(&Self::table()).await.expect("opens");
            sink.apply(&set).await.expect("other writer deletes");
        }
    }
}

/// The `schema_change` fixture followed by the source dropping a column: two more real-shaped
/// events of `public.accounts` whose value schema no longer has `note` (an update of id 5,
/// whose note was `after widen int`, and an insert of id 13), written as a scenario of its own
/// under `dir`. Its `expected/` has `note` null in both rows — the column stays, nullable —
/// while rows no event touched after the drop (id 2, `n2`) keep their value.
pub fn dropped_column_scenario(dir: &Path) -> Scenario {
    let base = Scenario::load("schema_change");
    let out = dir.join("schema_change-dropped");
    std::fs::create_dir_all(out.join("expected")).expect("scenario dir");
    std::fs::copy(base.dir.join("scenario.json"), out.join("scenario.json")).expect("copy");
    let text = std::fs::read_to_string(base.dir.join("events.jsonl")).expect("events.jsonl");
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect();
    let last_update = lines
        .iter()
        .rev()
        .find(|e| e["value"]["payload"]["op"] == "u")
        .cloned()
        .expect("an update");
    let mut offset = lines
        .iter()
        .filter_map(|e| e["offset"].as_i64())
        .max()
        .unwrap_or(0);
    for (op, id, code, score) in [("u", 5, "c5", 782), ("c", 13, "c13", 13)] {
        offset += 1;
        let mut event = last_update.clone();
        event["offset"] = offset.into();
        event["key"]["payload"]["id"] = id.into();
        let value = &mut event["value"];
        for envelope_field in value["schema"]["fields"].as_array_mut().expect("fields") {
            let image = envelope_field["field"] == "before" || envelope_field["field"] == "after";
            if let (true, Some(fields)) = (image, envelope_field["fields"].as_array_mut()) {
                fields.retain(|f| f["field"] != "note");
            }
        }
        let payload = &mut value["payload"];
        payload["op"] = op.into();
        payload["before"] = serde_json::Value::Null;
        payload["after"] =
            serde_json::json!({"id": id, "code": code, "score": score, "status": "active"});
        lines.push(event);
    }
    let events: String = lines.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(out.join("events.jsonl"), events).expect("events.jsonl");
    for (table, _) in &base.tables {
        let mut rows = base.expected().remove(table).expect("expected rows");
        for row in rows.iter_mut().filter(|r| r["id"] == 5) {
            row.insert("note".into(), serde_json::Value::Null);
        }
        let mut new_row = rows[0].clone();
        for (k, v) in [
            ("id", 13.into()),
            ("code", "c13".into()),
            ("score", 13.into()),
            ("note", serde_json::Value::Null),
            ("status", "active".into()),
        ] {
            new_row.insert(k.into(), v);
        }
        rows.push(new_row);
        let path = out.join("expected").join(format!("{table}.json"));
        std::fs::write(path, serde_json::to_string_pretty(&rows).expect("JSON")).expect("expected");
    }
    Scenario {
        name: "schema_change-dropped".into(),
        dir: out,
        tables: base.tables,
    }
}
