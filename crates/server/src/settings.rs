//! Every setting by name (issue 16): from the environment
//! (`REFDESK_<NAME>`), from a flag (`--set name=value`), and the
//! configuration in effect printed with its secrets hidden.
//!
//! A setting's name is its path in the TOML file: `listen`,
//! `limits.block_hours`, `mail.from`. Its variable is `REFDESK_` and the
//! path in capitals with `_` for `.` (`REFDESK_LIMITS_BLOCK_HOURS`); a
//! setting of a table also answers to its key alone (`REFDESK_BLOCK_HOURS`)
//! when no other setting has that key. A value is read as the setting's
//! type: a number, `true`/`false`, text, or a list written with commas.
//! Settings with a variable of their own ([`Config::apply_env`]) keep it.

use crate::Config;
use anyhow::{anyhow, Context};
use std::path::Path;

/// The variables read besides the settings' own `REFDESK_<NAME>`: settings
/// unset by default ([`Config::apply_env`]), the binary's (the file, a new
/// account's password, the log filter), the load generator's and the
/// build's (`REFDESK_COMMIT`, read by `build.rs`: a build machine that
/// keeps it set runs the binary with it too).
const OTHER_VARIABLES: &[&str] = &[
    "REFDESK_CONFIG",
    "REFDESK_COMMIT",
    "REFDESK_PASSWORD",
    "REFDESK_BENCH_PASSWORD",
    "REFDESK_LOG",
    "REFDESK_LOG_FORMAT",
    "REFDESK_LISTEN",
    "REFDESK_DATA_DIR",
    "REFDESK_DATABASE_URL",
    "REFDESK_NATS_URL",
    "REFDESK_NATS_USER",
    "REFDESK_NATS_PASSWORD",
    "REFDESK_NATS_TOKEN",
    "REFDESK_NATS_CREDENTIALS_FILE",
    "REFDESK_NATS_CA_FILE",
    "REFDESK_NATS_TLS",
    "REFDESK_NATS_SUBJECT",
    "REFDESK_NATS_KEY",
    "REFDESK_NATS_KEY_FILE",
    "REFDESK_NATS_SECOND_KEY",
    "REFDESK_NATS_SECOND_KEY_FILE",
    "REFDESK_PUBLIC_URL",
    "REFDESK_METRICS_LISTEN",
    "REFDESK_TRUSTED_PROXIES",
    "REFDESK_SECURE_COOKIES",
    "REFDESK_SMTP_URL",
    "REFDESK_MAIL_SMTP_URL",
    "REFDESK_MAIL_FROM",
    "REFDESK_MAX_MESSAGE_CHARS",
    "REFDESK_MAX_CONNECTIONS",
];

/// `raw` read as the type of the setting's `current` value.
fn parse_value(current: Option<&toml::Value>, raw: &str) -> toml::Value {
    use toml::Value;
    let typed = |sample: &Value, raw: &str| -> Option<Value> {
        match sample {
            Value::Integer(_) => raw.trim().parse().ok().map(Value::Integer),
            Value::Float(_) => raw.trim().parse().ok().map(Value::Float),
            Value::Boolean(_) => raw.trim().parse().ok().map(Value::Boolean),
            _ => Some(Value::String(raw.to_owned())),
        }
    };
    match current {
        Some(Value::Array(items)) => {
            let parts = raw.split(',').map(str::trim).filter(|p| !p.is_empty());
            let sample = items.first().cloned().unwrap_or(Value::String(String::new()));
            Value::Array(parts.map(|p| typed(&sample, p).unwrap_or_else(|| Value::String(p.into()))).collect())
        }
        // A value that does not read as the setting's type is passed on as
        // text: deserializing then says what was expected.
        Some(sample) => typed(sample, raw).unwrap_or_else(|| Value::String(raw.to_owned())),
        // A setting unset by default (an optional address, a file): text.
        None => Value::String(raw.to_owned()),
    }
}

impl Config {
    /// Sets one setting by its path from text, as `source` gave it; the
    /// configuration is unchanged on an error, which names the source.
    pub fn set(&mut self, path: &str, raw: &str, source: &str) -> anyhow::Result<()> {
        let mut table = toml::Table::try_from(&*self).context("the configuration cannot be written as TOML")?;
        let (section, key) = match path.split_once('.') {
            Some((s, k)) => (Some(s), k),
            None => (None, path),
        };
        let target = match section {
            Some(s) => match table.get_mut(s) {
                Some(toml::Value::Table(t)) => t,
                _ => return Err(anyhow!("{source}: there is no setting {path:?}")),
            },
            None => &mut table,
        };
        if section.is_none() && !target.contains_key(key) {
            let table_of = target.iter().find_map(|(name, v)| match v {
                toml::Value::Table(t) if t.contains_key(key) => Some(name.clone()),
                _ => None,
            });
            if let Some(table) = table_of {
                return Err(anyhow!("{source}: there is no setting {path:?}; it is {table}.{key}"));
            }
        }
        let value = parse_value(target.get(key), raw);
        target.insert(key.to_owned(), value);
        let text = toml::to_string(&table).context("the configuration cannot be written as TOML")?;
        let mut changed: Config =
            toml::from_str(&text).map_err(|e| anyhow!("{source}: {}", with_hint(e.message().trim_end_matches('.'))))?;
        // What the file never holds is kept as it is.
        changed.mail.public_url = self.mail.public_url.take();
        changed.sources = std::mem::take(&mut self.sources);
        changed.sources.insert(path.to_owned(), source.to_owned());
        *self = changed;
        Ok(())
    }

    /// Every setting's path that has a value by default, with its variables:
    /// `REFDESK_<PATH>`, and for a table's setting its key alone when that is
    /// unique.
    pub fn setting_names() -> Vec<(String, Vec<String>)> {
        let table = toml::Table::try_from(Config::default()).unwrap_or_default();
        let mut paths = Vec::new();
        for (key, value) in &table {
            match value {
                toml::Value::Table(t) => paths.extend(t.keys().map(|k| (Some(key.clone()), k.clone()))),
                _ => paths.push((None, key.clone())),
            }
        }
        let count = |k: &String| paths.iter().filter(|(_, other)| other == k).count();
        paths
            .iter()
            .map(|(section, key)| {
                let path = section.as_ref().map_or_else(|| key.clone(), |s| format!("{s}.{key}"));
                let mut vars = vec![format!("REFDESK_{}", path.replace('.', "_").to_uppercase())];
                if section.is_some() && count(key) == 1 {
                    vars.push(format!("REFDESK_{}", key.to_uppercase()));
                }
                (path, vars)
            })
            .collect()
    }

    /// The variables among `names` that start with `REFDESK_` but that
    /// refdesk reads nowhere: a misspelt one would otherwise be ignored
    /// without a word. Those of the test scripts (`REFDESK_TEST_…`,
    /// `REFDESK_BIN`) are not counted.
    pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
        let settings = Config::setting_names();
        let mut unknown: Vec<String> = names
            .into_iter()
            .filter(|n| n.starts_with("REFDESK_") && !n.starts_with("REFDESK_TEST_") && n != "REFDESK_BIN")
            // What Kubernetes (a Service named refdesk) and `docker --link`
            // put in every container's environment: not settings, not typos.
            .filter(|n| !n.starts_with("REFDESK_PORT") && !n.starts_with("REFDESK_SERVICE_"))
            .filter(|n| !OTHER_VARIABLES.contains(&n.as_str()))
            .filter(|n| !settings.iter().any(|(_, vars)| vars.contains(n)))
            .collect();
        unknown.sort();
        unknown
    }

    /// Applies every `REFDESK_<NAME>` variable set (see the module's
    /// documentation).
    pub fn apply_env_settings(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        for (path, vars) in Config::setting_names() {
            let set: Vec<(String, String)> = vars.into_iter().filter_map(|var| get(&var).map(|v| (var, v))).collect();
            // Two names of one setting that disagree: neither is taken
            // over the other without a word.
            if let [(a, x), (b, y), ..] = set.as_slice() {
                if x != y {
                    return Err(anyhow!("{a} and {b} both set {path}, to different values: set one of them"));
                }
            }
            if let Some((var, v)) = set.first() {
                self.set(&path, v, var)?;
            }
        }
        Ok(())
    }

    /// Applies `--set name=value` flags, in order.
    pub fn apply_sets(&mut self, sets: &[String]) -> anyhow::Result<()> {
        for s in sets {
            let (path, value) = s
                .split_once('=')
                .ok_or_else(|| anyhow!("--set {s:?}: write it as name=value, e.g. limits.block_hours=48"))?;
            self.set(path.trim(), value, &format!("--set {}", path.trim()))?;
        }
        Ok(())
    }

    /// The configuration as TOML with every secret hidden: passwords and
    /// tokens, the key, and a URL's password or token and secret query
    /// values (see `redact_url`; what makes a link secure stays).
    pub fn redacted_toml(&self) -> String {
        let mut table = toml::Table::try_from(self).unwrap_or_default();
        for key in SECRET_KEYS {
            if table.contains_key(key) {
                table.insert(key.into(), toml::Value::String("<hidden>".into()));
            }
        }
        let hide = |v: &mut toml::Value| {
            if let toml::Value::String(url) = v {
                *url = hide_userinfo(url);
            }
        };
        for key in URL_KEYS {
            table.get_mut(key).map(hide);
        }
        if let Some(toml::Value::Table(mail)) = table.get_mut("mail") {
            mail.get_mut("smtp_url").map(hide);
        }
        // The paths in effect, whole: saved as a file elsewhere, a relative
        // one would be taken from that file's folder (an empty database, a
        // key file not found). And without `..`: `/etc/refdesk/../../var/lib/x`
        // reads as `/var/lib/x` (a folder not made yet, from its parent's);
        // a path without `..` keeps its links (a data folder linked to
        // another disk is named as configured).
        let real = |p: &Path| {
            if !p.components().any(|c| c == std::path::Component::ParentDir) {
                return None;
            }
            std::fs::canonicalize(p).ok().or_else(|| {
                let parent = std::fs::canonicalize(p.parent()?).ok()?;
                Some(parent.join(p.file_name()?))
            })
        };
        let whole =
            |p: &Path| real(p).or_else(|| std::path::absolute(p).ok()).and_then(|d| d.to_str().map(str::to_owned));
        let files = [
            ("nats_credentials_file", &self.nats_credentials_file),
            ("nats_ca_file", &self.nats_ca_file),
            ("nats_key_file", &self.nats_key_file),
            ("nats_second_key_file", &self.nats_second_key_file),
        ];
        let paths = std::iter::once(("data_dir", Some(&self.data_dir)))
            .chain(files.into_iter().map(|(name, path)| (name, path.as_ref())));
        for (name, path) in paths {
            if let Some(path) = path.and_then(|p| whole(p)) {
                table.insert(name.into(), toml::Value::String(path));
            }
        }
        let text = toml::to_string_pretty(&table).unwrap_or_default();
        // Said where it is set, as what the cookies get is not the setting alone.
        if self.cookies_secure() && !self.secure_cookies {
            return text.replacen(
                "\nsecure_cookies = false\n",
                "\nsecure_cookies = false # cookies are Secure all the same: public_url is https\n",
                1,
            );
        }
        text
    }
}

/// A URL without what it may hold of a secret (`redact_url`).
/// The settings that are secrets whole.
const SECRET_KEYS: [&str; 4] = ["nats_password", "nats_token", "nats_key", "nats_second_key"];
/// The top-level settings that are URLs, which may hold a password (and
/// `mail.smtp_url`).
const URL_KEYS: [&str; 2] = ["database_url", "nats_url"];

/// The secrets a configuration file's text holds, by setting name: a
/// password, token or key, or a URL with a password or token in it.
/// Empty for text that is not TOML (the check says so elsewhere).
pub fn secrets_in(text: &str) -> Vec<&'static str> {
    let Ok(table) = text.parse::<toml::Table>() else { return Vec::new() };
    let hidden = |v: Option<&toml::Value>| v.and_then(toml::Value::as_str).is_some_and(|u| hide_userinfo(u) != u);
    let mut held: Vec<&'static str> = SECRET_KEYS.into_iter().filter(|k| table.contains_key(*k)).collect();
    held.extend(URL_KEYS.into_iter().filter(|k| hidden(table.get(*k))));
    if hidden(table.get("mail").and_then(|m| m.get("smtp_url"))) {
        held.push("mail.smtp_url");
    }
    held
}

fn hide_userinfo(url: &str) -> String {
    refdesk_app::nats::redact_url(url)
}

/// The settings a configuration file's lines set, each with its line
/// number: `(path, line)`, the path with its table (`limits.block_hours`).
fn settings_set(text: &str) -> impl Iterator<Item = (String, usize)> + '_ {
    let mut current: Option<String> = None;
    text.lines().enumerate().filter_map(move |(i, line)| {
        let line = line.trim();
        // A table's header, with or without a comment after it.
        let header = line.split('#').next().unwrap_or_default().trim_end();
        if let Some(name) = header.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_owned());
            return None;
        }
        let (key, _) = line.split_once('=').filter(|_| !line.starts_with('#'))?;
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        Some((current.as_ref().map_or_else(|| key.to_owned(), |s| format!("{s}.{key}")), i + 1))
    })
}

/// A parser's words about a value, with what a good one looks like where
/// they do not say (serde names the syntax, not the setting's form).
pub fn with_hint(message: &str) -> String {
    // TOML's syntax errors come on two lines ("invalid string" and what it
    // expected): one here, with what the usual slip is.
    let message = &in_words(message).replace('\n', ": ");
    if ["invalid string", "expected newline", "invalid TOML value"].iter().any(|m| message.contains(m)) {
        return format!("{message} (one setting per line; a text value goes in quotes: listen = \"127.0.0.1:8080\")");
    }
    // A number given as a string was one too large for any setting (TOML
    // and the environment hand it over as text once it is past 64 bits).
    let too_large = message
        .split("invalid type: string \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .is_some_and(|n| !n.is_empty() && n.len() <= 40 && n.bytes().all(|b| b.is_ascii_digit()));
    if too_large && message.contains("whole number") {
        return format!("{message}: this one is too large");
    }
    // A table (`limits`, `mail`) set to a value: its settings are set one by one.
    if message.contains("expected struct ") {
        return "this is a table of settings, not one value: set its settings one by one (in the file below its \
                [table] line; with --set or the environment by their full names, like limits.block_hours; `refdesk \
                config --defaults` lists them)"
            .to_owned();
    }
    if message.contains("invalid socket address syntax") {
        format!("{message}: give an IP address and a port from 1 to 65535, like 127.0.0.1:8080 (not a host name)")
    } else if let Some(key) = top_level_in_a_table(message) {
        // A setting written below a `[table]` line is read as one of its.
        format!(
            "{message} ({key} is a setting of its own, outside every table: it goes above the file's first [table])"
        )
    } else {
        message.to_owned()
    }
}

/// The setting an "unknown field" message names, if it is one outside
/// every table (and the message is a table's, so it was written below one).
fn top_level_in_a_table(message: &str) -> Option<&str> {
    let key = message.split("unknown field `").nth(1)?.split('`').next()?;
    let top: Vec<String> =
        Config::setting_names().into_iter().map(|(path, _)| path).filter(|p| !p.contains('.')).collect();
    let unset_by_default = [
        "public_url",
        "database_url",
        "metrics_listen",
        "nats_url",
        "nats_user",
        "nats_password",
        "nats_token",
        "nats_credentials_file",
        "nats_ca_file",
        "nats_key",
        "nats_key_file",
        "nats_second_key",
        "nats_second_key_file",
    ];
    (top.iter().any(|t| t == key) || unset_by_default.contains(&key)).then_some(key)
}

/// A parser's message (serde's, axum's, Rust's integer parsing) with the
/// Rust type it names said as what to write instead: `expected u16`, ``a
/// `i64` ``, `invalid digit found in string`.
pub fn in_words(message: &str) -> String {
    const KINDS: [(&str, &str); 22] = [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number from 0 to 4294967295"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("a `u8`", "a whole number from 0 to 255"),
        ("a `u16`", "a whole number from 0 to 65535"),
        ("a `u32`", "a whole number, 0 or more"),
        ("a `u64`", "a whole number, 0 or more"),
        ("a `usize`", "a whole number, 0 or more"),
        ("a `i32`", "a whole number"),
        ("a `i64`", "a whole number"),
        ("a `f64`", "a number"),
        ("a `bool`", "true or false"),
        ("invalid digit found in string", "not a whole number"),
        ("cannot parse integer from empty string", "empty where a whole number goes"),
        ("number too large to fit in target type", "too large a number"),
    ];
    KINDS.iter().fold(message.to_owned(), |m, (rust, said)| {
        // Only the whole word: `expected u16` is not `expected u1…`.
        match m.find(rust) {
            Some(at) if !m[at + rust.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()) => {
                m.replacen(rust, said, 1)
            }
            _ => m,
        }
    })
}

/// The line of `text` (a configuration file) where `path` is set, if it is.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    settings_set(text).find(|(p, _)| p == path).map(|(_, line)| line)
}

/// The line of `text` (a configuration file) that sets what an error
/// `message` is about: of the settings the file sets, the one the message
/// names first, as a whole name (an error about `nats_key_file` is not one
/// about `nats_key`). Messages begin with their subject ("metrics_listen
/// must differ from listen").
pub fn line_of_error(text: &str, message: &str) -> Option<usize> {
    settings_set(text)
        .filter_map(|(path, line)| named_at(message, &path).map(|at| (at, line)))
        .min()
        .map(|(_, line)| line)
}

/// Where `message` first names the setting `path` as a whole name (an
/// error about `nats_key_file` is not one about `nats_key`).
pub fn named_at(message: &str, path: &str) -> Option<usize> {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    message.match_indices(path).map(|(at, _)| at).find(|&at| {
        let before = message[..at].chars().next_back();
        let after = message[at + path.len()..].chars().next();
        !before.is_some_and(|c| part_of_name(c) || c == '.') && !after.is_some_and(part_of_name)
    })
}

#[cfg(test)]
mod tests {
    /// What a file holds that must not be readable by everyone.
    #[test]
    fn the_secrets_a_file_holds_are_named() {
        let all = "database_url = \"postgres://refdesk:pw@db/refdesk\"\nnats_url = \"nats://n:t@nats:4222\"\n\
                   nats_key = \"k\"\nnats_password = \"p\"\n[mail]\nsmtp_url = \"smtps://u:p@mail:465\"\n";
        assert_eq!(super::secrets_in(all), ["nats_password", "nats_key", "database_url", "nats_url", "mail.smtp_url"],);
        let none = "database_url = \"postgres://refdesk@db/refdesk\"\n[mail]\nsmtp_url = \"smtp://mail:25\"\n";
        assert!(super::secrets_in(none).is_empty());
        assert!(super::secrets_in("not = [toml").is_empty());
    }

    /// A value of the wrong kind is told what to write, not the Rust type
    /// the parser wanted, from the file, `--set` and the environment alike.
    #[test]
    fn a_value_of_the_wrong_kind_is_told_what_to_write() {
        let in_file = |toml: &str| crate::config::Config::parse_toml(toml).unwrap_err().to_string();
        assert_eq!(
            in_file("[limits]\nblock_hours = \"x\"\n"),
            "line 2: invalid type: string \"x\", expected a whole number, 0 or more"
        );
        assert!(in_file("[limits]\nblock_hours = -3\n").ends_with("integer `-3`, expected a whole number, 0 or more"));
        assert!(
            in_file("secure_cookies = 1\n").ends_with("expected true or false"),
            "{}",
            in_file("secure_cookies = 1\n")
        );
        let mut config = crate::config::Config::default();
        let set = config.set("limits.block_hours", "abc", "--set limits.block_hours").unwrap_err().to_string();
        assert_eq!(set, "--set limits.block_hours: invalid type: string \"abc\", expected a whole number, 0 or more");
        assert!(!super::with_hint("expected u16").contains("u16"));
        assert_eq!(super::with_hint("expected u160"), "expected u160", "only whole words");
    }

    #[test]
    fn every_variable_the_docs_name_is_known_and_a_misspelt_one_is_not() {
        let docs = [include_str!("../../../README.md"), include_str!("../../../docs/operations.md")].concat();
        let named: Vec<String> = docs
            .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .filter(|w| w.starts_with("REFDESK_") && w.len() > "REFDESK_".len())
            .map(str::to_owned)
            .collect();
        assert!(named.len() > 20, "the docs name the variables: {named:?}");
        assert_eq!(Config::unknown_variables(named), Vec::<String>::new());
        let typo = ["REFDESK_LISTN", "REFDESK_TEST_BACKEND", "HOME", "REFDESK_PORT_8080_TCP", "REFDESK_SERVICE_HOST"];
        assert_eq!(
            Config::unknown_variables(typo.map(String::from)),
            ["REFDESK_LISTN"],
            "Kubernetes' own are no typos"
        );
    }

    use super::*;

    #[test]
    fn every_setting_by_name_from_the_environment_and_flags() {
        let mut c = Config::default();
        let env = |k: &str| match k {
            "REFDESK_LIMITS_BLOCK_HOURS" => Some("48".to_owned()),
            "REFDESK_DATABASE_CONNECTIONS" => Some("7".to_owned()),
            "REFDESK_RETRY_MAX_MS" => Some("1000".to_owned()),
            _ => None,
        };
        c.apply_env_settings(env).unwrap();
        assert_eq!((c.limits.block_hours, c.database_connections, c.mail.retry_max_ms), (48, 7, 1000));
        c.apply_sets(&["limits.rollup_seconds=5".into(), "trusted_proxies=10.0.0.1, 10.0.0.2".into()]).unwrap();
        assert_eq!(c.limits.rollup_seconds, 5);
        assert_eq!(c.trusted_proxies.len(), 2);
        c.apply_sets(&["public_url=https://ask.example.org".into()]).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://ask.example.org"));
    }

    #[test]
    fn a_bad_name_or_value_is_refused_naming_it_and_changes_nothing() {
        let mut c = Config::default();
        let before = c.redacted_toml();
        let e = c.apply_sets(&["limits.block_hours=many".into()]).unwrap_err().to_string();
        assert!(e.contains("--set limits.block_hours"), "{e}");
        assert!(c.apply_sets(&["limits.nothing=1".into()]).is_err());
        assert!(c.apply_sets(&["nosuch.thing=1".into()]).is_err());
        assert!(c.apply_sets(&["no equals".into()]).is_err());
        let env = |k: &str| (k == "REFDESK_LIMITS_BLOCK_HOURS").then(|| "-3".to_owned());
        assert!(c.apply_env_settings(env).unwrap_err().to_string().contains("REFDESK_LIMITS_BLOCK_HOURS"));
        assert_eq!(c.redacted_toml(), before);
    }

    #[test]
    fn variable_names_are_unique_and_secrets_are_hidden() {
        let names: Vec<String> = Config::setting_names().into_iter().flat_map(|(_, v)| v).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
        let mut c = Config {
            database_url: Some("postgres://refdesk:s3cret@db/refdesk".into()),
            nats_key: Some("k".repeat(44)),
            ..Config::default()
        };
        c.mail.smtp_url = Some("smtp://u:p4ss@mail:587".into());
        c.nats_url = Some("nats://n@nats:4222?password=qu3ry".into());
        let shown = c.redacted_toml();
        for secret in ["s3cret", "p4ss", "qu3ry", &"k".repeat(44)] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("postgres://refdesk:***@db/refdesk"), "{shown}");
        // Cookies are Secure over https whatever the setting says: printed beside it.
        assert!(shown.contains("\nsecure_cookies = false\n"), "{shown}");
        c.public_url = Some("https://ask.example.org".into());
        let shown = c.redacted_toml();
        assert!(shown.contains("secure_cookies = false # cookies are Secure all the same: public_url is https"));
        assert!(crate::config::Config::parse_toml(&shown).is_ok_and(|back| back.cookies_secure()), "{shown}");
    }

    #[test]
    fn the_line_of_a_setting_in_a_file() {
        let text = "listen = \"127.0.0.1:1\"\n\n[limits]\nblock_hours = 3\n[mail]\nfrom = \"x\"\n";
        assert_eq!(line_of(text, "listen"), Some(1));
        assert_eq!(line_of(text, "limits.block_hours"), Some(4));
        assert_eq!(line_of(text, "mail.from"), Some(6));
        assert_eq!(line_of(text, "limits.from"), None);
    }

    #[test]
    fn an_error_points_at_the_line_of_the_setting_it_names_and_not_of_one_whose_name_is_part_of_it() {
        let text = "nats_url = \"nats://n:4222\"\nnats_key = \"short\"\nnats_key_file = \"/nowhere\"\n\
                    listen = \"127.0.0.1:1\"\nmetrics_listen = \"127.0.0.1:1\"\n[limits] # ours\nblock_hours = 0\n= 1\n";
        assert_eq!(line_of_error(text, "nats_key_file: cannot read /nowhere"), Some(3));
        assert_eq!(line_of_error(text, "nats_key: must be at least 32 bytes (nats_url is set)"), Some(2));
        assert_eq!(line_of_error(text, "nats_url: the nodes must share a key: set nats_key or nats_key_file"), Some(1));
        // The subject first, though the file sets the other one earlier.
        assert_eq!(line_of_error(text, "metrics_listen must differ from listen"), Some(5));
        assert_eq!(line_of_error(text, "limits.block_hours must be between 1 and 8760"), Some(7));
        // A name the file does not set, or none at all.
        assert_eq!(line_of_error(text, "mail.from is not an address"), None);
        assert_eq!(line_of_error(text, "the file is not TOML"), None);
    }
}
