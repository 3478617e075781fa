//! The REST catalog path against a real Iceberg REST catalog server: Lakana (PyPI
//! `lakana-server`, which checks requirements and applies updates with pyiceberg's own code),
//! started on 127.0.0.1 with a SQLite database and a `file://` warehouse, from the venv `.ci/run`
//! creates (`$CDC_LAKE_LAKANA_VENV`, default `~/.cache/cdc-lake/venv-lakana`).
//!
//! Lakana picks table locations itself and only lets tables live under the namespaces `bronze`,
//! `silver` and `gold`, so the tests put every source schema under `bronze`
//! ([`RestCatalogConfig::parent_namespace`]).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdc_core::testing::proxy::{self, Fault, Request};
use cdc_core::testing::{assert_replay_commits_nothing, sync_fixture, Scenario};
use cdc_iceberg::{IcebergSinkConfig, IcebergWarehouse, RestCatalogConfig, Secret};

use crate::common::{
    assert_expected, assert_one_snapshot_per_commit, metadata_location, sync, Readers,
};

/// A Lakana server of its own (stopped on drop).
pub struct Lakana {
    child: Child,
    _dir: tempfile::TempDir,
    uri: String,
    token: String,
    /// The environment's storage root.
    warehouse: PathBuf,
}

impl Drop for Lakana {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lakana_venv() -> PathBuf {
    if let Ok(v) = std::env::var("CDC_LAKE_LAKANA_VENV") {
        return PathBuf::from(v);
    }
    match std::env::var("CDC_LAKE_VENV") {
        Ok(v) => PathBuf::from(format!("{v}-lakana")),
        Err(_) => PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/cdc-lake/venv-lakana"),
    }
}

impl Lakana {
    /// Starts a server, or returns `None` (after saying so) when its venv is missing; under `CI`
    /// a missing venv is a failure, not a skip.
    pub async fn start() -> Option<Lakana> {
        Self::start_with_storage(None).await
    }

    /// Starts a server whose environment `test` stores tables in `storage` (Lakana's storage
    /// settings: scheme, root, options) instead of a local directory.
    pub async fn start_with_storage(storage: Option<serde_json::Value>) -> Option<Lakana> {
        let server = lakana_venv().join("bin/lakana-server");
        if !server.exists() {
            assert!(
                std::env::var("CI").is_err(),
                "{} not found; .ci/run installs lakana-server",
                server.display()
            );
            eprintln!("skipping: {} not found", server.display());
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let token_file = dir.path().join("admin-token");
        let env = [
            (
                "LAKANA_DATABASE__URL",
                format!("sqlite:///{}", dir.path().join("catalog.db").display()),
            ),
            ("LAKANA_BOOTSTRAP_ADMIN", "admin".into()),
            (
                "LAKANA_BOOTSTRAP_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("LAKANA_HOST", "127.0.0.1".into()),
            ("LAKANA_PORT", port.to_string()),
            ("LAKANA_LOG__LEVEL", "WARNING".into()),
            ("LAKANA_LOG__ACCESS", "false".into()),
        ];
        let log_path = dir.path().join("lakana.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let migrated = Command::new(&server)
            .arg("migrate")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log.try_clone().unwrap())
            .status()
            .unwrap();
        assert!(migrated.success(), "lakana-server migrate: {}", log_text());
        let mut child = Command::new(&server)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let uri = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let healthy = http
                .get(format!("{uri}/healthz"))
                .send()
                .await
                .is_ok_and(|a| a.status().is_success());
            if healthy {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("lakana-server exited ({status}): {}", log_text());
            }
            assert!(
                Instant::now() < deadline,
                "lakana-server not up: {}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let token = std::fs::read_to_string(&token_file)
            .unwrap()
            .trim()
            .to_string();
        let warehouse = dir.path().join("warehouse");
        std::fs::create_dir_all(&warehouse).unwrap();
        // The environment `test` is the REST prefix; its storage is the local warehouse unless
        // given.
        let storage = storage.unwrap_or_else(|| {
            serde_json::json!({"scheme": "file", "root": format!("file://{}", warehouse.display())})
        });
        let created = http
            .post(format!("{uri}/api/v1/environments"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "test", "storage": storage}))
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "creating the environment: {}",
            created.status()
        );
        Some(Lakana {
            child,
            _dir: dir,
            uri,
            token,
            warehouse,
        })
    }

    /// Sink settings committing through this server (through `uri` when given: a proxy),
    /// with tables under `bronze.<extra...>.<schema>`.
    pub fn config(&self, uri: Option<&str>, extra_namespace: &[&str]) -> IcebergSinkConfig {
        let mut parent_namespace = vec!["bronze".to_string()];
        parent_namespace.extend(extra_namespace.iter().map(|s| s.to_string()));
        IcebergSinkConfig {
            rest: Some(RestCatalogConfig {
                uri: uri.unwrap_or(&self.uri).to_string(),
                prefix: Some("test".into()),
                parent_namespace,
                token: Some(Secret::new(self.token.clone())),
                ..RestCatalogConfig::default()
            }),
            ..IcebergSinkConfig::default()
        }
    }
}

/// A REST catalog whose storage is S3 (moto on 127.0.0.1): the catalog puts the tables in the
/// bucket and writes their metadata files there, the sink writes data, delete and manifest files
/// next to them through its object store, and pyiceberg reads the tables back from S3.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_catalog_with_its_tables_on_s3() {
    let _env = crate::s3::MOTO_ENV.lock().await;
    let Some(moto) = cdc_core::testing::MotoServer::start() else {
        return;
    };
    moto.create_bucket("rest-lake");
    moto.export_env();
    let env = moto.storage_options();
    let storage = serde_json::json!({
        "scheme": "s3",
        "root": "s3://rest-lake/catalog",
        "options": {
            "s3.endpoint": env["AWS_ENDPOINT_URL"],
            "s3.access-key-id": env["AWS_ACCESS_KEY_ID"],
            "s3.secret-access-key": env["AWS_SECRET_ACCESS_KEY"],
            "s3.region": env["AWS_REGION"],
        },
    });
    let Some(lakana) = Lakana::start_with_storage(Some(storage)).await else {
        return;
    };
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let warehouse =
        IcebergWarehouse::new("s3://rest-lake/unused", lakana.config(None, &[])).unwrap();
    sync_fixture(&scenario, dir.path(), &warehouse).await;
    let readers = Readers {
        pyiceberg: true,
        duckdb: false,
    };
    assert_expected(&scenario, &warehouse, readers).await;
    for (table, _) in &scenario.tables {
        let location = metadata_location(&warehouse, table).await;
        assert!(
            location.starts_with("s3://rest-lake/catalog/"),
            "{location}"
        );
        let metadata = crate::common::current_metadata(&warehouse, table).await;
        let snapshot = metadata.current_snapshot().expect("a snapshot");
        assert!(
            snapshot
                .manifest_list()
                .starts_with("s3://rest-lake/catalog/"),
            "{}",
            snapshot.manifest_list()
        );
    }
    assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_through_a_rest_catalog() {
    let Some(lakana) = Lakana::start().await else {
        return;
    };
    for scenario in Scenario::all() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = IcebergWarehouse::new(
            dir.path().join("wh").to_str().unwrap(),
            lakana.config(None, &[&scenario.name]),
        )
        .unwrap();
        sync_fixture(&scenario, dir.path(), &warehouse).await;
        assert_expected(&scenario, &warehouse, Readers::ALL).await;
        // The tables live where the catalog put them: under its storage root, not the local
        // warehouse.
        let root = format!("file://{}/", lakana.warehouse.display());
        for (table, _) in &scenario.tables {
            let location = metadata_location(&warehouse, table).await;
            assert!(location.starts_with(&root), "{location} not under {root}");
        }
        assert_replay_commits_nothing(&scenario, dir.path(), &warehouse).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writer_through_a_rest_catalog_is_retried() {
    let Some(lakana) = Lakana::start().await else {
        return;
    };
    crate::concurrency::concurrent_writer_is_retried(lakana.config(None, &[])).await;
}

/// An OAuth2 token endpoint the proxy plays: client credentials with `secret` get the next of
/// `tokens`; requests carrying `expired` are refused with 401.
struct OAuth {
    secret: String,
    tokens: Mutex<VecDeque<String>>,
    expired: String,
    exchanges: std::sync::atomic::AtomicUsize,
}

/// What the proxy does: `plan` for commit requests, and the token endpoint when `oauth` is set.
#[derive(Default)]
struct Front {
    plan: Mutex<VecDeque<Fault>>,
    oauth: Option<OAuth>,
}

impl proxy::Front for Front {
    fn answer(&self, request: &Request) -> Option<(u16, Vec<u8>)> {
        let oauth = self.oauth.as_ref()?;
        if request.path == "/v1/oauth/tokens" {
            return Some(token_answer(oauth, &request.body));
        }
        let expired = format!("Bearer {}", oauth.expired);
        (request.header("authorization") == Some(expired.as_str())).then(|| {
            let answer = br#"{"error":{"message":"token expired","type":"NotAuthorizedException","code":401}}"#;
            (401, answer.to_vec())
        })
    }

    fn fault(&self, request: &Request) -> Fault {
        let is_commit = request.method == "POST" && request.path.contains("/tables/");
        match is_commit {
            true => self.plan.lock().unwrap().pop_front().unwrap_or(Fault::Pass),
            false => Fault::Pass,
        }
    }
}

/// The answer of the token endpoint to a form body.
fn token_answer(oauth: &OAuth, form: &[u8]) -> (u16, Vec<u8>) {
    let form: HashMap<String, String> = url::form_urlencoded::parse(form).into_owned().collect();
    let valid = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some("cdc")
        && form.get("client_secret") == Some(&oauth.secret);
    if !valid {
        return (401, br#"{"error":"invalid_client"}"#.to_vec());
    }
    oauth
        .exchanges
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let token = oauth.tokens.lock().unwrap().pop_front().unwrap();
    let body =
        serde_json::json!({"access_token": token, "token_type": "bearer", "expires_in": 3600});
    (200, body.to_string().into_bytes())
}

/// An HTTP proxy in front of the catalog that plays `front` and relays everything else.
async fn proxy(upstream: String, front: Arc<Front>) -> String {
    proxy::fault_proxy(upstream, front).await
}

/// Commits whose answer is lost (a 502, a closed connection, or a 409 to a copy of a request
/// that landed) are recognised as committed, not redone and their files not deleted; commits
/// whose request is lost are redone. Either way every change lands exactly once and every
/// snapshot carries a newer checkpoint than its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_with_lost_answers_land_exactly_once() {
    let Some(lakana) = Lakana::start().await else {
        return;
    };
    use Fault::*;
    let front = Arc::new(Front {
        plan: Mutex::new(VecDeque::from([
            Pass,
            AnswerLost,
            Pass,
            RequestLost,
            AnswerLost,
            RequestLost,
            RequestLost,
            Pass,
            AnswerLost,
            ConnectionLost,
            Replayed,
            Pass,
            ConnectionLost,
            Replayed,
        ])),
        oauth: None,
    });
    let proxy = proxy(lakana.uri.clone(), front.clone()).await;
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = IcebergWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        lakana.config(Some(&proxy), &[]),
    )
    .unwrap();
    let stats = sync(&scenario, dir.path(), 5, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert!(
        front.plan.lock().unwrap().is_empty(),
        "the scenario made too few commits ({})",
        stats.commits
    );
    // Three lost requests were retried; lost answers were not.
    assert_eq!(warehouse.conflicts_retried(), 3);
    assert_expected(&scenario, &warehouse, Readers::ALL).await;

    assert_one_snapshot_per_commit(&scenario, &warehouse, stats.commits).await;
}

/// Compaction commits through the catalog like any snapshot; Lakana refuses snapshot expiry
/// over REST (it expires snapshots itself), and the error says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_through_a_rest_catalog() {
    let Some(lakana) = Lakana::start().await else {
        return;
    };
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let warehouse = IcebergWarehouse::new(
        dir.path().join("wh").to_str().unwrap(),
        lakana.config(None, &[]),
    )
    .unwrap();
    sync(&scenario, dir.path(), 5, HashMap::new(), &warehouse)
        .await
        .unwrap();
    let (table, _) = scenario.tables.first().unwrap();
    // The token is in no Debug form of what holds it.
    let debug = format!("{warehouse:?} {:?}", warehouse.sink(table));
    assert!(debug.contains("RestCatalog"), "{debug}");
    assert!(!debug.contains(&lakana.token), "the token leaked: {debug}");
    let compacted = cdc_iceberg::maintenance::compact(&warehouse, table)
        .await
        .unwrap()
        .expect("deletes to compact");
    assert!(compacted.delete_files > 0, "{compacted:?}");
    assert_expected(&scenario, &warehouse, Readers::ALL).await;
    let refused = cdc_iceberg::maintenance::expire_snapshots(&warehouse, table, i64::MAX, 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("HTTP 403"), "{refused}");
    assert!(
        !refused.contains(&lakana.token),
        "the token leaked: {refused}"
    );
    // Nothing changed.
    assert_expected(&scenario, &warehouse, Readers::RUST_ONLY).await;
}

/// OAuth2 client credentials from the environment are exchanged for a token; a token the
/// catalog refuses (401) is exchanged again once; wrong credentials give an error that names
/// neither the secret nor a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_client_credentials_are_exchanged_and_renewed() {
    let Some(lakana) = Lakana::start().await else {
        return;
    };
    let front = Arc::new(Front {
        plan: Mutex::default(),
        oauth: Some(OAuth {
            secret: "s3cret-value".into(),
            tokens: Mutex::new(VecDeque::from([
                "expired-token".into(),
                lakana.token.clone(),
            ])),
            expired: "expired-token".into(),
            exchanges: Default::default(),
        }),
    });
    let proxy = proxy(lakana.uri.clone(), front.clone()).await;
    let variable = format!("CDC_LAKE_TEST_REST_CREDENTIAL_{}", std::process::id());
    std::env::set_var(&variable, "cdc:s3cret-value");
    let mut config = lakana.config(Some(&proxy), &["oauth"]);
    let rest = config.rest.as_mut().unwrap();
    rest.token = None;
    rest.credential_env = variable.clone();
    let scenario = Scenario::load("crud");
    let dir = tempfile::tempdir().unwrap();
    let warehouse =
        IcebergWarehouse::new(dir.path().join("wh").to_str().unwrap(), config.clone()).unwrap();
    sync(&scenario, dir.path(), 20, HashMap::new(), &warehouse)
        .await
        .unwrap();
    assert_expected(&scenario, &warehouse, Readers::RUST_ONLY).await;
    let exchanges = &front.oauth.as_ref().unwrap().exchanges;
    assert_eq!(exchanges.load(std::sync::atomic::Ordering::SeqCst), 2);

    std::env::set_var(&variable, "cdc:wrong-secret");
    let refused = IcebergWarehouse::new(dir.path().join("wh2").to_str().unwrap(), config)
        .unwrap()
        .metadata_location(&scenario.tables[0].0)
        .await
        .unwrap_err()
        .to_string();
    std::env::remove_var(&variable);
    assert!(refused.contains("HTTP 401"), "{refused}");
    for secret in ["wrong-secret", "s3cret-value", lakana.token.as_str()] {
        assert!(!refused.contains(secret), "{refused}");
    }
}
