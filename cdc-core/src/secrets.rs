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
