//! The embedded catalog: SQLite in the Iceberg JDBC catalog layout, so pyiceberg's
//! `SqlCatalog`, Java's `JdbcCatalog` and iceberg-rust's `SqlCatalog` open the same file.
//!
//! Two tables: `iceberg_tables` (one row per table: `catalog_name`, `table_namespace`,
//! `table_name`, `metadata_location`, `previous_metadata_location`, and Java's V1
//! `iceberg_type`) and `iceberg_namespace_properties` (pyiceberg's `exists` = `true` row per
//! namespace). A commit moves `metadata_location` with a compare-and-swap:
//! `UPDATE ... WHERE metadata_location = <the one we read>`; no row updated means another
//! writer committed first.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cdc_iceberg::catalog::SqlCatalog;
//! let dir = tempfile::tempdir().unwrap();
//! let catalog = SqlCatalog::open(dir.path().join("catalog.db").to_str().unwrap(), "lake").await.unwrap();
//! assert_eq!(catalog.metadata_location("public", "t").await.unwrap(), None);
//! assert!(catalog.create_table("public", "t", "/m/0.json").await.unwrap());
//! assert!(!catalog.swap("public", "t", "/m/other.json", "/m/1.json").await.unwrap());
//! assert!(catalog.swap("public", "t", "/m/0.json", "/m/1.json").await.unwrap());
//! assert_eq!(catalog.metadata_location("public", "t").await.unwrap().as_deref(), Some("/m/1.json"));
//! # });
//! ```

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::error::{IcebergSinkError, Result};

/// A JDBC-layout Iceberg catalog in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqlCatalog {
    path: String,
    name: String,
    pool: SqlitePool,
    /// Whether `iceberg_tables` has Java's `iceberg_type` column.
    typed: bool,
}

impl SqlCatalog {
    /// Opens (creating when missing) the catalog at `path` under catalog name `name`.
    pub async fn open(path: &str, name: &str) -> Result<Self> {
        let err = |context: &str| {
            let (catalog, context) = (path.to_string(), context.to_string());
            move |e: sqlx::Error| IcebergSinkError::Catalog {
                catalog,
                context,
                source: Box::new(e),
            }
        };
        if let Some(dir) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(dir).map_err(|e| err("creating its directory")(e.into()))?;
        }
        // A file name, not a URL: `?`, `#` and `%` in the path are characters of the name.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(err("opening"))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS iceberg_tables (
                catalog_name VARCHAR(255) NOT NULL,
                table_namespace VARCHAR(255) NOT NULL,
                table_name VARCHAR(255) NOT NULL,
                metadata_location VARCHAR(1000),
                previous_metadata_location VARCHAR(1000),
                iceberg_type VARCHAR(5),
                PRIMARY KEY (catalog_name, table_namespace, table_name))",
        )
        .execute(&pool)
        .await
        .map_err(err("creating iceberg_tables"))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
                catalog_name VARCHAR(255) NOT NULL,
                namespace VARCHAR(255) NOT NULL,
                property_key VARCHAR(255) NOT NULL,
                property_value VARCHAR(1000),
                PRIMARY KEY (catalog_name, namespace, property_key))",
        )
        .execute(&pool)
        .await
        .map_err(err("creating iceberg_namespace_properties"))?;
        // Java's JdbcCatalog before its V1 schema (and catalogs created by other tools) may lack
        // the `iceberg_type` column; pyiceberg 0.12 declares and writes it.
        let columns = sqlx::query("SELECT name FROM pragma_table_info('iceberg_tables')")
            .fetch_all(&pool)
            .await
            .map_err(err("reading the iceberg_tables columns"))?;
        let typed = columns
            .iter()
            .any(|r| r.get::<String, _>(0).eq_ignore_ascii_case("iceberg_type"));
        Ok(SqlCatalog {
            path: path.to_string(),
            name: name.to_string(),
            pool,
            typed,
        })
    }

    /// The catalog name rows are written under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQLite file.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn err(&self, context: String) -> impl FnOnce(sqlx::Error) -> IcebergSinkError {
        let catalog = self.path.clone();
        move |e| IcebergSinkError::Catalog {
            catalog,
            context,
            source: Box::new(e),
        }
    }

    /// The current metadata location of a table, `None` when the catalog has no such table.
    pub async fn metadata_location(&self, namespace: &str, table: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT metadata_location FROM iceberg_tables
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
        )
        .bind(&self.name)
        .bind(namespace)
        .bind(table)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err(format!("looking up {namespace}.{table}")))?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
    }

    /// Registers a new table at `metadata_location` (and its namespace). `false` when the table
    /// already exists (another writer created it first).
    pub async fn create_table(
        &self,
        namespace: &str,
        table: &str,
        metadata_location: &str,
    ) -> Result<bool> {
        let context = format!("creating {namespace}.{table}");
        sqlx::query(
            "INSERT OR IGNORE INTO iceberg_namespace_properties
             (catalog_name, namespace, property_key, property_value) VALUES (?, ?, 'exists', 'true')",
        )
        .bind(&self.name)
        .bind(namespace)
        .execute(&self.pool)
        .await
        .map_err(self.err(context.clone()))?;
        let sql = if self.typed {
            "INSERT OR IGNORE INTO iceberg_tables
             (catalog_name, table_namespace, table_name, metadata_location, iceberg_type)
             VALUES (?, ?, ?, ?, 'TABLE')"
        } else {
            "INSERT OR IGNORE INTO iceberg_tables
             (catalog_name, table_namespace, table_name, metadata_location)
             VALUES (?, ?, ?, ?)"
        };
        let done = sqlx::query(sql)
            .bind(&self.name)
            .bind(namespace)
            .bind(table)
            .bind(metadata_location)
            .execute(&self.pool)
            .await
            .map_err(self.err(context))?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves the table's pointer from `expected` to `new` if it still is `expected`. `false`
    /// when another writer moved it first.
    pub async fn swap(
        &self,
        namespace: &str,
        table: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool> {
        let typed = if self.typed {
            " AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ?
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?
             AND metadata_location = ?{typed}"
        );
        let done = sqlx::query(&sql)
            .bind(new)
            .bind(expected)
            .bind(&self.name)
            .bind(namespace)
            .bind(table)
            .bind(expected)
            .execute(&self.pool)
            .await
            .map_err(self.err(format!("committing {namespace}.{table}")))?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[tokio::test]
    async fn paths_with_url_characters_are_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a?mode=ro#frag%20x");
        let path = odd.join("catalog.db");
        let catalog = SqlCatalog::open(path.to_str().unwrap(), "lake")
            .await
            .unwrap();
        assert!(catalog.create_table("a", "b", "m0").await.unwrap());
        assert!(catalog.swap("a", "b", "m0", "m1").await.unwrap());
        // The file is where the path says, not at a name cut at `?` or `#`.
        assert!(
            path.is_file(),
            "{:?}",
            std::fs::read_dir(&odd).unwrap().collect::<Vec<_>>()
        );
        let again = SqlCatalog::open(path.to_str().unwrap(), "lake")
            .await
            .unwrap();
        assert_eq!(
            again.metadata_location("a", "b").await.unwrap().as_deref(),
            Some("m1")
        );
    }

    #[tokio::test]
    async fn works_on_a_catalog_pyiceberg_created() {
        // pyiceberg's DDL has no `iceberg_type` column.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
                    .unwrap()
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE iceberg_tables (catalog_name VARCHAR(255) NOT NULL,
             table_namespace VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL,
             metadata_location VARCHAR(1000), previous_metadata_location VARCHAR(1000),
             PRIMARY KEY (catalog_name, table_namespace, table_name))",
        )
        .execute(&pool)
        .await
        .unwrap();
        let catalog = SqlCatalog::open(path.to_str().unwrap(), "lake")
            .await
            .unwrap();
        assert!(!catalog.typed);
        assert!(catalog.create_table("a", "b", "m0").await.unwrap());
        assert!(!catalog.create_table("a", "b", "other").await.unwrap());
        assert!(catalog.swap("a", "b", "m0", "m1").await.unwrap());
        assert!(!catalog.swap("a", "b", "m0", "m2").await.unwrap());
        // Another catalog name does not see the table.
        let other = SqlCatalog::open(path.to_str().unwrap(), "other")
            .await
            .unwrap();
        assert_eq!(other.metadata_location("a", "b").await.unwrap(), None);
        let previous: Option<String> = sqlx::query(
            "SELECT previous_metadata_location FROM iceberg_tables WHERE table_name = 'b'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
        assert_eq!(previous.as_deref(), Some("m0"));
    }
}
