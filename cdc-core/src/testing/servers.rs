//! Real servers the tests start on loopback: an S3-compatible `moto_server`, and where the
//! tests' Python venv is.

use std::path::{Path, PathBuf};

/// A real S3-compatible server (`moto_server`, from the venv `.ci/run` creates) on a free
/// loopback port, stopped on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    python: PathBuf,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Access key the tests use with [`MotoServer`].
pub const MOTO_KEY_ID: &str = "test-key";
/// Secret the tests use with [`MotoServer`].
pub const MOTO_SECRET: &str = "test-secret";

impl MotoServer {
    /// Starts moto, or returns `None` (after saying so) when it is not installed. Under `CI`
    /// a missing moto is a failure, not a skip.
    pub fn start() -> Option<MotoServer> {
        let bin = std::env::var("CDC_LAKE_MOTO_SERVER")
            .map(PathBuf::from)
            .ok()
            .or_else(|| Some(venv_dir().join("bin/moto_server")).filter(|p| p.exists()));
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").is_err(),
                "moto_server not found; .ci/run installs it"
            );
            eprintln!(
                "skipping: moto_server not found (run .ci/run once, or set CDC_LAKE_MOTO_SERVER)"
            );
            return None;
        };
        let port = free_loopback_port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, "moto_server");
        Some(MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            python: bin.parent().expect("bin dir").join("python"),
        })
    }

    /// Creates a bucket (through boto3 in moto's venv: object stores cannot create buckets).
    pub fn create_bucket(&self, bucket: &str) {
        let script = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='{MOTO_KEY_ID}', \
             aws_secret_access_key='{MOTO_SECRET}', region_name='us-east-1').create_bucket(Bucket='{bucket}')",
            self.endpoint
        );
        let status = std::process::Command::new(&self.python)
            .args(["-c", &script])
            .status()
            .expect("run python");
        assert!(status.success(), "create bucket {bucket}");
    }

    /// The Glue table `database.table` as boto3 reads it from moto (`GetTable`'s `Table`), `None`
    /// when Glue has no such table.
    pub fn glue_table(&self, database: &str, table: &str) -> Option<serde_json::Value> {
        let args = serde_json::json!({ "DatabaseName": database, "Name": table });
        self.glue_call("get_table", args)
            .map(|mut r| r["Table"].take())
    }

    /// The partitions of the Glue table `database.table` (`GetPartitions`' `Partitions`).
    pub fn glue_partitions(&self, database: &str, table: &str) -> Vec<serde_json::Value> {
        let args = serde_json::json!({ "DatabaseName": database, "TableName": table });
        match self.glue_call("get_partitions", args) {
            Some(serde_json::Value::Object(mut r)) => match r.remove("Partitions") {
                Some(serde_json::Value::Array(p)) => p,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// One boto3 Glue call against moto (`operation` in boto3's snake case, `args` its keyword
    /// arguments): the answer as JSON (dates as text), `None` on `EntityNotFoundException`.
    pub fn glue_call(&self, operation: &str, args: serde_json::Value) -> Option<serde_json::Value> {
        let script = format!(
            "import boto3, json, sys\n\
             glue = boto3.client('glue', endpoint_url='{}', aws_access_key_id='{MOTO_KEY_ID}', \
             aws_secret_access_key='{MOTO_SECRET}', region_name='us-east-1')\n\
             try:\n    r = getattr(glue, sys.argv[1])(**json.loads(sys.argv[2]))\n    \
             r.pop('ResponseMetadata', None)\n\
             except glue.exceptions.EntityNotFoundException:\n    r = None\n\
             print(json.dumps(r, default=str))",
            self.endpoint
        );
        let output = std::process::Command::new(&self.python)
            .args(["-c", &script, operation, &args.to_string()])
            .output()
            .expect("run python");
        assert!(
            output.status.success(),
            "glue {operation} {args}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let answer: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("boto3's answer as JSON");
        Some(answer).filter(|a| !a.is_null())
    }

    /// Storage options for object_store / delta-rs: endpoint, plain HTTP, test credentials.
    pub fn storage_options(&self) -> std::collections::HashMap<String, String> {
        owned_pairs(&[
            ("AWS_ENDPOINT_URL", &self.endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET),
            ("AWS_REGION", "us-east-1"),
        ])
    }

    /// Sets the same settings as `AWS_*` environment variables (for the raw-file source, which
    /// takes credentials only from the environment).
    pub fn export_env(&self) {
        export(self.storage_options());
        std::env::set_var("AWS_ENDPOINT", &self.endpoint);
    }

    /// The Python of moto's venv (it also has the readers the tests use).
    pub fn python(&self) -> &Path {
        &self.python
    }
}

/// A real Azure Blob Storage emulator (Azurite's blob service, from the npm package `.ci/run`
/// installs under `~/.cache/cdc-lake/azurite`, or `$CDC_LAKE_AZURITE`) on a free loopback port,
/// in memory, stopped on drop.
#[derive(Debug)]
pub struct AzuriteServer {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>` (the account is Azurite's `devstoreaccount1`).
    pub endpoint: String,
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azurite's fixed development account and its published key (not a secret).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl AzuriteServer {
    /// Starts Azurite, or returns `None` (after saying so) when it is not installed. Under `CI`
    /// a missing Azurite is a failure, not a skip.
    pub fn start() -> Option<AzuriteServer> {
        let bin = std::env::var("CDC_LAKE_AZURITE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/cdc-lake/azurite/node_modules/.bin/azurite-blob")
            });
        if !bin.exists() {
            assert!(
                std::env::var("CI").is_err(),
                "{} not found; .ci/run installs it",
                bin.display()
            );
            eprintln!("skipping: {} not found (run .ci/run once)", bin.display());
            return None;
        }
        let port = free_loopback_port();
        let child = std::process::Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--skipApiVersionCheck"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start azurite");
        wait_for_port(port, "azurite");
        Some(AzuriteServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Creates a container (through the Azure SDK in the tests' venv: object stores cannot).
    pub fn create_container(&self, container: &str) {
        let python = venv_python().expect("the tests' venv");
        let script = format!(
            "from azure.storage.blob import BlobServiceClient; \
             BlobServiceClient.from_connection_string('{}').create_container('{container}')",
            self.connection_string()
        );
        let status = std::process::Command::new(python)
            .args(["-c", &script])
            .status()
            .expect("run python");
        assert!(status.success(), "create container {container}");
    }

    /// The connection string Azure SDKs take.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};\
             BlobEndpoint={}/{AZURITE_ACCOUNT};",
            self.endpoint
        )
    }

    /// object_store settings (as `AZURE_*` environment names) for this emulator.
    pub fn storage_options(&self) -> std::collections::HashMap<String, String> {
        owned_pairs(&[
            ("AZURE_STORAGE_USE_EMULATOR", "true"),
            ("AZURITE_BLOB_STORAGE_URL", &self.endpoint),
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY),
            ("AZURE_ALLOW_HTTP", "true"),
        ])
    }

    /// Sets the same settings in the process environment (the stores read them from there).
    pub fn export_env(&self) {
        export(self.storage_options());
    }
}

fn owned_pairs(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    (pairs.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sets `options` as environment variables of this process.
fn export(options: std::collections::HashMap<String, String>) {
    for (k, v) in options {
        std::env::set_var(&k, &v);
    }
}

/// The tests' venv: `$CDC_LAKE_VENV`, default `~/.cache/cdc-lake/venv` (what `.ci/run` creates).
pub(crate) fn venv_dir() -> PathBuf {
    std::env::var("CDC_LAKE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cdc-lake/venv")
        })
}

/// The Python of the tests' venv, if it exists.
pub fn venv_python() -> Option<PathBuf> {
    Some(venv_dir().join("bin/python")).filter(|p| p.exists())
}

/// A loopback port nobody listens on right now.
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Waits (up to 30 s) until a server accepts connections on a loopback port.
pub(crate) fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
