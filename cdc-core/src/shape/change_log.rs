//! Change logs: every event as a row of its own, keyed by its Kafka coordinates, so folding
//! keeps them all and a replay rewrites the same rows.

use std::sync::Arc;

use arrow_array::TimestampMicrosecondArray;
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};

use super::{micros, position_text, shape_columns, shape_key, with_columns, TableShape};
use crate::error::{Error, Result};
use crate::model::{ChangeBatch, Op};

/// `batch` for a change-log table: the Kafka coordinates, op, source time, position and
/// transaction of each event, then its row image (`after`; a delete's `before`; all null for a
/// truncate), every image column nullable. Every event becomes an insert of its own key, but
/// a Kafka tombstone (Debezium's second record of a delete) writes no row.
pub fn change_log(batch: ChangeBatch) -> Result<ChangeBatch> {
    let ev = &batch.events;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            ev.iter().map(|e| &*e.position.topic),
        )),
        Arc::new(Int32Array::from_iter_values(
            ev.iter().map(|e| e.position.partition),
        )),
        Arc::new(Int64Array::from_iter_values(
            ev.iter().map(|e| e.position.offset),
        )),
        Arc::new(StringArray::from_iter_values(
            ev.iter().map(|e| e.op.code()),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter(ev.iter().map(|e| micros(e.source_ts_ms)))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            ev.iter().map(|e| position_text(&e.position)),
        )),
        Arc::new(StringArray::from_iter(
            ev.iter().map(|e| e.tx_id.as_deref()),
        )),
    ];
    let images = nullable(&batch.rows)?;
    let rows = with_columns(&images, shape_columns(TableShape::ChangeLog), columns, true)?;
    let added = shape_columns(TableShape::ChangeLog).len();
    let mut masks = vec![None; added];
    masks.extend(batch.unchanged.columns().iter().cloned());
    let mut events = batch.events;
    for e in &mut events {
        // A tombstone is no change of the source: a delete of its own (absent) row, so that
        // it is committed (the checkpoint passes it) without a row.
        e.op = match e.tombstone_of_delete {
            true => Op::Delete,
            false => Op::Create,
        };
    }
    Ok(ChangeBatch {
        table: batch.table,
        key_columns: Arc::from(shape_key(TableShape::ChangeLog, &[])),
        rows,
        events,
        unchanged: crate::model::UnchangedMask::new(masks),
    })
}

/// `rows` with every column nullable (a delete's or truncate's image lacks values).
fn nullable(rows: &RecordBatch) -> Result<RecordBatch> {
    let schema = rows.schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        rows.columns().to_vec(),
    )
    .map_err(|e| Error::arrow("change-log images", e))
}
