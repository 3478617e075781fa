//! Batch sync from raw files with the library API: read the S3-sink layout (default: the bundled
//! sample events), fold into the in-memory reference sink, print each table as JSON lines.
//!
//! `cargo run -p cdc-lake-examples --bin batch_sync -- [SOURCE_DIR]`

use cdc_core::pipeline::{Pipeline, PipelineConfig};
use cdc_core::render::render_rows;
use cdc_core::sink::MemoryWarehouse;
use cdc_core::source::raw::RawFileSource;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source_dir = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample/topics").to_string()
    });
    let mut source = RawFileSource::open(&source_dir).await?;
    let warehouse = MemoryWarehouse::new();
    let mut pipeline = Pipeline::new(PipelineConfig::default(), &warehouse)?;
    let stats = pipeline.run_to_end(&mut source, |_| {}).await?;
    eprintln!("{stats:?}");
    for id in warehouse.table_ids() {
        let table = warehouse.table(&id).expect("listed");
        println!(
            "# {id} ({} rows, key {:?})",
            table.rows.num_rows(),
            table.key_columns
        );
        for row in render_rows(&table.sorted_rows()?)? {
            println!("{}", serde_json::Value::Object(row));
        }
    }
    Ok(())
}
