//! One pass over an envelope's payload for the common case (the schema is the one seen last,
//! the topic routes to a table): `after` streams straight into the table's builders while the
//! other fields are read, instead of first splitting the payload into raw fields and then
//! parsing `after` and `source` again.
//!
//! Anything unusual (a repeated field, a value of the wrong type, a payload that is not an
//! envelope) makes the pass give up; the caller then takes the general path, which reports it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::envelope::{SourceBlock, TransactionBlock};
use super::table::RowSeed;

/// An envelope's `after` image as the row decode takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After<'p> {
    /// `null` or no `after` field.
    Missing,
    /// Its text, still to decode (the general path).
    Text(&'p str),
    /// Already decoded into the builders as one more row (the single pass).
    Decoded,
}

/// The envelope's fields other than the decoded `after` row.
pub(crate) struct EnvelopeParts<'de> {
    pub(crate) op: Option<Cow<'de, str>>,
    /// `Some(None)` for `"source": null`.
    pub(crate) source: Option<Option<SourceBlock<'de>>>,
    pub(crate) transaction: Option<TransactionBlock<'de>>,
    pub(crate) before: Option<&'de RawValue>,
    /// `None` when the payload has no `after` field.
    pub(crate) after: Option<After<'de>>,
}

impl EnvelopeParts<'_> {
    /// Whether the general path would take the payload for an envelope.
    pub(crate) fn is_envelope(&self) -> bool {
        self.op.is_some()
            && self.source.is_some()
            && (self.after.is_some() || self.before.is_some())
    }
}

/// The seed of the pass: the row seed `after` goes into.
pub(crate) struct EnvelopeSeed<'a>(pub(crate) RowSeed<'a>);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = EnvelopeParts<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = EnvelopeParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an envelope payload")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut row = Some(self.0);
        let mut parts = EnvelopeParts {
            op: None,
            source: None,
            transaction: None,
            before: None,
            after: None,
        };
        let repeated = || de::Error::custom("repeated envelope field");
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "after" => {
                    let seed = row.take().ok_or_else(repeated)?;
                    parts.after = Some(match map.next_value_seed(OptionalRow(seed))? {
                        true => After::Decoded,
                        false => After::Missing,
                    });
                }
                "before" if parts.before.is_none() => parts.before = Some(map.next_value()?),
                "source" if parts.source.is_none() => parts.source = Some(map.next_value()?),
                "op" if parts.op.is_none() => parts.op = Some(map.next_value()?),
                "transaction" if parts.transaction.is_none() => {
                    parts.transaction = map.next_value::<Option<TransactionBlock>>()?;
                }
                "before" | "source" | "op" | "transaction" => return Err(repeated()),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(parts)
    }
}

/// A row object or `null`; `true` when a row was decoded.
struct OptionalRow<'a>(RowSeed<'a>);

impl<'de> DeserializeSeed<'de> for OptionalRow<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalRow<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        self.0.deserialize(d).map(|()| true)
    }
}
