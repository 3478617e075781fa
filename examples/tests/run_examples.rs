//! Every example runs as its docs say, on the bundled sample or a small generated backlog, and
//! the examples agree with each other: the Delta and Hudi readers see the rows the reference
//! sink (`batch_sync`) folds; `kafka_stream` streams a fixture from a real broker (tansu) until
//! it is interrupted.

use std::path::{Path, PathBuf};
use std::process::Command;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/sample/topics");

/// Runs an example, which must succeed; its stdout.
fn run(exe: &Path, args: &[&str]) -> String {
    let out = Command::new(exe).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// An example of another package (`cargo test` builds every example into `target/*/examples`).
fn package_example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_sample_examples_agree_on_the_rows() {
    let reference = run(Path::new(env!("CARGO_BIN_EXE_batch_sync")), &[]);
    let customers: usize = reference
        .lines()
        .find_map(|l| l.strip_prefix("# public.customers ("))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("batch_sync prints the customers table");
    assert!(customers > 0);

    let dir = tempfile::tempdir().unwrap();
    let delta = run(
        Path::new(env!("CARGO_BIN_EXE_delta_sql")),
        &[SAMPLE, s(&dir.path().join("delta"))],
    );
    // The first result table's first row: `| count | sum | ... |`.
    let count: usize = delta
        .lines()
        .filter_map(|l| {
            l.strip_prefix("| ")?
                .split(" |")
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .next()
        .expect("delta_sql prints the count");
    assert_eq!(count, customers, "{delta}");

    let hudi_read = package_example("hudi_read");
    if !hudi_read.exists() {
        // `cargo test -p cdc-lake-examples` alone does not build cdc-hudi's examples.
        assert!(
            std::env::var_os("CI").is_none(),
            "{} not built",
            hudi_read.display()
        );
        return;
    }
    let hudi = run(&hudi_read, &[SAMPLE, s(&dir.path().join("hudi"))]);
    assert!(
        hudi.contains(&format!("snapshot: {customers} rows")),
        "{hudi}"
    );
}

#[test]
fn a_generated_backlog_and_the_commit_latency_of_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let backlog = run(
        Path::new(env!("CARGO_BIN_EXE_backlog")),
        &[s(&dir.path().join("backlog")), "200", "50"],
    );
    let summary: serde_json::Value = serde_json::from_str(backlog.trim()).expect("JSON");
    assert_eq!(summary["events"], 200);
    assert!(dir.path().join("backlog/snapshot/topics").is_dir());

    for format in ["delta", "iceberg", "hudi"] {
        let wh = dir.path().join(format!("latency-{format}"));
        let out = run(
            Path::new(env!("CARGO_BIN_EXE_commit_latency")),
            &[s(&wh), format, "4", "--window", "2"],
        );
        let line: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        assert_eq!(line["format"], format);
        assert!(line["commits"].as_u64().unwrap() >= 4, "{out}");
        assert!(line["median_ms"].as_f64().unwrap() > 0.0, "{out}");
    }
}

/// The upsert benchmark's sink and its peer (delta-rs `MERGE`) leave the same table.
#[test]
fn the_upsert_benchmark_sink_and_peer_agree() {
    let exe = Path::new(env!("CARGO_BIN_EXE_upsert_bench"));
    let dir = tempfile::tempdir().unwrap();
    let setup = dir.path().join("setup");
    run(
        exe,
        &["setup", "delta", s(&setup), "2000", "300", "uniform"],
    );
    let mut digests = Vec::new();
    for mode in ["cdc", "merge"] {
        let table = dir.path().join(mode);
        copy_dir(&setup.join("base"), &table);
        run(exe, &[mode, "delta", s(&table), s(&setup)]);
        let digest: serde_json::Value =
            serde_json::from_str(run(exe, &["digest", "delta", s(&table)]).trim()).unwrap();
        let rows = digest["rows"].as_str().unwrap().parse::<u64>().unwrap();
        assert!(rows >= 2000, "{digest}");
        digests.push((
            digest["rows"].clone(),
            digest["id_sum"].clone(),
            digest["amount_sum"].clone(),
        ));
    }
    assert_eq!(digests[0], digests[1]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_dir(&entry.path(), &target),
            false => _ = std::fs::copy(entry.path(), target).unwrap(),
        }
    }
}

/// `kafka_stream` reads a fixture's topics from the broker into Delta tables until SIGINT, and
/// stops cleanly after the commit in flight.
#[test]
fn kafka_stream_streams_until_interrupted() {
    use cdc_core::testing::{produce_to_kafka, scenario_topics_regex, Scenario, TansuBroker};
    let Some(broker) = TansuBroker::start() else {
        return;
    };
    let scenario = Scenario::load("crud");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let total = runtime.block_on(produce_to_kafka(&broker.bootstrap, &scenario));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stream.log");
    let topics = scenario_topics_regex(&scenario);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka_stream"))
        .args([&broker.bootstrap, &topics, s(&dir.path().join("lake"))])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_all = format!("{total} records, ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(&log).unwrap().contains(&read_all) {
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(std::time::Instant::now() < deadline, "{text}");
        assert!(child.try_wait().unwrap().is_none(), "exited: {text}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stopped: PipelineStats"), "{text}");
}
