//! Which table a topic's events go to.

use regex::Regex;

use crate::error::{Error, Result};
use crate::model::TableId;

/// Maps Kafka topics to tables.
///
/// Default: `<prefix>.<schema>.<table>` → `<schema>.<table>`. Rules are tried in order; the
/// first whose regex matches the whole topic names the table through its replacement
/// (`$1`, `${name}`), which must give `<schema>.<table>`.
#[derive(Debug, Clone)]
pub struct TableRouter {
    rules: Vec<(Regex, String)>,
}

impl Default for TableRouter {
    fn default() -> Self {
        TableRouter {
            rules: vec![(
                Regex::new(r"^[^.]+\.([^.]+)\.([^.]+)$").expect("valid regex"),
                "$1.$2".to_string(),
            )],
        }
    }
}

impl TableRouter {
    /// A router with `rules` (regex, replacement) tried before the default rule.
    pub fn with_rules(rules: &[(String, String)]) -> Result<Self> {
        let mut router = TableRouter { rules: Vec::new() };
        for (pattern, replacement) in rules {
            let anchored = format!("^(?:{pattern})$");
            let re = Regex::new(&anchored)
                .map_err(|e| Error::Config(format!("bad route regex `{pattern}`: {e}")))?;
            router.rules.push((re, replacement.clone()));
        }
        router.rules.extend(TableRouter::default().rules);
        Ok(router)
    }

    /// The table of `topic`, if a rule matches.
    pub fn route(&self, topic: &str) -> Option<TableId> {
        self.rules.iter().find_map(|(re, replacement)| {
            let caps = re.captures(topic)?;
            let mut out = String::new();
            caps.expand(replacement, &mut out);
            TableId::parse(&out).ok()
        })
    }

    /// `e` naming the table its topic routes to, for source errors that know only the topic.
    pub(crate) fn with_table(&self, e: Error) -> Error {
        match e {
            Error::OffsetGap {
                table: None,
                topic,
                partition,
                first,
                last,
                reason,
            } => Error::OffsetGap {
                table: self.route(&topic).map(|t| t.to_string()),
                topic,
                partition,
                first,
                last,
                reason,
            },
            other => other,
        }
    }
}
