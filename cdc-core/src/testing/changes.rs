//! Change sets built by hand, for tests that play a second writer or need tables of a known
//! file layout, without going through the decoder and the fold.

use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use arrow_cast::cast;
use arrow_schema::{DataType, SchemaRef};

use crate::fold::ChangeSet;
use crate::model::{Checkpoint, TableId, UnchangedMask};

/// Upserts (`upsert` = true) or key-only deletes of the keys `ids` of `table`, whose key is the
/// column `id` of `schema` (an integer or text column: `ids` are cast to its type): upserted
/// rows have `name` = `name` (when the schema has that text column) and null elsewhere. The
/// set's checkpoint is `offset` of partition 0 of `topic`.
pub fn keyed_change(
    table: &TableId,
    schema: &SchemaRef,
    ids: &[i32],
    name: &str,
    upsert: bool,
    (topic, offset): (&str, i64),
) -> ChangeSet {
    let rows = ids.len();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "id" => {
                let ids: ArrayRef = Arc::new(Int32Array::from(ids.to_vec()));
                cast(&ids, f.data_type()).expect("an integer or text key column")
            }
            "name" if f.data_type() == &DataType::Utf8 => {
                Arc::new(StringArray::from(vec![name; rows])) as ArrayRef
            }
            _ => new_null_array(f.data_type(), rows),
        })
        .collect();
    let row = RecordBatch::try_new(schema.clone(), columns).expect("rows of the schema");
    let key = row
        .project(&[schema.index_of("id").expect("a column `id`")])
        .expect("the key column");
    let mut checkpoint = Checkpoint::default();
    checkpoint.advance(topic, 0, offset);
    let (upserts, deletes) = if upsert {
        (row, key.slice(0, 0))
    } else {
        (RecordBatch::new_empty(schema.clone()), key)
    };
    ChangeSet {
        table: table.clone(),
        schema: schema.clone(),
        key_columns: Arc::from(vec!["id".to_string()]),
        truncate: false,
        upsert_unchanged: UnchangedMask::none(schema.fields().len()),
        ignore_table_values: BooleanArray::from(vec![false; upserts.num_rows()]),
        upserts,
        deletes,
        checkpoint,
        first_offsets: Default::default(),
        events: rows,
        max_source_ts_ms: None,
        history: None,
    }
}

/// Topic of the change sets of [`other_writer_change`].
pub const OTHER_WRITER_TOPIC: &str = "other.public.customers";

/// One upsert (`upsert` = true, `name` = "concurrent") or key-only delete of key `id` of the
/// fixtures' `public.customers`, by a second writer that reads another topic, at `offset`: what
/// the concurrency tests commit between a sink's read of the table and its own commit.
pub fn other_writer_change(schema: &SchemaRef, id: i32, offset: i64, upsert: bool) -> ChangeSet {
    keyed_change(
        &TableId::new("public", "customers"),
        schema,
        &[id],
        "concurrent",
        upsert,
        (OTHER_WRITER_TOPIC, offset),
    )
}
