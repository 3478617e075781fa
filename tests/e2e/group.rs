//! Scale-out on Kafka's group protocol: three `cdc-lake stream --group` processes share seven
//! tables (two topics of three partitions, a table created while they run); one is SIGKILLed
//! and another started, the broker is restarted once; at quiescence every table equals the
//! source and the metrics the processes served agree with the topics.

use std::collections::HashMap;
use std::io::{Read, Write};

use super::*;
use cdc_core::metrics::{COMMITS, EVENTS_APPLIED, LAG_OFFSETS};

/// The driver's layout: three more tables (two of them on topics of three partitions) and a
/// fourth created halfway through the workload.
fn layout() -> Layout {
    let more: [SourceTable; 4] = [
        ("items", &["id"]),
        ("accounts", &["id"]),
        ("notes", &["id"]),
        ("late_arrivals", &["id"]),
    ];
    Layout {
        driver_args: ["--more-tables", "--partitions", "3"]
            .map(String::from)
            .into(),
        tables: TABLES.into_iter().chain(more).collect(),
        broker_on_s3: true,
        registry: None,
    }
}

/// One `cdc-lake stream --group` process and what its metrics said last.
struct Member {
    name: &'static str,
    child: Child,
    metrics_port: u16,
    last_scrape: String,
}

impl Drop for Member {
    /// A test that fails leaves no member running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Member {
    fn start(harness: &Harness, lake: &Lake, name: &'static str) -> Member {
        let log = File::create(harness.dir.path().join(format!("member-{name}.log"))).unwrap();
        let metrics_port = cdc_core::testing::free_loopback_port();
        let child = Command::new(env!("CARGO_BIN_EXE_cdc-lake"))
            .args(["stream", "--brokers", &harness.broker.bootstrap])
            .args([
                "--topics",
                TOPICS,
                "--format",
                "delta",
                "--group",
                "e2e-group",
            ])
            .args(lake.args())
            .args(["--max-wait-ms", "200", "--max-batch-events", "40"])
            .args(["--topic-refresh-ms", "1000"])
            .args(["--kafka-property", "session.timeout.ms=6000"])
            .args(["--kafka-property", "heartbeat.interval.ms=1000"])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .env("RUST_LOG", "info,cdc_core::source::kafka=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start cdc-lake stream --group");
        Member {
            name,
            child,
            metrics_port,
            last_scrape: String::new(),
        }
    }

    /// Asks `path` of the metrics endpoint; `None` while it does not answer.
    fn get(&self, path: &str) -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// Scrapes `/metrics`, keeping what it said; panics when the process has exited.
    fn scrape(&mut self, harness: &Harness) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "member {} exited ({status}):\n{}",
                self.name,
                harness.log_tail(&format!("member-{}.log", self.name))
            );
        }
        if let Some(answer) = self.get("/metrics") {
            if let Some((_, body)) = answer.split_once("\r\n\r\n") {
                self.last_scrape = body.to_string();
            }
        }
    }

    /// `name{labels} value` lines of the last scrape: labels and value.
    fn samples(&self, name: &str) -> Vec<(HashMap<String, String>, f64)> {
        let mut out = Vec::new();
        for line in self.last_scrape.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            let Some(rest) = rest.strip_prefix('{') else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let labels = (labels.split(','))
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            out.push((labels, value.trim().parse().unwrap()));
        }
        out
    }

    /// The sum of metric `name` for `table`.
    fn table_total(&self, name: &str, table: &str) -> f64 {
        (self.samples(name).into_iter())
            .filter(|(labels, _)| labels.get("table").map(String::as_str) == Some(table))
            .map(|(_, value)| value)
            .sum()
    }
}

#[test]
fn three_group_members_share_seven_tables_through_a_kill_and_a_broker_restart() {
    let _turn = one_at_a_time();
    let settings = Settings::from_env();
    let Some(mut harness) = Harness::start(&settings, layout()) else {
        return;
    };
    eprintln!(
        "group run in {} (CDC_LAKE_E2E_KEEP=1 keeps it)",
        harness.dir.path().display()
    );
    harness.moto.export_env();
    let lake = Lake::local(harness.dir.path(), "group");
    let mut members: Vec<Member> = ["a", "b", "c"]
        .into_iter()
        .map(|name| Member::start(&harness, &lake, name))
        .collect();
    let scrape_for = |members: &mut Vec<Member>, harness: &Harness, wait: Duration| {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            members.iter_mut().for_each(|m| m.scrape(harness));
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    scrape_for(&mut members, &harness, Duration::from_secs(8));

    // One member dies; another joins.
    let mut killed = members.remove(0);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    members.push(Member::start(&harness, &lake, "d"));
    scrape_for(&mut members, &harness, Duration::from_secs(5));

    // The broker goes away for a moment.
    harness.broker.restart(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(600);
    while !harness.driver_done() {
        assert!(Instant::now() < deadline, "the workload did not finish");
        scrape_for(&mut members, &harness, Duration::from_secs(1));
    }

    // Quiescence: every partition of every table, the late one included, committed to its end.
    let end = harness.end_offsets();
    assert!(end.contains_key("e2e.public.late_arrivals"), "{end:?}");
    let deadline = Instant::now() + Duration::from_secs(240);
    while !caught_up(Format::Delta, &lake, &end) {
        let logs: Vec<String> = (members.iter())
            .map(|m| harness.log_tail(&format!("member-{}.log", m.name)))
            .collect();
        assert!(
            Instant::now() < deadline,
            "the group did not catch up to {end:?}:\n{}",
            logs.join("\n----\n")
        );
        scrape_for(&mut members, &harness, Duration::from_secs(1));
    }
    // Lag gauges follow the statistics (every 5 s).
    scrape_for(&mut members, &harness, Duration::from_secs(7));
    for member in &members {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = member.get("/ready").unwrap_or_default();
            if ready.lines().next().unwrap_or_default().contains(" 200 ") {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {ready}", member.name);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert_metrics_agree(&members, &killed, &end);
    // Every live member was given a share of the partitions and read it from the tables'
    // checkpoints (the one that joined late included). Whether a share saw changes after it
    // moved depends on the workload's timing, so commits are counted per table above.
    for member in &members {
        let log = harness
            .dir
            .path()
            .join(format!("member-{}.log", member.name));
        let log = std::fs::read_to_string(log).unwrap();
        assert!(
            log.contains("reading assigned partitions from their tables' checkpoints"),
            "member {} was given no partition:\n{log}",
            member.name
        );
    }
    for member in &mut members {
        let status = stop_with_sigterm(&mut member.child);
        assert!(
            status.success(),
            "member {} did not stop cleanly",
            member.name
        );
    }
    assert_equal_to_source(
        &harness,
        Format::Delta,
        &lake,
        super::delta::duckdb,
        "group",
    );
}

/// What the members served agrees with the topics: every partition is reported caught up by a
/// live member, every table had commits, and no table applied more events than its topic holds
/// (no record applied twice, across members and the kill).
fn assert_metrics_agree(live: &[Member], killed: &Member, end: &EndOffsets) {
    for (topic, partitions) in end {
        let table = format!("public.{}", topic.strip_prefix("e2e.public.").unwrap());
        for partition in partitions.keys() {
            let reported: Vec<f64> = (live.iter())
                .flat_map(|m| m.samples(LAG_OFFSETS))
                .filter(|(labels, _)| {
                    labels["topic"] == *topic && labels["partition"] == partition.to_string()
                })
                .map(|(_, lag)| lag)
                .collect();
            assert!(
                reported.contains(&0.0),
                "{topic}/{partition}: lag reported {reported:?}"
            );
        }
        let records: i64 = partitions.values().sum();
        let all = || live.iter().chain([killed]);
        let applied: f64 = all().map(|m| m.table_total(EVENTS_APPLIED, &table)).sum();
        let commits: f64 = all().map(|m| m.table_total(COMMITS, &table)).sum();
        assert!(commits > 0.0, "{table}: no commit counted");
        assert!(
            applied <= records as f64,
            "{table}: {applied} events applied from {records} records"
        );
        let seconds: f64 = all()
            .map(|m| m.table_total("cdc_lake_commit_seconds_sum", &table))
            .sum();
        eprintln!(
            "{table}: {records} records, {applied} events applied in {commits} commits \
             ({:.0} ms a commit)",
            1000.0 * seconds / commits
        );
    }
}
