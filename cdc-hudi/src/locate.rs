//! The file groups a change set may touch and how they are read for cdc-core's `locate`:
//! pruned by the numeric key range (single integer keys) or the record-key range of each
//! latest base file's footer, then read through [`HudiFiles`].

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use cdc_core::sink::upsert::{
    ChangedKeys, FilePlan, FileReader, KeyBounds, KeyRanges, RowRemoval, SortedStrings,
};
use cdc_core::storage::to_storage;

use crate::error::{HudiSinkError, Result};
use crate::files::TableStore;
use crate::index::record_keys;
use crate::schema::stored_schema;
use crate::table::{FileGroup, TableState};

/// A file group with the index of its next base file in the instant (its write token).
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub idx: usize,
    pub group: FileGroup,
}

/// Whether the key is a single integer column stored as it is, so the changed keys' numbers
/// equal the footers' numeric ranges.
pub(crate) fn int_key(key_columns: &[String], merged: &Schema, stored: &Schema) -> bool {
    let [key] = key_columns else {
        return false;
    };
    match (merged.field_with_name(key), stored.field_with_name(key)) {
        (Ok(m), Ok(s)) => s.data_type().is_integer() && s.data_type() == m.data_type(),
        _ => false,
    }
}

/// The changed keys as numbers (single integer key) and as record keys (only when some file
/// group has no numeric range to prune by).
pub(crate) fn key_ranges(
    keys: &ChangedKeys,
    state: &TableState,
    int_key: bool,
) -> Result<KeyRanges> {
    let ints = if int_key { keys.first_key_ints() } else { None };
    let need_text = ints.is_none()
        || state
            .groups
            .values()
            .any(|g| g.int_range.is_none() && g.rows > 0);
    let strings = match need_text {
        true => Some(SortedStrings::new(changed_record_keys(keys, state)?)),
        false => None,
    };
    Ok(KeyRanges::new(ints, strings))
}

/// The record keys of every changed key, as the table's key generator makes them.
fn changed_record_keys(keys: &ChangedKeys, state: &TableState) -> Result<Vec<String>> {
    let layout = |message: String| HudiSinkError::Layout {
        table: keys.table().to_string(),
        message,
    };
    let batch = keys.key_batch()?;
    let stored: SchemaRef = Arc::new(stored_schema(&batch.schema()));
    let stored_keys = to_storage(&batch, &stored)?;
    let props = &state.props;
    let keys = record_keys(
        &stored_keys,
        &props.key_columns,
        props.partition_fields.len(),
    )
    .map_err(layout)?;
    Ok(keys.iter().flatten().map(str::to_string).collect())
}

/// The file groups to read, numbered from 0 in the order they are given to `locate`.
pub(crate) fn candidates(
    state: &TableState,
    ranges: &KeyRanges,
    int_key: bool,
    rewrite_all: bool,
) -> Vec<(Candidate, FilePlan)> {
    state
        .groups
        .values()
        .filter(|g| rewrite_all || g.rows > 0)
        .filter_map(|g| {
            let bounds = match (g.int_range, &g.min_key, &g.max_key) {
                (Some((a, b)), _, _) if int_key => KeyBounds::Ints(a, b),
                (_, Some(a), Some(b)) => KeyBounds::Strings(a, b),
                _ => KeyBounds::Unknown,
            };
            let plan = ranges.plan(&bounds, None, RowRemoval::Rewrite, rewrite_all)?;
            Some((g.clone(), plan))
        })
        .enumerate()
        .map(|(idx, (group, plan))| (Candidate { idx, group }, plan))
        .collect()
}

/// Reads base files.
pub(crate) struct HudiFiles {
    pub store: TableStore,
}

#[async_trait]
impl FileReader for HudiFiles {
    type File = Candidate;
    type Error = HudiSinkError;

    async fn read(
        &self,
        file: &Candidate,
        columns: Option<&[String]>,
        rows: Option<&[u32]>,
    ) -> Result<RecordBatch> {
        let g = &file.group;
        self.store
            .read_base_file(&g.location(), &g.path(), g.size, columns, rows)
            .await
    }

    /// The base file's name: its file id (a UUID) and instant make it unique in the table.
    fn file_name<'a>(&self, file: &'a Candidate) -> Option<&'a str> {
        Some(&file.group.file_name)
    }
}
