//! One pass over an envelope's payload for the common case (the schema is the one seen last,
//! the topic routes to a table): the top-level fields and the `source` block are read by the
//! [`Scan`]ner in place, and `after` streams straight into the table's builders, instead of
//! first splitting the payload into raw fields and then parsing `after` and `source` again.
//!
//! Anything unusual (a repeated field, a value of the wrong type, escapes where a key or a
//! read string is, a payload that is not an envelope) makes the pass give up; the caller then
//! takes the general path, which reports it.

use std::borrow::Cow;

use serde::de::DeserializeSeed;

use super::envelope::{SourceBlock, TransactionBlock};
use super::scan::Scan;
use super::table::RowSeed;
use crate::decode::avro::schema::Node;

/// A row image still to decode: JSON text, or an Avro record value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowInput<'p> {
    Json(&'p str),
    Avro(&'p Node, &'p [u8]),
}

/// An envelope's `after` image as the row decode takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum After<'p> {
    /// `null` or no `after` field.
    Missing,
    /// Still to decode (the general path).
    Image(RowInput<'p>),
    /// Already decoded into the builders as one more row (the single pass).
    Decoded,
}

/// The envelope's fields other than the decoded `after` row.
#[derive(Default)]
pub(crate) struct EnvelopeParts<'p> {
    pub(crate) op: Option<&'p str>,
    /// `Some(None)` for `"source": null`.
    pub(crate) source: Option<Option<SourceBlock<'p>>>,
    pub(crate) transaction: Option<TransactionBlock<'p>>,
    /// Its raw text, `null` included (the field is there).
    pub(crate) before: Option<&'p str>,
    /// `None` when the payload has no `after` field.
    pub(crate) after: Option<After<'p>>,
}

impl EnvelopeParts<'_> {
    /// Whether the general path would take the payload for an envelope.
    pub(crate) fn is_envelope(&self) -> bool {
        self.op.is_some()
            && self.source.is_some()
            && (self.after.is_some() || self.before.is_some())
    }
}

/// Reads an envelope payload, decoding `after` through `row`; `None` when the pass gives up
/// (the caller rolls back a row it may have decoded).
pub(crate) fn envelope<'p>(text: &'p str, row: RowSeed<'_>) -> Option<EnvelopeParts<'p>> {
    let mut scan = Scan::new(text);
    let mut row = Some(row);
    let mut parts = EnvelopeParts::default();
    let (mut first, mut transaction_seen) = (true, false);
    scan.open_object()?;
    while let Some(key) = scan.next_key(&mut first, false)? {
        match key {
            "after" => {
                let row = row.take()?;
                parts.after = Some(match scan.null() {
                    true => After::Missing,
                    false => decode_row(scan.value()?, row).then_some(After::Decoded)?,
                });
            }
            "before" if parts.before.is_none() => parts.before = Some(scan.value()?),
            "source" if parts.source.is_none() => {
                parts.source = Some(match scan.null() {
                    true => None,
                    false => Some(source_block(&mut scan)?),
                });
            }
            "op" if parts.op.is_none() => parts.op = Some(scan.plain_string()?),
            "transaction" if !transaction_seen => {
                transaction_seen = true;
                if !scan.null() {
                    parts.transaction = Some(serde_json::from_str(scan.value()?).ok()?);
                }
            }
            "before" | "source" | "op" | "transaction" => return None,
            _ => _ = scan.value()?,
        }
    }
    scan.at_end().then_some(parts)
}

/// Streams a row object into the builders; `false` when serde_json refuses it.
fn decode_row(text: &str, row: RowSeed<'_>) -> bool {
    let mut de = serde_json::Deserializer::from_str(text);
    row.deserialize(&mut de).and_then(|()| de.end()).is_ok()
}

/// The `source` block's fields as [`SourceBlock`]'s `Deserialize` reads them (others skipped).
fn source_block<'p>(scan: &mut Scan<'p>) -> Option<SourceBlock<'p>> {
    let mut s = SourceBlock::default();
    let (mut seen, mut first) = (0u16, true);
    scan.open_object()?;
    while let Some(key) = scan.next_key(&mut first, false)? {
        let slot = match key {
            "connector" => {
                s.connector = text(scan)?;
                0
            }
            "ts_ms" => {
                s.ts_ms = scan.optional_int()?;
                1
            }
            "db" => {
                s.db = text(scan)?;
                2
            }
            "schema" => {
                s.schema = text(scan)?;
                3
            }
            "table" => {
                s.table = text(scan)?;
                4
            }
            "lsn" => {
                s.lsn = scan.optional_int()?;
                5
            }
            "sequence" => {
                s.sequence = nullable_raw(scan)?;
                6
            }
            "txId" => {
                s.tx_id = scan.optional_int()?;
                7
            }
            "file" => {
                s.file = text(scan)?;
                8
            }
            "pos" => {
                s.pos = scan.optional_int()?;
                9
            }
            "row" => {
                s.row = scan.optional_int()?;
                10
            }
            "gtid" => {
                s.gtid = text(scan)?;
                11
            }
            _ => {
                scan.value()?;
                continue;
            }
        };
        // serde refuses a repeated field: leave it to serde to say so.
        if seen & (1 << slot) != 0 {
            return None;
        }
        seen |= 1 << slot;
    }
    Some(s)
}

fn text<'p>(scan: &mut Scan<'p>) -> Option<Option<Cow<'p, str>>> {
    scan.optional_plain_string().map(|s| s.map(Cow::Borrowed))
}

/// A value's raw text, `None` for `null` (as `Option<&RawValue>` deserializes).
fn nullable_raw<'p>(scan: &mut Scan<'p>) -> Option<Option<&'p str>> {
    match scan.null() {
        true => Some(None),
        false => scan.value().map(Some),
    }
}
