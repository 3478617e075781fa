//! Reading a table back through an independent reader: another engine, run as a Python script
//! from the tests' venv, that writes what it read to Parquet.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};

use crate::storage::from_storage;

/// Runs `script <args...>` with the venv's Python and returns the rows the script wrote to
/// Parquet, typed as that engine typed them: an argument `{out}` stands for the output file,
/// which is otherwise appended as the last argument. Panics with the script's stderr when it
/// fails.
pub fn rows_from_python_reader(script: &Path, args: &[&str]) -> RecordBatch {
    let python = super::venv_python().expect("the tests' venv (.ci/run creates it)");
    let out_dir = std::env::temp_dir().join(format!(
        "cdc-lake-reader-{}-{}",
        std::process::id(),
        READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&out_dir).expect("reader output dir");
    let out = out_dir.join("rows.parquet");
    let out_arg = out.to_str().expect("utf-8 temp path");
    let mut argv: Vec<&str> = args
        .iter()
        .map(|a| if *a == "{out}" { out_arg } else { a })
        .collect();
    if !args.contains(&"{out}") {
        argv.push(out_arg);
    }
    let output = std::process::Command::new(python)
        .arg(script)
        .args(&argv)
        .output()
        .expect("run the reader");
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let file = std::fs::File::open(&out).expect("the reader's output");
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("the reader's Parquet");
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder
        .build()
        .expect("read Parquet")
        .map(|b| b.expect("Parquet batch"))
        .collect();
    let _ = std::fs::remove_dir_all(&out_dir);
    arrow_select::concat::concat_batches(&schema, &batches).expect("concat")
}

static READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Rows another engine read, cast column by column to the format's `stored` types and then
/// back to the `logical` types, so they compare with the expected state like our own reads.
pub fn external_to_logical(
    rows: &RecordBatch,
    stored: &Schema,
    logical: &SchemaRef,
) -> RecordBatch {
    let columns = stored
        .fields()
        .iter()
        .map(|f| {
            let col = rows
                .column_by_name(f.name())
                .unwrap_or_else(|| panic!("the reader lost column {}", f.name()));
            arrow_cast::cast(col, f.data_type())
                .unwrap_or_else(|e| panic!("column {}: {e}", f.name()))
        })
        .collect();
    let stored = RecordBatch::try_new(Arc::new(Schema::new(stored.fields().clone())), columns)
        .expect("stored batch");
    from_storage(&stored, logical).expect("stored to logical")
}
