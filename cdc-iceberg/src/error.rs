//! Errors of the Iceberg sink.
//!
//! Every variant names the table; file errors name the file, schema errors the column.
//! Locations are local paths or URLs without credentials (credentials never enter a location).

/// Result with [`IcebergSinkError`].
pub type Result<T, E = IcebergSinkError> = std::result::Result<T, E>;

/// Errors of the Iceberg sink.
#[derive(Debug, thiserror::Error)]
pub enum IcebergSinkError {
    /// The iceberg crate failed (metadata, manifests, file I/O).
    #[error("iceberg table `{table}`: {context}: {source}")]
    Iceberg {
        /// Table.
        table: String,
        /// What was being done.
        context: String,
        /// The iceberg error.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// The catalog failed (the SQLite database, or a REST catalog's transport).
    #[error("iceberg catalog `{catalog}`: {context}: {source}")]
    Catalog {
        /// Catalog database path or REST URI (never with credentials).
        catalog: String,
        /// What was being done.
        context: String,
        /// The database or HTTP error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A REST catalog refused a request.
    #[error("iceberg REST catalog `{catalog}`: {context}: HTTP {status}: {message}")]
    Rest {
        /// The catalog's URI.
        catalog: String,
        /// What was being done.
        context: String,
        /// The HTTP status.
        status: u16,
        /// The catalog's error type and message.
        message: String,
    },
    /// A REST commit whose outcome the catalog did not tell (a 5xx answer or a lost
    /// connection), and which the table, read again, does not show: retried on the table's
    /// new metadata (the retry asserts the snapshot it builds on, so the lost commit and the
    /// retry cannot both land). The lost attempt's files are left to orphan cleanup.
    #[error("iceberg table `{table}`: commit state unknown ({message}); the table does not show the commit")]
    CommitUnknown {
        /// Table.
        table: String,
        /// What the catalog answered.
        message: String,
    },
    /// Another writer moved the table's metadata pointer between our read and our swap.
    #[error("iceberg table `{table}`: commit conflict: metadata is no longer `{expected}`")]
    CommitConflict {
        /// Table.
        table: String,
        /// The metadata location we read and tried to replace.
        expected: String,
    },
    /// Reading or writing a data or delete file failed.
    #[error("iceberg table `{table}`: file `{path}`: {message}")]
    File {
        /// Table.
        table: String,
        /// File location.
        path: String,
        /// What failed.
        message: String,
    },
    /// A column cannot be stored in Iceberg or changed the way the source changed it.
    #[error("iceberg table `{table}` column `{column}`: {message}")]
    Schema {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A table property or the table's layout is not what cdc-lake wrote.
    #[error("iceberg table `{table}`: {message}")]
    Layout {
        /// Table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A core error (schema evolution, keys, Arrow).
    #[error(transparent)]
    Core(#[from] cdc_core::Error),
}

impl IcebergSinkError {
    /// True for errors a retry on the table's new metadata can resolve.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            IcebergSinkError::CommitConflict { .. } | IcebergSinkError::CommitUnknown { .. }
        )
    }

    /// What kind of failure this is, in a few words (no details).
    pub fn kind(&self) -> &'static str {
        match self {
            IcebergSinkError::Iceberg { .. } => "iceberg error",
            IcebergSinkError::Catalog { .. } => "catalog error",
            IcebergSinkError::Rest { .. } => "REST catalog error",
            IcebergSinkError::CommitUnknown { .. } => "commit state unknown",
            IcebergSinkError::CommitConflict { .. } => "commit conflict",
            IcebergSinkError::File { .. } => "file error",
            IcebergSinkError::Schema { .. } => "schema error",
            IcebergSinkError::Layout { .. } => "unexpected table layout",
            IcebergSinkError::Core(_) => "core error",
        }
    }

    /// The table the error is about (empty for catalog-wide errors).
    pub fn table(&self) -> String {
        match self {
            IcebergSinkError::Iceberg { table, .. }
            | IcebergSinkError::CommitConflict { table, .. }
            | IcebergSinkError::CommitUnknown { table, .. }
            | IcebergSinkError::File { table, .. }
            | IcebergSinkError::Schema { table, .. }
            | IcebergSinkError::Layout { table, .. } => table.clone(),
            IcebergSinkError::Catalog { .. }
            | IcebergSinkError::Rest { .. }
            | IcebergSinkError::Core(_) => String::new(),
        }
    }
}

/// Wraps an iceberg error with the table and what was being done.
pub(crate) fn iceberg_err(
    table: &impl ToString,
    context: impl Into<String>,
) -> impl FnOnce(iceberg::Error) -> IcebergSinkError {
    let table = table.to_string();
    let context = context.into();
    move |source| IcebergSinkError::Iceberg {
        table,
        context,
        source: Box::new(source),
    }
}

/// Wraps a file error with the table and the file.
pub(crate) fn file_err<E: std::fmt::Display>(
    table: &impl ToString,
    path: &str,
) -> impl FnOnce(E) -> IcebergSinkError {
    let table = table.to_string();
    let path = path.to_string();
    move |e| IcebergSinkError::File {
        table,
        path,
        message: e.to_string(),
    }
}

impl From<IcebergSinkError> for cdc_core::Error {
    fn from(e: IcebergSinkError) -> Self {
        match e {
            IcebergSinkError::Core(core) => core,
            IcebergSinkError::Schema {
                table,
                column,
                message,
            } => cdc_core::Error::IncompatibleSchema {
                table,
                column,
                message,
            },
            // The details are in the source error: a short message keeps error chains from
            // printing them twice.
            other => cdc_core::Error::Sink {
                table: other.table(),
                message: other.kind().to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_errors_become_incompatible_schema_naming_the_column() {
        let e: cdc_core::Error = IcebergSinkError::Schema {
            table: "public.t".into(),
            column: "price".into(),
            message: "cannot change type Utf8 to Int32".into(),
        }
        .into();
        assert!(matches!(e, cdc_core::Error::IncompatibleSchema { .. }));
        assert!(e.to_string().contains("price"), "{e}");
    }

    #[test]
    fn sink_errors_print_their_details_once_in_a_chain() {
        let e: cdc_core::Error = IcebergSinkError::Layout {
            table: "public.t".into(),
            message: "snapshot 42 is missing".into(),
        }
        .into();
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        assert_eq!(
            chain.matches("snapshot 42 is missing").count(),
            1,
            "{chain}"
        );
        assert!(e.to_string().contains("public.t"), "{e}");
        assert!(e.to_string().contains("unexpected table layout"), "{e}");
    }

    #[test]
    fn only_commit_conflicts_and_unapplied_commits_are_retried() {
        let conflict = IcebergSinkError::CommitConflict {
            table: "a.b".into(),
            expected: "m".into(),
        };
        assert!(conflict.is_retryable());
        let unknown = IcebergSinkError::CommitUnknown {
            table: "a.b".into(),
            message: "HTTP 504".into(),
        };
        assert!(unknown.is_retryable());
        let layout = IcebergSinkError::Layout {
            table: "a.b".into(),
            message: "x".into(),
        };
        assert!(!layout.is_retryable());
        let refused = IcebergSinkError::Rest {
            catalog: "http://h".into(),
            context: "committing".into(),
            status: 400,
            message: "bad".into(),
        };
        assert!(!refused.is_retryable());
    }
}
