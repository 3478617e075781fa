//! Settings of the Iceberg sink.

use std::collections::HashMap;

pub use cdc_core::secrets::Secret;
use cdc_core::sink::upsert::TestHooks;
use serde::{Deserialize, Serialize};

/// How a change set removes the old rows of changed keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Merge-on-read with position deletes (default): the (file, row) of each changed key is
    /// found and written to a position-delete file. Writes stay small (key columns are read,
    /// new rows and a delete file written); readers apply the delete files, which
    /// [`crate::maintenance::compact`] folds away. Read by pyiceberg, DuckDB, Trino, Spark,
    /// Athena.
    #[default]
    PositionDeletes,
    /// Copy-on-write: every data file holding a changed key is rewritten without it. Reads
    /// stay as fast as an append-only table; each commit rewrites whole files, so writes cost
    /// grows with file size, not change size.
    CopyOnWrite,
    /// Merge-on-read with equality deletes: every changed key is written to an
    /// equality-delete file on the key columns, without looking for its row (fastest writes:
    /// nothing is read unless unchanged TOAST cells need old values). Readers must match every
    /// data row against the delete keys, and some cannot at all: pyiceberg refuses equality
    /// deletes; iceberg-rust, DuckDB, Spark, Trino and Flink read them. Unpartitioned tables
    /// only (a key-only delete does not say which partition its row is in).
    EqualityDeletes,
}

/// Settings of [`crate::IcebergWarehouse`] and its sinks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcebergSinkConfig {
    /// The catalog's name: the `catalog_name` column of the JDBC catalog tables. Readers must
    /// open the catalog under the same name (pyiceberg `SqlCatalog(name, ...)`).
    pub catalog_name: String,
    /// The SQLite catalog file; default `<warehouse>/catalog.db`, required (a local file) when
    /// the warehouse is on an object store. Not used with [`Self::rest`].
    pub catalog_path: Option<String>,
    /// Commit through an Iceberg REST catalog instead of the embedded SQLite catalog.
    pub rest: Option<RestCatalogConfig>,
    /// Commit through the AWS Glue Data Catalog (feature `glue`) instead of the embedded
    /// SQLite catalog: each source schema a Glue database, each table registered as Iceberg's
    /// own Glue catalog does.
    pub glue: Option<cdc_core::glue::GlueConfig>,
    /// How old rows of changed keys are removed.
    pub write_mode: WriteMode,
    /// Partition spec of tables this sink creates: columns (identity) or transforms of them,
    /// `day(updated_at)`, `bucket(16, id)`, `truncate(4, name)`, `year|month|hour(c)`.
    pub partition_by: Vec<String>,
    /// Table properties of tables this sink creates.
    pub table_properties: HashMap<String, String>,
    /// Attempts of one change set when other writers commit first.
    pub max_commit_attempts: usize,
    /// Every this many commits the sink expires snapshots itself, as
    /// [`crate::maintenance::expire_snapshots`] with the table's own Iceberg properties:
    /// snapshots older than `history.expire.max-snapshot-age-ms` (default 5 days) beyond the
    /// newest `history.expire.min-snapshots-to-keep` (default 1) go, with the files only they
    /// reach. The metadata file every commit rewrites holds every snapshot, so this keeps a
    /// long-running stream's commits as cheap as its first. 0: never (then run
    /// `cdc-lake iceberg expire` on a schedule).
    pub expire_snapshots_every: usize,
    /// The sink runs [`crate::compact::compact_files`] every this many commits (0: never):
    /// small data files packed, files with many position deletes rewritten without them,
    /// their delete files dropped, at most `compact_max_bytes` read per run.
    pub compact_every: usize,
    /// What one scheduled compaction reads at most (bytes), so a commit is held up briefly.
    pub compact_max_bytes: u64,
    /// Crash and concurrency tests: fail points and a hook before every catalog swap.
    #[doc(hidden)]
    #[serde(skip)]
    pub test_hooks: TestHooks,
}

/// An Iceberg REST catalog (the Iceberg REST catalog API, `/v1/...`).
///
/// Credentials are never part of the settings file: a bearer token, or OAuth2 client
/// credentials exchanged for one, are read from the environment variables the settings name
/// (or a token is handed over in code as a [`Secret`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestCatalogConfig {
    /// The catalog's base URI, e.g. `http://127.0.0.1:8181` (`/v1/...` is appended).
    pub uri: String,
    /// The `warehouse` the catalog is asked its configuration for (`GET /v1/config?warehouse=`).
    pub warehouse: Option<String>,
    /// The path prefix after `/v1/`; default: the `prefix` of the catalog's configuration.
    pub prefix: Option<String>,
    /// Namespace levels put before each table's source schema: `["bronze"]` puts
    /// `public.orders` at namespace `bronze.public`, table `orders`.
    pub parent_namespace: Vec<String>,
    /// A bearer token handed over in code (not in settings files); takes precedence over
    /// [`Self::token_env`].
    #[serde(skip)]
    pub token: Option<Secret>,
    /// Environment variable holding a bearer token.
    pub token_env: String,
    /// Environment variable holding OAuth2 client credentials, `client_id:client_secret`,
    /// exchanged for a token at [`Self::oauth2_server_uri`] (used when the token variable is
    /// unset or empty; a token refused with 401 is exchanged again once).
    pub credential_env: String,
    /// The OAuth2 token endpoint; default `<uri>/v1/oauth/tokens`.
    pub oauth2_server_uri: Option<String>,
    /// The OAuth2 scope asked for.
    pub scope: String,
    /// Seconds one request may take.
    pub request_timeout_secs: u64,
}

impl Default for RestCatalogConfig {
    fn default() -> Self {
        RestCatalogConfig {
            uri: String::new(),
            warehouse: None,
            prefix: None,
            parent_namespace: Vec::new(),
            token: None,
            token_env: "CDC_LAKE_ICEBERG_REST_TOKEN".into(),
            credential_env: "CDC_LAKE_ICEBERG_REST_CREDENTIAL".into(),
            oauth2_server_uri: None,
            scope: "catalog".into(),
            request_timeout_secs: 60,
        }
    }
}

impl RestCatalogConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        let uri = url::Url::parse(&self.uri)
            .map_err(|e| format!("rest.uri `{}` is not a URL: {e}", self.uri))?;
        if !matches!(uri.scheme(), "http" | "https") {
            return Err(format!(
                "rest.uri `{}` must be http:// or https://",
                self.uri
            ));
        }
        if !uri.username().is_empty() || uri.password().is_some() {
            return Err(
                "rest.uri must not carry credentials: put them in the environment \
                        variable rest.token_env or rest.credential_env names"
                    .into(),
            );
        }
        if self.parent_namespace.iter().any(String::is_empty) {
            return Err("rest.parent_namespace levels must not be empty".into());
        }
        if self.request_timeout_secs == 0 {
            return Err("rest.request_timeout_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// Why equality-delete mode and a partition spec do not go together.
pub(crate) const EQUALITY_PARTITIONED: &str =
    "write_mode equality-deletes needs an unpartitioned table (a key-only delete does not say \
     which partition its row is in): drop partition_by or use position-deletes";

/// The default catalog name.
pub const DEFAULT_CATALOG_NAME: &str = "cdc_lake";

impl Default for IcebergSinkConfig {
    fn default() -> Self {
        IcebergSinkConfig {
            catalog_name: DEFAULT_CATALOG_NAME.to_string(),
            catalog_path: None,
            rest: None,
            glue: None,
            partition_by: Vec::new(),
            write_mode: WriteMode::default(),
            table_properties: HashMap::new(),
            max_commit_attempts: 10,
            expire_snapshots_every: 100,
            compact_every: 50,
            compact_max_bytes: 256 << 20,
            test_hooks: TestHooks::default(),
        }
    }
}

impl IcebergSinkConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_commit_attempts == 0 {
            return Err("max_commit_attempts must be at least 1".into());
        }
        if self.catalog_name.is_empty() || self.catalog_name.len() > 255 {
            return Err(format!(
                "catalog_name must be 1 to 255 characters, but is {} characters",
                self.catalog_name.len()
            ));
        }
        if let Some(rest) = &self.rest {
            rest.validate()?;
        }
        if let Some(glue) = &self.glue {
            if self.rest.is_some() {
                return Err("`rest` and `glue` are two catalogs: set one".into());
            }
            glue.validate_in(cfg!(feature = "glue"))?;
        }
        for entry in &self.partition_by {
            crate::partition::parse_partition_field(entry)?;
        }
        if self.write_mode == WriteMode::EqualityDeletes && !self.partition_by.is_empty() {
            return Err(EQUALITY_PARTITIONED.into());
        }
        if let Some(k) = self
            .table_properties
            .keys()
            .find(|k| k.starts_with("cdc-lake."))
        {
            return Err(format!(
                "table property `{k}` is reserved: cdc-lake.* properties are written by the sink"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(IcebergSinkConfig::default().validate().is_ok());
        let bad = IcebergSinkConfig {
            max_commit_attempts: 0,
            ..IcebergSinkConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_commit_attempts"));
        let reserved = IcebergSinkConfig {
            table_properties: HashMap::from([("cdc-lake.keyColumns".into(), "x".into())]),
            ..IcebergSinkConfig::default()
        };
        assert!(reserved.validate().unwrap_err().contains("reserved"));
        let equality_partitioned = IcebergSinkConfig {
            write_mode: WriteMode::EqualityDeletes,
            partition_by: vec!["bucket(4, id)".into()],
            ..IcebergSinkConfig::default()
        };
        let e = equality_partitioned.validate().unwrap_err();
        assert!(
            e.contains("equality-deletes") && e.contains("partition"),
            "{e}"
        );
        let equality_unpartitioned = IcebergSinkConfig {
            write_mode: WriteMode::EqualityDeletes,
            ..IcebergSinkConfig::default()
        };
        assert!(equality_unpartitioned.validate().is_ok());
    }

    #[test]
    fn rest_settings_are_checked() {
        let rest: IcebergSinkConfig =
            serde_json::from_str(r#"{"rest":{"uri":"http://127.0.0.1:8181","prefix":"p"}}"#)
                .unwrap();
        assert!(rest.validate().is_ok());
        let rest = rest.rest.unwrap();
        assert_eq!(rest.token_env, "CDC_LAKE_ICEBERG_REST_TOKEN");
        assert_eq!(rest.prefix.as_deref(), Some("p"));
        for (uri, why) in [
            ("127.0.0.1:8181", "URL"),
            ("ftp://h/", "http"),
            ("http://user:secret@h/", "credentials"),
        ] {
            let bad = IcebergSinkConfig {
                rest: Some(RestCatalogConfig {
                    uri: uri.into(),
                    ..RestCatalogConfig::default()
                }),
                ..IcebergSinkConfig::default()
            };
            let e = bad.validate().unwrap_err();
            assert!(e.contains(why) && !e.contains("secret"), "{uri}: {e}");
        }
        let e =
            serde_json::from_str::<IcebergSinkConfig>(r#"{"rest":{"uri":"http://h","token":"x"}}"#)
                .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = serde_json::from_str::<IcebergSinkConfig>(r#"{"catalog":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
