//! Writes a Debezium backlog shaped like the `crud` fixture's `public.customers` in the S3
//! sink's layout, for `examples/bench/throughput.sh` (see `cdc_core::testing::backlog`).
//!
//! ```text
//! backlog <dir> <events> [file events] [--schemaless]
//! ```
//! Half the events are the snapshot, half the changes. Prints the live row count as JSON.

use cdc_core::testing::backlog::{generate, write_s3_sink_layout, BacklogSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: backlog <dir> <events> [file events] [--schemaless]";
    let (Some(dir), Some(events)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let events: u64 = events.parse()?;
    let file_events = match args.get(2).filter(|a| !a.starts_with("--")) {
        Some(n) => n.parse()?,
        None => 10_000,
    };
    let spec = BacklogSpec {
        snapshot_rows: events / 2,
        changes: events - events / 2,
        seed: 42,
        with_schema: !args.iter().any(|a| a == "--schemaless"),
    };
    let backlog = generate(&spec);
    let bytes: usize = backlog.events.iter().map(|e| e.len() + 1).sum();
    write_s3_sink_layout(&backlog, spec.snapshot_rows, file_events, dir.as_ref())?;
    println!(
        "{}",
        serde_json::json!({"events": events, "bytes": bytes, "live_rows": backlog.live_keys})
    );
    Ok(())
}
