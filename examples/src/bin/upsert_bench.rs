//! The upsert benchmark of every format (see `cdc_lake_examples::bench` and
//! `examples/bench/upsert.sh`, which drives it).
//!
//! ```text
//! upsert_bench setup <delta|iceberg|hudi> <dir> <rows> <changes> <uniform|skewed|recent>
//! upsert_bench <cdc|cow|floor|floor-mor|merge> <format> <table dir> <setup dir>
//! upsert_bench digest <format> <table dir>
//! ```

use cdc_lake_examples::bench::{self, floor, BoxError, Format};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: upsert_bench setup <format> <dir> <rows> <changes> <distribution> \
                 | <cdc|cow|floor|floor-mor|merge> <format> <table dir> <setup dir> \
                 | digest <format> <table dir>";
    let (mode, format) = match (args.first(), args.get(1)) {
        (Some(m), Some(f)) => (m.as_str(), f.parse::<Format>()?),
        _ => return Err(usage.into()),
    };
    let result = match (mode, args.len()) {
        ("setup", 6) => {
            bench::setup(
                format,
                &args[2],
                args[3].parse()?,
                args[4].parse()?,
                &args[5],
            )
            .await?
        }
        ("digest", 3) => format.digest(&args[2]).await?,
        ("cdc" | "cow", 4) => {
            let changes = bench::load_changes(format, &args[3])?;
            bench::run_sink(format, mode, &args[2], &changes).await?
        }
        ("merge", 4) if format == Format::Delta => {
            let changes = bench::load_changes(format, &args[3])?;
            bench::delta::merge(&args[2], &changes).await?
        }
        ("floor" | "floor-mor", 4) => {
            let changes = bench::load_changes(format, &args[3])?;
            let files = format.data_files(&args[2]).await?;
            let out = std::path::Path::new(&args[2]).join("floor-out");
            floor::run(&files, &changes, &out, mode == "floor-mor")?
        }
        _ => return Err(usage.into()),
    };
    println!("{}", bench::report(result, format, mode));
    Ok(())
}
