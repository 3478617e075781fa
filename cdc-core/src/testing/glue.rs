//! Glue settings for the formats' Glue tests.

use crate::glue::GlueConfig;
use crate::testing::Scenario;

/// Glue settings that give each of the scenario's source schemas a database of its own
/// (`<scenario>_<schema>`), so every scenario's tables can be registered in one catalog.
pub fn glue_config_for(scenario: &Scenario) -> GlueConfig {
    let databases = (scenario.tables.iter())
        .map(|(t, _)| {
            let db = format!("{}_{}", scenario.name, t.namespace).replace(['-', '.'], "_");
            (t.namespace.to_string(), db.to_lowercase())
        })
        .collect();
    GlueConfig {
        databases,
        ..GlueConfig::default()
    }
}
