//! The `jsonl` format: the reference table persisted on the local filesystem, for inspection.
//!
//! Each table lives at `<root>/<namespace>/<name>/`: `v<N>.arrow` (the rows, Arrow IPC),
//! `v<N>.jsonl` (the rows rendered as JSON lines, ordered by key) and `_current.json`, which names
//! the current version and holds the checkpoint. A commit writes the new version's files, then
//! replaces `_current.json` by an atomic rename: that rename is the commit point.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{CommitOutcome, MemTable, TableSchema, TableSink, Warehouse};
use crate::error::{Error, Result};
use crate::fold::ChangeSet;
use crate::model::{Checkpoint, TableId};
use crate::render::render_rows;

/// Tables as JSON lines under a local directory.
#[derive(Debug, Clone)]
pub struct JsonlWarehouse {
    root: PathBuf,
}

impl JsonlWarehouse {
    /// A warehouse rooted at `root` (created on first commit).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        JsonlWarehouse { root: root.into() }
    }

    /// The directory of one table.
    pub fn table_dir(&self, table: &TableId) -> PathBuf {
        self.root.join(&*table.namespace).join(&*table.name)
    }

    /// Loads a table's current state, if it has one.
    pub fn load(&self, table: &TableId) -> Result<Option<MemTable>> {
        load(&self.table_dir(table), table)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Current {
    version: u64,
    key_columns: Vec<String>,
    checkpoint: Checkpoint,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn load(dir: &Path, table: &TableId) -> Result<Option<MemTable>> {
    let current_path = dir.join("_current.json");
    let text = match fs::read_to_string(&current_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&current_path, e)),
    };
    let current: Current = serde_json::from_str(&text)
        .map_err(|e| Error::sink(table, format!("corrupt {}: {e}", current_path.display())))?;
    let data_path = dir.join(format!("v{:08}.arrow", current.version));
    let file = fs::File::open(&data_path).map_err(|e| io_err(&data_path, e))?;
    let reader = arrow_ipc::reader::FileReader::try_new(file, None)
        .map_err(|e| Error::arrow(format!("reading {}", data_path.display()), e))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::arrow(format!("reading {}", data_path.display()), e))?;
    let rows = arrow_select::concat::concat_batches(&schema, &batches)
        .map_err(|e| Error::arrow(format!("reading {}", data_path.display()), e))?;
    Ok(Some(MemTable {
        table: table.clone(),
        schema,
        key_columns: current.key_columns,
        rows,
        checkpoint: current.checkpoint,
        version: current.version,
    }))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

fn persist(dir: &Path, t: &MemTable) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let sorted = t.sorted_rows()?;
    let data_path = dir.join(format!("v{:08}.arrow", t.version));
    let mut buf = Vec::new();
    {
        let mut w = arrow_ipc::writer::FileWriter::try_new(&mut buf, &t.schema)
            .map_err(|e| Error::arrow("writing table data", e))?;
        w.write(&sorted)
            .map_err(|e| Error::arrow("writing table data", e))?;
        w.finish()
            .map_err(|e| Error::arrow("writing table data", e))?;
    }
    write_atomically(&data_path, &buf)?;
    let mut lines = String::new();
    for row in render_rows(&sorted)? {
        lines.push_str(&serde_json::Value::Object(row).to_string());
        lines.push('\n');
    }
    write_atomically(
        &dir.join(format!("v{:08}.jsonl", t.version)),
        lines.as_bytes(),
    )?;
    let current = Current {
        version: t.version,
        key_columns: t.key_columns.clone(),
        checkpoint: t.checkpoint.clone(),
    };
    write_atomically(
        &dir.join("_current.json"),
        serde_json::to_string_pretty(&current)
            .expect("serialises")
            .as_bytes(),
    )?;
    // Older versions are unreferenced now.
    for v in t.version.saturating_sub(3)..t.version {
        for ext in ["arrow", "jsonl"] {
            let _ = fs::remove_file(dir.join(format!("v{v:08}.{ext}")));
        }
    }
    Ok(())
}

#[async_trait]
impl Warehouse for JsonlWarehouse {
    async fn open(&self, table: &TableId) -> Result<Box<dyn TableSink>> {
        let dir = self.table_dir(table);
        let state = load(&dir, table)?;
        Ok(Box::new(JsonlSink {
            table: table.clone(),
            dir: Arc::from(dir),
            state,
        }))
    }
}

/// The sink of one JSON-lines table.
#[derive(Debug)]
struct JsonlSink {
    table: TableId,
    dir: Arc<Path>,
    state: Option<MemTable>,
}

#[async_trait]
impl TableSink for JsonlSink {
    fn table(&self) -> &TableId {
        &self.table
    }

    async fn schema(&mut self) -> Result<Option<TableSchema>> {
        Ok(self.state.as_ref().map(|t| TableSchema {
            schema: t.schema.clone(),
            key_columns: t.key_columns.clone(),
        }))
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        Ok(self.state.as_ref().map(|t| t.checkpoint.clone()))
    }

    async fn apply(&mut self, changes: &ChangeSet) -> Result<CommitOutcome> {
        let mut next = self
            .state
            .clone()
            .unwrap_or_else(|| MemTable::create(changes));
        let outcome = next.apply(changes)?;
        if matches!(outcome, CommitOutcome::Committed { .. }) {
            persist(&self.dir, &next)?;
            self.state = Some(next);
        }
        Ok(outcome)
    }
}
