//! Soft deletes: a delete becomes an update of the row's flag columns that leaves every other
//! cell as the table holds it.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, StringArray, TimestampMicrosecondArray};

use super::{micros, position_text, shape_columns, with_columns, TableShape};
use crate::error::Result;
use crate::model::{ChangeBatch, Op, UnchangedMask};

/// `batch` for a soft-delete table: every event gets [`super::DELETED`] and the delete's time
/// and position (null unless it is a delete); a delete turns into an update whose cells other
/// than the key are unchanged, so the row keeps what it held (or, when the table never had the
/// row, the column defaults). A truncate stays a truncate.
pub fn soft_delete(batch: ChangeBatch) -> Result<ChangeBatch> {
    let n = batch.len();
    let is_delete: Vec<bool> = batch.events.iter().map(|e| e.op == Op::Delete).collect();
    let deleted: ArrayRef = Arc::new(BooleanArray::from(is_delete.clone()));
    let at: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from_iter((0..n).map(|i| {
            is_delete[i]
                .then(|| micros(batch.events[i].source_ts_ms))
                .flatten()
        }))
        .with_timezone("UTC"),
    );
    let position: ArrayRef =
        Arc::new(StringArray::from_iter((0..n).map(|i| {
            is_delete[i].then(|| position_text(&batch.events[i].position))
        })));
    let fields = shape_columns(TableShape::SoftDelete);
    let added = fields.len();
    let rows = with_columns(&batch.rows, fields, vec![deleted, at, position], false)?;
    let schema = rows.schema();
    let mut masks = Vec::with_capacity(schema.fields().len());
    // A tombstone (Debezium's second record of a delete, or one whose delete came before a
    // restart) has no time or position: the delete's stay.
    let tombstones: Vec<bool> = (batch.events.iter())
        .map(|e| {
            e.tombstone_of_delete
                || (e.op == Op::Delete
                    && e.source_ts_ms.is_none()
                    && e.position.db == crate::model::DbPosition::Unknown)
        })
        .collect();
    let first_added = schema.fields().len() - added;
    for (c, field) in schema.fields().iter().enumerate() {
        let mask = match c {
            _ if batch.key_columns.contains(field.name()) => None,
            c if c < first_added => {
                Some(BooleanArray::from_iter((0..n).map(|i| {
                    Some(is_delete[i] || batch.unchanged.is_unchanged(c, i))
                })))
            }
            c if c == first_added => None,
            _ => Some(BooleanArray::from_iter(tombstones.iter().map(|&t| Some(t)))),
        };
        masks.push(mask);
    }
    let mut events = batch.events;
    for e in events.iter_mut().filter(|e| e.op == Op::Delete) {
        e.op = Op::Update;
    }
    Ok(ChangeBatch {
        table: batch.table,
        key_columns: batch.key_columns,
        rows,
        events,
        unchanged: UnchangedMask::new(masks),
    })
}
