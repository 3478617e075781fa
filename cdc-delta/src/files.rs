//! The table's live data files, as cdc-lake keeps them between its own commits.
//!
//! delta-rs rebuilds its list of files after each commit by replaying the log over the whole
//! list (a cost that grows with every file the table holds), so the driver keeps its own: read
//! once from the snapshot it loads, then changed by the `add` and `remove` actions of each of
//! its commits. Another writer's commit makes the driver load the table again.

use std::collections::BTreeMap;

use deltalake::kernel::{Action, Add, DeletionVectorDescriptor, LogicalFileView, Remove};

/// A live data file: its `add` action and what pruning reads of its statistics.
#[derive(Debug, Clone)]
pub(crate) struct LiveFile {
    pub add: Add,
    /// `numRecords` of its statistics (the physical rows, deletion vector not applied).
    pub num_records: Option<u64>,
    /// Min and max of the first key column, when it is an integer with statistics.
    pub key_bounds: Option<(i64, i64)>,
}

impl LiveFile {
    fn new(add: Add, key_column: &str) -> Self {
        let stats = add
            .stats
            .as_deref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
        let bound = |which: &str| stats.as_ref()?.get(which)?.get(key_column)?.as_i64();
        let key_bounds = bound("minValues").zip(bound("maxValues"));
        let num_records = stats
            .as_ref()
            .and_then(|s| s.get("numRecords"))
            .and_then(serde_json::Value::as_u64);
        LiveFile {
            add,
            num_records,
            key_bounds,
        }
    }

    pub fn path(&self) -> &str {
        &self.add.path
    }

    pub fn size(&self) -> u64 {
        self.add.size.max(0) as u64
    }

    pub fn deletion_vector(&self) -> Option<&DeletionVectorDescriptor> {
        self.add.deletion_vector.as_ref()
    }

    /// Rows not deleted by its deletion vector.
    pub fn live_rows(&self) -> Option<u64> {
        let deleted = self.deletion_vector().map_or(0, |dv| dv.cardinality as u64);
        self.num_records.map(|n| n.saturating_sub(deleted))
    }

    /// The `remove` action that takes it out of the table.
    pub fn remove_action(&self) -> Remove {
        Remove {
            path: self.add.path.clone(),
            data_change: true,
            deletion_timestamp: Some(crate::commit::now_millis()),
            extended_file_metadata: Some(true),
            size: Some(self.add.size),
            partition_values: Some(self.add.partition_values.clone()),
            deletion_vector: self.add.deletion_vector.clone(),
            tags: None,
            base_row_id: None,
            default_row_commit_version: None,
        }
    }
}

/// The live data files of a table by path.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileIndex {
    files: BTreeMap<String, LiveFile>,
    key_column: String,
}

impl FileIndex {
    /// The files of a loaded snapshot.
    pub fn from_files(files: impl IntoIterator<Item = LogicalFileView>, key_column: &str) -> Self {
        let files = files
            .into_iter()
            .map(|f| {
                let remove = f.remove_action(true);
                let add = Add {
                    path: remove.path,
                    partition_values: remove.partition_values.unwrap_or_default(),
                    size: f.size(),
                    modification_time: f.modification_time(),
                    data_change: true,
                    stats: f.stats(),
                    tags: None,
                    deletion_vector: remove.deletion_vector,
                    base_row_id: None,
                    default_row_commit_version: None,
                    clustering_provider: None,
                };
                (add.path.clone(), LiveFile::new(add, key_column))
            })
            .collect();
        FileIndex {
            files,
            key_column: key_column.to_string(),
        }
    }

    /// The files after a commit of `actions` (removes before adds: a file put back with a new
    /// deletion vector is removed and added in the same commit).
    pub fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            if let Action::Remove(r) = action {
                self.files.remove(&r.path);
            }
        }
        for action in actions {
            if let Action::Add(a) = action {
                let file = LiveFile::new(a.clone(), &self.key_column);
                self.files.insert(a.path.clone(), file);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &LiveFile> {
        self.files.values()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str, stats: &str) -> Add {
        Add {
            path: path.into(),
            partition_values: Default::default(),
            size: 10,
            modification_time: 0,
            data_change: true,
            stats: Some(stats.into()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }
    }

    #[test]
    fn commits_change_the_index_and_statistics_give_bounds() {
        let mut index = FileIndex {
            key_column: "id".into(),
            ..Default::default()
        };
        let a = add(
            "a.parquet",
            r#"{"numRecords":3,"minValues":{"id":1},"maxValues":{"id":9}}"#,
        );
        let b = add("b.parquet", r#"{"numRecords":2,"minValues":{"id":"x"}}"#);
        index.apply(&[Action::Add(a.clone()), Action::Add(b)]);
        assert_eq!(index.len(), 2);
        let first = index.iter().next().unwrap();
        assert_eq!(first.key_bounds, Some((1, 9)));
        assert_eq!(first.live_rows(), Some(3));
        let second = index.iter().nth(1).unwrap();
        assert_eq!(second.key_bounds, None);

        // The file comes back with a deletion vector of one row, and b goes.
        let remove_a = index.iter().next().unwrap().remove_action();
        let remove_b = index.iter().nth(1).unwrap().remove_action();
        let mut back = a;
        back.deletion_vector = Some(DeletionVectorDescriptor {
            storage_type: deltalake::kernel::StorageType::Inline,
            path_or_inline_dv: "x".into(),
            offset: None,
            size_in_bytes: 1,
            cardinality: 1,
        });
        index.apply(&[
            Action::Remove(remove_a),
            Action::Remove(remove_b),
            Action::Add(back),
        ]);
        assert_eq!(index.len(), 1);
        let only = index.iter().next().unwrap();
        assert_eq!(only.path(), "a.parquet");
        assert_eq!(only.live_rows(), Some(2));
    }
}
