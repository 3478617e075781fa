//! Delta in the upsert benchmark: the sink with deletion vectors (`cdc`) or copy-on-write
//! (`cow`), and the peer, a plain delta-rs `MERGE` of the same batch (`merge`).

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use cdc_core::fold::ChangeSet;
use cdc_core::testing::bench::cpu_seconds;
use cdc_delta::{DeltaSinkConfig, DeltaWarehouse};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::DeltaTable;

use super::{table_id, BoxError};

/// The warehouse at `dir` (copy-on-write when `cow`).
pub fn warehouse(dir: &str, cow: bool) -> Result<DeltaWarehouse, BoxError> {
    let config = DeltaSinkConfig {
        deletion_vectors: !cow,
        ..DeltaSinkConfig::default()
    };
    Ok(DeltaWarehouse::new(dir, config)?)
}

async fn table(dir: &str) -> Result<DeltaTable, BoxError> {
    let wh = warehouse(dir, false)?;
    Ok(wh.sink(&table_id()).load().await?.ok_or("no table")?)
}

/// The table's data files.
pub async fn data_files(dir: &str) -> Result<Vec<String>, BoxError> {
    let wh = warehouse(dir, false)?;
    let root = wh
        .table_url(&table_id())
        .to_file_path()
        .map_err(|_| "local table")?;
    let t = table(dir).await?;
    Ok(t.snapshot()?
        .log_data()
        .into_iter()
        .map(|f| root.join(f.path().as_ref() as &str).display().to_string())
        .collect())
}

/// A full scan through DataFusion (deletion vectors applied): digest and time.
pub async fn digest(dir: &str) -> Result<serde_json::Value, BoxError> {
    let t = table(dir).await?;
    // delta-rs 0.32 applies a deletion vector at the wrong rows when DataFusion splits one
    // file into byte ranges (few large files, several partitions): whole files only.
    let config =
        deltalake::datafusion::prelude::SessionConfig::new().with_repartition_file_scans(false);
    let ctx = SessionContext::new_with_config(config);
    t.update_datafusion_session(&ctx.state())?;
    let start = Instant::now();
    ctx.register_table("t", t.table_provider().await?)?;
    let sql = "SELECT count(*), count(DISTINCT id), sum(id), sum(amount), count(name) FROM t";
    let batches = ctx.sql(sql).await?.collect().await?;
    let cell = |c: usize| {
        arrow_cast::display::array_value_to_string(batches[0].column(c), 0).unwrap_or_default()
    };
    Ok(serde_json::json!({
        "scan_seconds": start.elapsed().as_secs_f64(),
        "rows": cell(0), "keys": cell(1), "id_sum": cell(2),
        "amount_sum": format!("{:.2}", cell(3).parse::<f64>().unwrap_or(f64::NAN)),
        "names": cell(4),
    }))
}

/// The peer: delta-rs `MERGE` of the upserts (op `u`) and deletes (op `d`).
pub async fn merge(dir: &str, changes: &ChangeSet) -> Result<serde_json::Value, BoxError> {
    let t = table(dir).await?;
    let n_del = changes.deletes.num_rows();
    let schema = changes.upserts.schema();
    let mut deletes: Vec<arrow_array::ArrayRef> = vec![changes.deletes.column(0).clone()];
    deletes.extend(
        schema
            .fields()
            .iter()
            .skip(1)
            .map(|f| arrow_array::new_null_array(f.data_type(), n_del)),
    );
    let deletes = RecordBatch::try_new(schema, deletes)?;
    let with_op = |b: &RecordBatch, op: &str| -> Result<RecordBatch, BoxError> {
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("op", DataType::Utf8, false));
        let mut cols = b.columns().to_vec();
        cols.push(Arc::new(StringArray::from(vec![op; b.num_rows()])));
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
    };
    let ups = with_op(&changes.upserts, "u")?;
    let source = arrow_select::concat::concat_batches(
        &ups.schema(),
        &[ups.clone(), with_op(&deletes, "d")?],
    )?;
    let ctx = SessionContext::new();
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let (_table, metrics) = t
        .merge(ctx.read_batch(source)?, "target.id = source.id")
        .with_source_alias("source")
        .with_target_alias("target")
        .when_matched_delete(|d| d.predicate("source.op = 'd'"))?
        .when_matched_update(|u| {
            u.predicate("source.op = 'u'")
                .update("name", "source.name")
                .update("amount", "source.amount")
                .update("updated_at", "source.updated_at")
        })?
        .when_not_matched_insert(|i| {
            i.predicate("source.op = 'u'")
                .set("id", "source.id")
                .set("name", "source.name")
                .set("amount", "source.amount")
                .set("updated_at", "source.updated_at")
        })?
        .await?;
    Ok(serde_json::json!({
        "seconds": start.elapsed().as_secs_f64(),
        "cpu_seconds": cpu_seconds() - cpu,
        "files_removed": metrics.num_target_files_removed,
        "files_added": metrics.num_target_files_added,
    }))
}
