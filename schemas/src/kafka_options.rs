//! Extra librdkafka settings from `KAFKA_OPT_<NAME>` environment variables
//! (`KAFKA_OPT_SASL_USERNAME=me` sets `sasl.username`), so SASL and TLS work
//! without code. The worker and the producer both read them here, so both
//! apply them in one order and neither ever prints a value.
//!
//! Order (later wins): a client's defaults, then these options, then the
//! client's pinned settings, the few its delivery guarantee rests on
//! (`enable.idempotence`, `enable.auto.offset.store`, ...), which no option
//! may change.

use std::fmt;

/// Environment variables with this prefix become librdkafka settings.
pub const ENV_PREFIX: &str = "KAFKA_OPT_";

/// `(name, value)` pairs, sorted by name. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaOptions(Vec<(String, String)>);

impl KafkaOptions {
    /// From this process's environment; variables that are not valid Unicode are ignored.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
    }

    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut options: Vec<(String, String)> = vars
            .into_iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(ENV_PREFIX)?;
                (!name.is_empty()).then(|| (name.to_ascii_lowercase().replace('_', "."), value))
            })
            .collect();
        options.sort();
        Self(options)
    }

    /// A client's settings in the order to apply them (later wins): the
    /// brokers and `defaults`, these options, then `pinned`.
    pub fn settings<'a>(
        &'a self,
        brokers: &'a str,
        defaults: &[(&'a str, &'a str)],
        pinned: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let options = self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        [("bootstrap.servers", brokers)]
            .into_iter()
            .chain(defaults.iter().copied())
            .chain(options)
            .chain(pinned.iter().copied())
            .collect()
    }

    /// Names of the options that a pinned setting overrides (to warn about).
    pub fn overridden(&self, pinned: &[(&str, &str)]) -> Vec<&str> {
        self.names().filter(|name| pinned.iter().any(|(p, _)| p == name)).collect()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// `text` with the value of every secret option replaced by `***`
    /// (librdkafka quotes a bad value in its error message).
    pub fn redact(&self, text: &str) -> String {
        self.0
            .iter()
            .filter(|(name, value)| is_secret(name) && !value.is_empty())
            .fold(text.to_owned(), |text, (_, value)| text.replace(value.as_str(), "***"))
    }
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Whether a setting's value must never be printed.
pub fn is_secret(name: &str) -> bool {
    ["password", "secret", "token", "jaas", "key", "credential", "oauthbearer.config"].iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_names_become_dotted_lower_case() {
        let options = KafkaOptions::from_vars(vars(&[
            ("KAFKA_OPT_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_OPT_SASL_USERNAME", "me"),
            ("KAFKA_OPT_", "ignored"),
            ("KAFKA_BROKERS", "ignored"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(options.names().collect::<Vec<_>>(), ["sasl.username", "security.protocol"]);
    }

    #[test]
    fn options_override_defaults_and_pinned_settings_override_options() {
        let options =
            KafkaOptions::from_vars(vars(&[("KAFKA_OPT_LINGER_MS", "50"), ("KAFKA_OPT_ENABLE_IDEMPOTENCE", "false")]));
        let pinned = [("enable.idempotence", "true")];
        let settings = options.settings("b:9092", &[("linger.ms", "5")], &pinned);
        let last = |name: &str| settings.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| *v);
        assert_eq!(last("linger.ms"), Some("50"));
        assert_eq!(last("enable.idempotence"), Some("true"));
        assert_eq!(options.overridden(&pinned), ["enable.idempotence"]);
    }

    #[test]
    fn secrets_are_redacted_and_never_debug_printed() {
        let options = KafkaOptions::from_vars(vars(&[
            ("KAFKA_OPT_SASL_PASSWORD", "hunter2"),
            ("KAFKA_OPT_SASL_USERNAME", "alice"),
            ("KAFKA_OPT_SSL_KEY_PASSWORD", "k3y"),
        ]));
        assert!(
            is_secret("sasl.password") && is_secret("sasl.oauthbearer.client.secret") && !is_secret("sasl.username")
        );
        let text = options.redact("Invalid value \"hunter2\" for sasl.password; k3y; user alice");
        assert_eq!(text, "Invalid value \"***\" for sasl.password; ***; user alice");
        let debug = format!("{options:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("alice") && debug.contains("sasl.username"), "{debug}");
    }
}
