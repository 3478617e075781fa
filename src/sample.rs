//! The sample change events `sync` reads when no `--source` is given: real Debezium events of
//! two Postgres tables (`data/sample/`), built into the binary so that the first run works from
//! any directory.

use std::sync::Arc;

use cdc_core::source::raw::RawFileSource;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStoreExt;

/// What `--source` says when it is not given.
pub const LOCATION: &str = "the bundled sample (data/sample)";

/// The S3 sink layout of the sample, relative to its `topics` directory.
const FILES: &[(&str, &[u8])] = &[
    (
        "dbserver1.public.all_types/partition=0/dbserver1.public.all_types+0+0000000000.json",
        include_bytes!("../data/sample/topics/dbserver1.public.all_types/partition=0/dbserver1.public.all_types+0+0000000000.json"),
    ),
    (
        "dbserver1.public.all_types/partition=0/dbserver1.public.all_types+0+0000000000.keys.json",
        include_bytes!("../data/sample/topics/dbserver1.public.all_types/partition=0/dbserver1.public.all_types+0+0000000000.keys.json"),
    ),
    (
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000000.json",
        include_bytes!("../data/sample/topics/dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000000.json"),
    ),
    (
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000000.keys.json",
        include_bytes!("../data/sample/topics/dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000000.keys.json"),
    ),
    (
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000100.json",
        include_bytes!("../data/sample/topics/dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000100.json"),
    ),
    (
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000100.keys.json",
        include_bytes!("../data/sample/topics/dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000100.keys.json"),
    ),
    (
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000200.json",
        include_bytes!("../data/sample/topics/dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000200.json"),
    ),
    (
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000200.keys.json",
        include_bytes!("../data/sample/topics/dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000200.keys.json"),
    ),
    (
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000300.json",
        include_bytes!("../data/sample/topics/dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000300.json"),
    ),
    (
        "dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000300.keys.json",
        include_bytes!("../data/sample/topics/dbserver1.public.customers/partition=0/dbserver1.public.customers+0+0000000300.keys.json"),
    ),
];

/// The sample as a raw-file source (in memory).
pub async fn source() -> cdc_core::Result<RawFileSource> {
    let store = Arc::new(InMemory::new());
    for (path, bytes) in FILES {
        let at = Path::from(format!("topics/{path}"));
        let put = store
            .put(&at, bytes::Bytes::from_static(bytes).into())
            .await;
        put.map_err(|e| cdc_core::Error::Config(format!("the bundled sample: {e}")))?;
    }
    RawFileSource::from_store(store, Path::from("topics"), LOCATION).await
}
