//! Keeping secrets out of logs: option maps (storage options, Kafka properties) often hold
//! credentials, so their `Debug` form shows only the keys.

use std::collections::HashMap;
use std::fmt;

/// Formats an option map as its sorted keys only.
///
/// ```
/// use std::collections::HashMap;
/// use cdc_core::secrets::KeysOnly;
/// let opts = HashMap::from([("sasl.password".to_string(), "hunter2".to_string())]);
/// assert_eq!(format!("{:?}", KeysOnly(&opts)), r#"["sasl.password"]"#);
/// ```
pub struct KeysOnly<'a>(pub &'a HashMap<String, String>);

impl fmt::Debug for KeysOnly<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        f.debug_list().entries(keys).finish()
    }
}

/// A secret value (a token, a password) handed over in code: its `Debug` form never shows it.
///
/// ```
/// use cdc_core::secrets::Secret;
/// let token = Secret::new("hunter2");
/// assert_eq!(token.expose(), "hunter2");
/// assert!(!format!("{token:?}").contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
