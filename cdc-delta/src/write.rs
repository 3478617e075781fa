//! The files of one Delta commit: the touched files' kept rows rewritten (copy-on-write) or the
//! files put back with a new deletion vector, the upserted rows, and the `remove`/`add`/
//! `metaData` actions that say so.

use std::num::NonZeroU64;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use cdc_core::schema::evolution_rewrites_rows;
use cdc_core::sink::upsert::{
    carry_over, locate, lookup_removal, lookup_rows, Attempt, ChangedKeys, Located, OldRows,
    RowRemoval,
};
use cdc_core::storage::without_needless_dictionaries;
use deltalake::kernel::{Action, Add, MetadataExt};
use deltalake::logstore::ObjectStoreRef;
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake::table::config::TablePropertiesExt;
use deltalake::{DeltaTable, DeltaTableError};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use roaring::RoaringTreemap;

use crate::error::{DeltaSinkError, Result};
use crate::files::LiveFile;
use crate::locate::{candidates, DeltaFiles};
use crate::schema;
use crate::table::{allows_deletion_vectors, Loaded, TableLocation};

/// What the files holding changed keys became.
struct Touched {
    removes: Vec<deltalake::kernel::Remove>,
    /// Files put back with a new deletion vector.
    dv_adds: Vec<Add>,
    /// Old rows of upserts whose unchanged cells need them.
    old: OldRows,
    rows_deleted: u64,
}

/// What one attempt wrote, ready to commit.
pub struct Staged {
    /// The table the attempt read.
    pub(crate) state: Loaded,
    pub(crate) actions: Vec<Action>,
    /// The change set's own topic-partitions (one `txn` action each).
    pub(crate) offsets: cdc_core::model::Checkpoint,
    /// The table's whole checkpoint after the commit.
    pub(crate) checkpoint: cdc_core::model::Checkpoint,
    pub(crate) rows_written: u64,
    pub(crate) rows_deleted: u64,
}

impl TableLocation {
    /// Writes the files of one attempt and the actions that commit them.
    pub(crate) async fn stage_files(&self, a: Attempt<'_, Loaded>) -> Result<Staged> {
        let evolved = a.evolved();
        let state = a.state;
        let table = &state.table;
        let rewrite_all = evolved && evolution_rewrites_rows(&state.logical, &a.merged);
        let stored: SchemaRef = Arc::new(schema::stored_arrow_schema(&a.merged));
        let mut writer = self.data_writer(table, &stored, Some(&a.keys.upserts))?;
        let touched = self
            .rewrite_touched(
                &state,
                &a.keys,
                a.changes.truncate,
                rewrite_all,
                &stored,
                &mut writer,
            )
            .await?;
        let upserts = touched.old.resolve(&a.keys, None)?;
        if upserts.num_rows() > 0 {
            let rows = cdc_core::storage::to_storage(&upserts, &stored)?;
            writer
                .write(&rows)
                .await
                .map_err(self.delta_err("writing upserts"))?;
        }
        let adds = writer
            .close()
            .await
            .map_err(self.delta_err("closing data files"))?;
        let mut actions = Vec::with_capacity(touched.removes.len() + adds.len() + 1);
        if evolved {
            actions.push(self.metadata_action(table, &a.merged)?);
        }
        actions.extend(touched.removes.into_iter().map(Action::Remove));
        actions.extend(touched.dv_adds.into_iter().chain(adds).map(Action::Add));
        Ok(Staged {
            state,
            actions,
            offsets: a.changes.checkpoint.clone(),
            checkpoint: a.checkpoint,
            rows_written: upserts.num_rows() as u64,
            rows_deleted: touched.rows_deleted,
        })
    }

    /// Every file holding a changed key: removed, and its kept rows written to `writer`
    /// (copy-on-write) or the file put back with a new deletion vector.
    async fn rewrite_touched(
        &self,
        state: &Loaded,
        keys: &Arc<ChangedKeys>,
        truncate: bool,
        rewrite_all: bool,
        stored: &SchemaRef,
        writer: &mut DeltaWriter,
    ) -> Result<Touched> {
        let table = &state.table;
        let removal = match self.config.deletion_vectors && allows_deletion_vectors(table) {
            true if !rewrite_all => RowRemoval::MarkUpTo(self.config.deletion_vector_max_fraction),
            _ => RowRemoval::Rewrite,
        };
        let mut touched = Touched {
            removes: Vec::new(),
            dv_adds: Vec::new(),
            old: OldRows::new(keys),
            rows_deleted: 0,
        };
        if truncate {
            touched.removes = state.files.iter().map(|f| f.remove_action()).collect();
            return Ok(touched);
        }
        let candidates = candidates(&state.files, &keys.ranges(), removal, rewrite_all);
        let reader = Arc::new(self.files_reader(table, stored.clone())?);
        let mut located = locate(reader, keys.clone(), candidates, removal);
        let mut marked = Vec::new();
        while let Some(found) = located.next().await {
            let Some(mut f) = found? else { continue };
            touched.rows_deleted += f.deleted;
            let old = std::mem::replace(&mut f.old, RecordBatch::new_empty(keys.schema()));
            touched.old.add(old, &f.old_upserts);
            touched.removes.push(f.file.remove_action());
            match f.kept.take() {
                Some(kept) if kept.num_rows() > 0 => {
                    let kept = carry_over(&self.table, &kept, stored, &keys.schema())?;
                    writer
                        .write(&kept)
                        .await
                        .map_err(self.delta_err("writing kept rows"))?;
                }
                // Every row deleted: the file simply goes.
                Some(_) => {}
                None if (f.touched.len() + f.deleted_before.len()) as u64 >= f.rows => {}
                None => marked.push(f),
            }
        }
        touched.dv_adds = self
            .write_deletion_vectors(&table.object_store(), marked)
            .await?;
        Ok(touched)
    }

    /// The live rows of `state` that `keys` asks for (every live row with `every_row`), for
    /// `UpsertDriver::lookup`.
    pub(crate) async fn lookup(
        &self,
        state: &Loaded,
        keys: Arc<ChangedKeys>,
        every_row: bool,
    ) -> Result<RecordBatch> {
        let removal = lookup_removal(every_row);
        let candidates = candidates(&state.files, &keys.ranges(), removal, every_row);
        let stored: SchemaRef = Arc::new(schema::stored_arrow_schema(&keys.schema()));
        let reader = Arc::new(self.files_reader(&state.table, stored)?);
        lookup_rows(reader, keys, candidates, every_row).await
    }

    /// The reader of `table`'s data files, in the stored schema `stored`.
    pub(crate) fn files_reader(&self, table: &DeltaTable, stored: SchemaRef) -> Result<DeltaFiles> {
        let snapshot = table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        Ok(DeltaFiles {
            table: self.table.clone(),
            store: table.object_store(),
            table_root: self.url.clone(),
            stored,
            partition_columns: snapshot.metadata().partition_columns().to_vec(),
        })
    }

    /// The writer of the attempt's data files (rolling over at the target file size, with
    /// statistics of the columns the table keeps them for; the columns whose values in `sample`
    /// are almost all distinct without a dictionary).
    pub(crate) fn data_writer(
        &self,
        table: &DeltaTable,
        stored: &SchemaRef,
        sample: Option<&RecordBatch>,
    ) -> Result<DeltaWriter> {
        let snapshot = table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        let config = snapshot.table_config();
        let stats = match &config.data_skipping_stats_columns {
            Some(cols) => cols.iter().map(|c| c.to_string()).collect(),
            None => stats_columns(stored),
        };
        // delta-rs's own default properties, but for the dictionaries.
        let mut props = WriterProperties::builder()
            .set_created_by(format!("delta-rs version {}", deltalake::crate_version()))
            .set_compression(Compression::SNAPPY);
        if let Some(sample) = sample {
            props = without_needless_dictionaries(props, sample);
        }
        Ok(DeltaWriter::new(
            table.object_store(),
            WriterConfig::new(
                stored.clone(),
                // The table's own (the sink's settings only choose them for a new table).
                snapshot.metadata().partition_columns().to_vec(),
                Some(props.build()),
                NonZeroU64::new(self.config.target_file_size),
                None,
                config.num_indexed_cols(),
                Some(stats),
            ),
        ))
    }

    fn metadata_action(&self, table: &DeltaTable, merged: &Schema) -> Result<Action> {
        let delta_schema =
            schema::delta_schema(merged).map_err(|e| cdc_core::Error::UnsupportedSchema {
                table: self.table.to_string(),
                column: String::new(),
                message: format!("no Delta schema for {merged}: {e}"),
            })?;
        let snapshot = table
            .snapshot()
            .map_err(self.delta_err("reading the snapshot"))?;
        let metadata = snapshot
            .metadata()
            .clone()
            .with_schema(&delta_schema)
            .map_err(|e| self.delta_err("evolving the schema")(DeltaTableError::from(e)))?;
        Ok(Action::Metadata(metadata))
    }

    /// Writes the new deletion vectors of one commit into one DV file and returns the `add`
    /// actions that put each file back with its new deletion vector (same path, size and
    /// statistics; the statistics' bounds are no longer tight).
    async fn write_deletion_vectors(
        &self,
        store: &ObjectStoreRef,
        files: Vec<Located<LiveFile>>,
    ) -> Result<Vec<Add>> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let dv_err = |path: &str| {
            let path = path.to_string();
            move |e: crate::dv::DvError| DeltaSinkError::DeletionVector {
                table: self.table.to_string(),
                path: path.clone(),
                message: e.to_string(),
            }
        };
        let mut writer = crate::dv::DvFileWriter::new();
        let mut adds = Vec::with_capacity(files.len());
        for f in files {
            let deleted: RoaringTreemap =
                f.deleted_before.iter().chain(&f.touched).copied().collect();
            let descriptor = writer.push(&deleted).map_err(dv_err(f.file.path()))?;
            let file = f.file.add;
            adds.push(Add {
                path: file.path,
                partition_values: file.partition_values,
                size: file.size,
                modification_time: file.modification_time,
                data_change: true,
                stats: file.stats.map(|s| loose_bounds(&s)),
                tags: None,
                deletion_vector: Some(descriptor),
                base_row_id: None,
                default_row_commit_version: None,
                clustering_provider: None,
            });
        }
        writer.finish(store).await.map_err(dv_err(""))?;
        Ok(adds)
    }
}

/// File statistics of a file with rows deleted by a deletion vector: `numRecords` and the
/// bounds still describe the physical file, so they are marked not tight (`tightBounds`).
fn loose_bounds(stats: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(stats) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("tightBounds".into(), serde_json::Value::Bool(false));
            serde_json::Value::Object(map).to_string()
        }
        _ => stats.to_string(),
    }
}

/// Columns to keep min/max statistics for: all top-level columns but decimals wider than a
/// double's 15 exact digits, whose statistics delta-rs writes as JSON floats it cannot read back.
fn stats_columns(stored: &Schema) -> Vec<String> {
    stored
        .fields()
        .iter()
        .filter(|f| !matches!(f.data_type(), arrow_schema::DataType::Decimal128(p, _) if *p > 15))
        .map(|f| f.name().clone())
        .collect()
}
