//! The `cdc-lake` binary with tables on S3 registered in the AWS Glue Data Catalog (moto's S3 and
//! Glue on 127.0.0.1), for every format: `--catalog glue`, Iceberg maintenance through Glue, and
//! two processes writing one table at once. Tables are read back through what Glue says, by
//! independent readers: pyiceberg's `GlueCatalog`; DuckDB (delta + httpfs) and Python hudi at
//! the Glue table's location.

#![cfg(all(
    feature = "cli",
    feature = "delta",
    feature = "iceberg",
    feature = "hudi",
    feature = "s3",
    feature = "glue"
))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cdc_core::testing::{
    compare_raw_with_expected, rows_from_python_reader, MotoServer, Scenario, VariantLoss,
};

const FORMATS: [&str; 3] = ["delta", "iceberg", "hudi"];

/// Each test exports its moto server's address to the environment the readers inherit: one
/// test at a time.
static MOTO_ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The crud scenario's S3-sink layout (`per_file` events a file) in a temporary directory, and
/// moto with `bucket`, its settings exported for the readers and given to the binary.
struct Setup {
    _env: std::sync::MutexGuard<'static, ()>,
    moto: MotoServer,
    scenario: Scenario,
    dir: tempfile::TempDir,
    topics: PathBuf,
    envs: Vec<(String, String)>,
}

impl Setup {
    fn start(bucket: &str, per_file: usize) -> Option<Setup> {
        let env = MOTO_ENV.lock().unwrap_or_else(|e| e.into_inner());
        let moto = MotoServer::start()?;
        moto.create_bucket(bucket);
        moto.export_env();
        let scenario = Scenario::load("crud");
        let dir = tempfile::tempdir().unwrap();
        let topics = dir.path().join("topics");
        scenario.write_s3_layout(&topics, per_file, false);
        let envs = moto.storage_options().into_iter().collect();
        Some(Setup {
            _env: env,
            moto,
            scenario,
            dir,
            topics,
            envs,
        })
    }

    /// A `--sink-config` file registering `public` in Glue database `database`, plus `extra`.
    fn settings(&self, name: &str, database: &str, extra: serde_json::Value) -> PathBuf {
        let mut settings = serde_json::json!({"glue": {"databases": {"public": database}}});
        for (k, v) in extra.as_object().unwrap() {
            settings[k] = v.clone();
        }
        let file = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&file, settings.to_string()).unwrap();
        file
    }

    /// The binary with `args`, to be waited for.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_cdc-lake"))
            .args(args)
            .envs(self.envs.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs")
    }

    /// `sync` of the layout into `format` at `warehouse` with `--catalog glue`.
    fn sync(
        &self,
        format: &str,
        warehouse: &str,
        settings: &Path,
        batch: &str,
    ) -> std::process::Child {
        let (topics, settings) = (self.topics.to_str().unwrap(), settings.to_str().unwrap());
        self.spawn(&[
            "sync",
            "--format",
            format,
            "--source",
            topics,
            "--warehouse",
            warehouse,
            "--max-batch-events",
            batch,
            "--catalog",
            "glue",
            "--sink-config",
            settings,
        ])
    }

    /// Asserts `public.customers`, found through Glue database `database`, reads back equal to
    /// the scenario's expected state.
    fn assert_expected_through_glue(&self, format: &str, database: &str) {
        let table = (self.moto.glue_table(database, "customers")).expect("registered in Glue");
        let location = table["StorageDescriptor"]["Location"].as_str().unwrap();
        let reader = |path: &str| Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let rows = match format {
            "delta" => {
                assert_eq!(table["Parameters"]["table_type"], "DELTA");
                let script = reader("cdc-delta/tests/readers/duckdb_delta.py");
                rows_from_python_reader(&script, &[location])
            }
            "iceberg" => {
                assert_eq!(table["Parameters"]["table_type"], "ICEBERG");
                let script = reader("cdc-iceberg/tests/readers/pyiceberg_glue.py");
                rows_from_python_reader(&script, &[database, "customers"])
            }
            _ => {
                let input = table["StorageDescriptor"]["InputFormat"].as_str().unwrap();
                assert!(input.contains("Hoodie"), "{input}");
                let script = reader("cdc-hudi/tests/readers/hudi_python.py");
                rows_from_python_reader(&script, &[location, "{out}", "snapshot"])
            }
        };
        let (id, keys) = &self.scenario.tables[0];
        let loss = VariantLoss::of(&self.scenario.name);
        compare_raw_with_expected(id, keys, &rows, &self.scenario.expected()[id], loss)
            .unwrap_or_else(|e| panic!("{format} through Glue:\n{e}"));
    }
}

/// The output of a finished process, which must have succeeded.
fn succeeded(child: std::process::Child, what: &str) -> String {
    let out: Output = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number of commits a `sync` reported.
fn commits(stdout: &str) -> usize {
    (stdout.split(" commits").next())
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"))
}

/// `--catalog glue` for every format: each table registered where engines look and read back
/// through Glue, Iceberg maintenance through the same catalog, and a second run with nothing
/// to do.
#[test]
fn every_format_registered_in_glue_from_the_command_line() {
    let Some(setup) = Setup::start("lake", 25) else {
        return;
    };
    for format in FORMATS {
        // Each format's tables in a database of its own.
        let settings = setup.settings(format, format, serde_json::json!({}));
        let wh = format!("s3://lake/{format}");
        succeeded(setup.sync(format, &wh, &settings, "40"), format);
        let location = setup.moto.glue_table(format, "customers").unwrap()["StorageDescriptor"]
            ["Location"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(location.starts_with(&wh), "{location}");
        if format == "iceberg" {
            let compact = setup.spawn(&[
                "iceberg",
                "compact",
                "--warehouse",
                &wh,
                "--table",
                "public.customers",
                "--catalog",
                "glue",
                "--sink-config",
                settings.to_str().unwrap(),
            ]);
            assert!(succeeded(compact, "compact").contains("compacted"));
        }
        setup.assert_expected_through_glue(format, format);
        let again = succeeded(setup.sync(format, &wh, &settings, "40"), format);
        assert_eq!(commits(&again), 0, "{format}: {again}");
    }
}

/// Two `cdc-lake sync` processes at once on one S3 warehouse, for every format, fed the same
/// backlog (an accidental double deployment): both finish, and every table holds each change
/// once. Delta rests on S3's conditional put of the log entry, Iceberg on Glue's guarded swap,
/// Hudi on its commit lock between writers of different ids; each loser reloads, finds the
/// winner's checkpoint and skips what is already there.
#[test]
fn two_processes_sync_one_table_on_s3_at_once() {
    let Some(setup) = Setup::start("race", 5) else {
        return;
    };
    for format in FORMATS {
        let wh = format!("s3://race/{format}");
        let writers: Vec<_> = ["a", "b"]
            .iter()
            .map(|writer| {
                let extra = match format {
                    "hudi" => serde_json::json!({"writer_id": writer}),
                    _ => serde_json::json!({}),
                };
                let settings = setup.settings(&format!("{format}-{writer}"), format, extra);
                setup.sync(format, &wh, &settings, "7")
            })
            .collect();
        let total: usize = (writers.into_iter())
            .map(|w| commits(&succeeded(w, format)))
            .sum();
        setup.assert_expected_through_glue(format, format);
        eprintln!("{format}: two writers, {total} commits between them");
    }
}

/// S3 answers a proxy on 127.0.0.1 loses, every fourth write (`PUT`, `DELETE`) in turn: the
/// answer (502, after S3 applied it), the connection (after S3 applied it), the request (503,
/// never applied), or the request sent twice. Data files, log entries, metadata files,
/// instant files: whatever the write, each `sync` finishes (object_store retries; a commit
/// whose create-only write already landed is recognised by reading the table back), every
/// table equals the source through Glue, and a second run has nothing to do.
#[test]
fn s3_writes_lost_mid_commit_land_exactly_once() {
    use cdc_core::testing::proxy::{self, Fault};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;

    /// Faults every fourth S3 write; counts the faults met.
    #[derive(Default)]
    struct S3Writes {
        writes: AtomicUsize,
        faulted: [AtomicUsize; 4],
    }
    const FAULTS: [Fault; 4] = [
        Fault::AnswerLost,
        Fault::RequestLost,
        Fault::ConnectionLost,
        Fault::Replayed,
    ];
    impl proxy::Front for S3Writes {
        fn fault(&self, request: &proxy::Request) -> Fault {
            let write = matches!(request.method.as_str(), "PUT" | "DELETE");
            if !write || request.header("x-amz-target").is_some() {
                return Fault::Pass;
            }
            let n = self.writes.fetch_add(1, Relaxed);
            if n % 4 != 3 {
                return Fault::Pass;
            }
            let which = (n / 4) % FAULTS.len();
            self.faulted[which].fetch_add(1, Relaxed);
            FAULTS[which]
        }
    }

    let Some(mut setup) = Setup::start("lossy", 25) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for format in FORMATS {
        let front = Arc::new(S3Writes::default());
        let endpoint = runtime.block_on(proxy::fault_proxy(
            setup.moto.endpoint.clone(),
            front.clone(),
        ));
        let direct = setup.envs.clone();
        // Both names object_store reads (the test's own environment has the direct one).
        for (k, v) in &mut setup.envs {
            if k == "AWS_ENDPOINT_URL" {
                *v = endpoint.clone();
            }
        }
        setup.envs.push(("AWS_ENDPOINT".into(), endpoint.clone()));
        let settings = setup.settings(&format!("lossy-{format}"), format, serde_json::json!({}));
        let wh = format!("s3://lossy/{format}");
        let first = succeeded(setup.sync(format, &wh, &settings, "7"), format);
        let again = succeeded(setup.sync(format, &wh, &settings, "7"), format);
        setup.envs = direct;
        let met: Vec<usize> = front.faulted.iter().map(|n| n.load(Relaxed)).collect();
        assert!(met.iter().all(|&n| n >= 3), "{format}: faults met {met:?}");
        assert_eq!(commits(&again), 0, "{format}: {again}");
        setup.assert_expected_through_glue(format, format);
        eprintln!("{format}: {} commits, faults met {met:?}", commits(&first));
    }
}
