//! The dead-letter location: bad records, with their error, where the user said.

use base64::Engine;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, Result};
use crate::source::RawRecord;

/// Writes a bad record and its error to `<prefix>/<topic>/partition=<p>/<offset>.json`.
pub(super) async fn write_dead_letter(
    store: &dyn ObjectStore,
    prefix: &Path,
    record: &RawRecord,
    error: &Error,
) -> Result<()> {
    let text_or_base64 = |b: &Option<bytes::Bytes>| {
        b.as_ref().map(|b| match std::str::from_utf8(b) {
            Ok(s) => serde_json::json!({ "text": s }),
            Err(_) => {
                serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) })
            }
        })
    };
    let field = match error {
        Error::Decode { field, .. } => field.clone(),
        _ => None,
    };
    let mut doc = serde_json::json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "error": error.to_string(),
        "field": field,
        "key": text_or_base64(&record.key),
        "value": text_or_base64(&record.value),
    });
    // A datum of an Avro container file is unreadable without its writer schema.
    for (name, schema) in [
        ("key_schema", &record.key_schema),
        ("value_schema", &record.value_schema),
    ] {
        if let Some(schema) = schema {
            doc[name] = serde_json::json!(&**schema);
        }
    }
    let path = prefix
        .clone()
        .join(&*record.topic)
        .join(format!("partition={}", record.partition).as_str())
        .join(format!("{:020}.json", record.offset).as_str());
    store
        .put(&path, PutPayload::from(doc.to_string().into_bytes()))
        .await
        .map_err(|e| Error::ObjectStore {
            path: path.to_string(),
            source: e,
        })?;
    Ok(())
}
