//! A private PostgreSQL cluster for the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A PostgreSQL cluster (Debian's `postgresql` package) of its own: a fresh data directory
/// under the system temp dir, `wal_level=logical` (what Debezium needs), trust authentication
/// for `postgres`, listening on a free loopback port only. Stopped and removed on drop.
#[derive(Debug)]
pub struct PostgresServer {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres_user: bool,
    /// The port it listens on at 127.0.0.1.
    pub port: u16,
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PostgresServer {
    /// Starts a cluster, or returns `None` (after saying so) when PostgreSQL is not installed;
    /// under `CI` a missing PostgreSQL is a failure, not a skip.
    pub fn start() -> Option<PostgresServer> {
        let Some(bin) = postgres_bin_dir() else {
            assert!(
                std::env::var("CI").is_err(),
                "PostgreSQL not found; .ci/run installs it (Debian package postgresql)"
            );
            eprintln!(
                "skipping: PostgreSQL not found (install postgresql, or set CDC_LAKE_PG_BIN)"
            );
            return None;
        };
        let port = super::free_loopback_port();
        let dir = std::env::temp_dir().join(format!("cdc-lake-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        // initdb refuses to run as root: run the server as the package's `postgres` user then.
        let as_postgres_user = is_root();
        if as_postgres_user {
            run(Command::new("chmod").arg("755").arg(&dir), "chmod");
            run(Command::new("chown").arg("postgres").arg(&dir), "chown");
        }
        let server = PostgresServer {
            dir,
            bin,
            as_postgres_user,
            port,
        };
        run(
            server.command("initdb").args([
                "-D",
                &server.data_dir(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]),
            "initdb",
        );
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\n\
             timezone = 'UTC'\nfsync = off\nsynchronous_commit = off\n",
            server.dir.display()
        );
        let conf_path = Path::new(&server.data_dir()).join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        let log = server.dir.join("server.log");
        run(
            server.command("pg_ctl").args([
                "-D",
                &server.data_dir(),
                "-l",
                log.to_str().expect("utf-8 path"),
                "-w",
                "-t",
                "60",
                "start",
            ]),
            "pg_ctl start",
        );
        Some(server)
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// A command running one of the server's programs, as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }
}

/// `$CDC_LAKE_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn postgres_bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("CDC_LAKE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
