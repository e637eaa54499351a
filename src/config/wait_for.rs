//! `WAIT_FOR`: more dependencies to wait for, from the environment, for the
//! standalone binary and init containers: `name=URL`, comma-separated, each
//! URL's scheme naming its backend ([`WaitTarget`], in the list of backends:
//! `tcp://`, `http(s)://`, `postgres://`, `mysql://`, `redis://`, `amqp://`,
//! `nats://`, `mqtt://`, `dns://`). `WAIT_FOR_OPTIONAL` names those that
//! must not hold start-up or `/ready`. `WAIT_FOR_<NAME>_<SETTING>` sets one
//! entry's policy or HTTP expectations ([`PER_ENTRY`]). Here: the names and
//! the list's rules.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use super::RetryFields;
use super::check::Checker;
pub use crate::backends::WaitTarget;
use crate::backends::http::{ExpectBody, ExpectStatus};
use crate::redact::{redact_url, register_url_secrets};
use crate::retry::RetryPolicy;

/// One `WAIT_FOR` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitFor {
    pub name: String,
    pub target: WaitTarget,
    /// Not in `WAIT_FOR_OPTIONAL`.
    pub required: bool,
    /// Its own policy: the shared `WAIT_FOR_*` one, with what its
    /// `WAIT_FOR_<NAME>_*` variables change.
    pub policy: RetryPolicy,
}

/// The settings one entry may have of its own, as
/// `WAIT_FOR_<NAME>_<SETTING>` (`<NAME>`: the entry's name upper-cased, `-`
/// as `_`): the retry policy's, then an `http(s)://` entry's expectations.
pub const PER_ENTRY: [&str; 10] = [
    "MAX_RETRIES",
    "RETRY_INTERVAL_MS",
    "CONNECT_TIMEOUT_MS",
    "RETRY_BACKOFF",
    "RETRY_MULTIPLIER",
    "RETRY_MAX_INTERVAL_MS",
    "RETRY_JITTER",
    "STARTUP_TIMEOUT_MS",
    "EXPECT_STATUS",
    "EXPECT_BODY",
];

/// The part of the variables' names an entry's name gives:
/// `auth-api` gives `AUTH_API`.
pub fn env_key(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// A variable's name made `'static`, as a [`super::Problem`] holds it: each
/// distinct name is leaked once (they are the process's own environment's).
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The names `WAIT_FOR` may not take.
const RESERVED: [&str; 2] = ["database", "cache"];

const ACCEPTED: &str = crate::backends::WAIT_FOR_ACCEPTED;

/// Whether `name` may name a dependency: what metrics labels and JSON keys
/// take without quoting surprises.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Checker {
    /// `WAIT_FOR` and `WAIT_FOR_OPTIONAL`: every bad entry is reported,
    /// naming it (without a password). The good entries, and whether all
    /// were.
    pub(super) fn wait_for(
        &mut self,
        raw: Option<&str>,
        optional: Option<&str>,
        policy: RetryPolicy,
    ) -> (Vec<WaitFor>, bool) {
        const VAR: &str = "WAIT_FOR";
        let mut entries = Vec::new();
        let mut ok = true;
        if let Some(raw) = raw {
            // Each entry's URL, so that each entry's password is known on
            // its own (found by the fuzz target `settings`: the list
            // registered whole hid only one password of two).
            register_url_secrets(raw);
            for entry in raw.split(',') {
                if let Some((_, url)) = entry.split_once('=') {
                    register_url_secrets(url.trim());
                }
            }
            let Some(value) = self.present(VAR, raw, ACCEPTED) else {
                return (entries, false);
            };
            let mut seen = BTreeSet::new();
            for entry in value.split(',').map(str::trim) {
                match self.wait_entry(entry, &mut seen, policy) {
                    Some(wait) => entries.push(wait),
                    None => ok = false,
                }
            }
        }
        if let Some(optional) = optional {
            const OPT: &str = "WAIT_FOR_OPTIONAL";
            let Some(value) = self.present(
                OPT,
                optional,
                "names of WAIT_FOR's entries, comma-separated",
            ) else {
                return (entries, false);
            };
            for name in value.split(',').map(str::trim) {
                match entries.iter_mut().find(|w| w.name == name) {
                    Some(wait) => wait.required = false,
                    None => {
                        self.fail(
                            OPT,
                            value,
                            format!("names {name:?}, which is not one of WAIT_FOR's entries"),
                            "names of WAIT_FOR's entries, comma-separated",
                        );
                        ok = false;
                    }
                }
            }
        }
        (entries, ok)
    }

    fn wait_entry(
        &mut self,
        entry: &str,
        seen: &mut BTreeSet<String>,
        policy: RetryPolicy,
    ) -> Option<WaitFor> {
        const VAR: &str = "WAIT_FOR";
        let shown = redact_url(entry);
        let Some((name, url)) = entry.split_once('=') else {
            self.fail(VAR, &shown, "has an entry without `name=`", ACCEPTED);
            return None;
        };
        let (name, url) = (name.trim(), url.trim());
        let shown = format!("{name}={}", redact_url(url));
        if !valid_name(name) {
            self.fail(
                VAR,
                &shown,
                format!("has an entry named {name:?}"),
                ACCEPTED,
            );
            return None;
        }
        if RESERVED.contains(&name) {
            self.fail(
                VAR,
                &shown,
                format!(
                    "has an entry named {name:?}, a name readygate keeps for its own dependency"
                ),
                ACCEPTED,
            );
            return None;
        }
        if !seen.insert(name.to_owned()) {
            self.fail(VAR, &shown, format!("names {name:?} twice"), ACCEPTED);
            return None;
        }
        let parsed = match url::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.fail(
                    VAR,
                    &shown,
                    format!("has an entry that is not a URL ({e})"),
                    ACCEPTED,
                );
                return None;
            }
        };
        let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
            self.fail(VAR, &shown, "has an entry that names no host", ACCEPTED);
            return None;
        };
        let target = WaitTarget::parse(self, &shown, url, &parsed, host)?;
        Some(WaitFor {
            name: name.to_owned(),
            target,
            required: true,
            policy,
        })
    }

    /// The `WAIT_FOR_<NAME>_<SETTING>` variables (`vars`, each as given):
    /// each must name an entry and a setting, or it is a problem (a typo
    /// must not pass silently; one naming an entry of `named`, the names
    /// `WAIT_FOR` writes, that was refused is left to that problem). An
    /// entry's policy is `shared`'s settings
    /// (the `WAIT_FOR_*` values, the database's defaults for the back-off)
    /// with its own in their place, checked as the database's are.
    pub(super) fn per_entry(
        &mut self,
        entries: &mut [WaitFor],
        named: &[&str],
        vars: &[(String, String)],
        shared: &RetryFields<String>,
    ) {
        let accepted = format!(
            "WAIT_FOR_<NAME>_<SETTING>, NAME one of WAIT_FOR's entries ({}) upper-cased with - as _, \
             SETTING one of {}",
            entries
                .iter()
                .map(|w| env_key(&w.name))
                .collect::<Vec<_>>()
                .join(", "),
            PER_ENTRY.join(", ")
        );
        // Entry index -> setting -> (variable, value).
        let mut given: BTreeMap<usize, BTreeMap<&str, (&'static str, &str)>> = BTreeMap::new();
        for (var, value) in vars {
            let rest = var.strip_prefix("WAIT_FOR_").unwrap_or(var);
            let found = PER_ENTRY.iter().find_map(|setting| {
                let key = rest.strip_suffix(setting)?.strip_suffix('_')?;
                (!key.is_empty()).then_some((key, *setting))
            });
            let Some((key, setting)) = found else {
                self.fail(
                    intern(var),
                    value,
                    "is not a setting readygate knows",
                    &accepted,
                );
                continue;
            };
            let matching: Vec<usize> = (0..entries.len())
                .filter(|&i| env_key(&entries[i].name) == key)
                .collect();
            let bad_entry = named.iter().any(|n| env_key(n) == key);
            if matching.is_empty() && !bad_entry {
                self.fail(
                    intern(var),
                    value,
                    format!("names no WAIT_FOR entry ({key:?} is none of them)"),
                    &accepted,
                );
            }
            for i in matching {
                given
                    .entry(i)
                    .or_default()
                    .insert(setting, (intern(var), value.as_str()));
            }
        }
        for (i, settings) in given {
            let entry = &mut entries[i];
            let key = env_key(&entry.name);
            let var = |setting: &str| intern(&format!("WAIT_FOR_{key}_{setting}"));
            let value = |setting: &str, shared: &String| {
                settings
                    .get(setting)
                    .map_or_else(|| shared.clone(), |(_, v)| (*v).to_owned())
            };
            let vars = RetryFields {
                max_retries: var("MAX_RETRIES"),
                interval: var("RETRY_INTERVAL_MS"),
                backoff: var("RETRY_BACKOFF"),
                multiplier: var("RETRY_MULTIPLIER"),
                max_interval: var("RETRY_MAX_INTERVAL_MS"),
                jitter: var("RETRY_JITTER"),
                timeout: var("CONNECT_TIMEOUT_MS"),
                startup_timeout: var("STARTUP_TIMEOUT_MS"),
            };
            let values = RetryFields {
                max_retries: value("MAX_RETRIES", &shared.max_retries),
                interval: value("RETRY_INTERVAL_MS", &shared.interval),
                backoff: value("RETRY_BACKOFF", &shared.backoff),
                multiplier: value("RETRY_MULTIPLIER", &shared.multiplier),
                max_interval: value("RETRY_MAX_INTERVAL_MS", &shared.max_interval),
                jitter: value("RETRY_JITTER", &shared.jitter),
                timeout: value("CONNECT_TIMEOUT_MS", &shared.timeout),
                startup_timeout: value("STARTUP_TIMEOUT_MS", &shared.startup_timeout),
            };
            if let Some(policy) = self.retry_policy(&vars, &values.as_refs()) {
                entry.policy = policy;
            }
            let status = settings.get("EXPECT_STATUS");
            let body = settings.get("EXPECT_BODY");
            let WaitTarget::Http { expect, .. } = &mut entry.target else {
                for (var, value) in status.into_iter().chain(body) {
                    self.fail(
                        var,
                        value,
                        format!(
                            "is set, but the entry {:?} is {}://, not http(s)://",
                            entry.name,
                            entry.target.backend()
                        ),
                        "an expectation of an http:// or https:// entry",
                    );
                }
                continue;
            };
            if let Some((var, value)) = status {
                match ExpectStatus::parse(value) {
                    Ok(status) => expect.status = status,
                    Err(reason) => self.fail(var, value, reason, ExpectStatus::ACCEPTED),
                }
            }
            if let Some((var, value)) = body {
                match ExpectBody::parse(value) {
                    Ok(body) => expect.body = Some(body),
                    Err(reason) => self.fail(var, value, reason, ExpectBody::ACCEPTED),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(raw: &str, optional: Option<&str>) -> Result<Vec<WaitFor>, Vec<String>> {
        let mut c = Checker::default();
        let (entries, _) = c.wait_for(
            Some(raw),
            optional,
            RetryPolicy::fixed(3, Duration::from_secs(2), Duration::from_secs(5)),
        );
        Some(entries)
            .filter(|_| c.problems.is_empty())
            .ok_or_else(|| c.problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn entries_are_read_in_order_with_their_kind() {
        let waits = parse(
            "auth=http://auth:8080/health, broker=tcp://rabbit:5672,web=https://u:pw@api.example/ok",
            Some("broker"),
        )
        .unwrap();
        let names: Vec<_> = waits
            .iter()
            .map(|w| (w.name.as_str(), w.required))
            .collect();
        assert_eq!(names, [("auth", true), ("broker", false), ("web", true)]);
        assert_eq!(
            waits[1].target,
            WaitTarget::Tcp {
                host: "rabbit".into(),
                port: 5672
            }
        );
        assert_eq!(waits[2].target.shown(), "https://u:***@api.example/ok");
        assert_eq!(waits[0].target.backend(), "http");
    }

    #[test]
    fn names_are_what_labels_and_json_keys_take() {
        let longest = format!("a{}", "b".repeat(62));
        for good in ["auth", "auth-api_2", "a", longest.as_str()] {
            assert!(valid_name(good), "{good:?}");
        }
        let too_long = format!("{longest}c");
        for bad in [
            "",
            "Auth",
            "2auth",
            "-auth",
            "auth.api",
            "auth api",
            "auth/1",
            too_long.as_str(),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_bad_entry_is_named() {
        let problems = parse(
            "ok=tcp://h:1,noequals,Bad=tcp://h:1,database=tcp://h:1,ok=tcp://h:2,p=tcp://h,\
             x=ftp://h/,y=http://,z=http://u:hunter22@/",
            Some("ghost"),
        )
        .unwrap_err();
        let text = problems.join("\n");
        for words in [
            "without `name=`",
            "named \"Bad\"",
            "a name readygate keeps for its own dependency",
            "names \"ok\" twice",
            "without a port",
            "the scheme \"ftp\"",
            "not a URL (empty host)",
            "\"ghost\", which is not one of WAIT_FOR's entries",
        ] {
            assert!(text.contains(words), "{words:?} missing:\n{text}");
        }
        assert!(!text.contains("hunter22"), "{text}");
    }

    #[test]
    fn every_entrys_password_is_scrubbed_from_free_text() {
        parse(
            "a=http://u:first-secret@h1/x,b=http://v:second-secret@h2/y",
            None,
        )
        .unwrap();
        let text = "first-secret and second-secret";
        assert_eq!(crate::redact::scrub(text), "*** and ***");
    }

    fn shared_raw() -> RetryFields<String> {
        RetryFields {
            max_retries: "3".into(),
            interval: "2000".into(),
            backoff: "fixed".into(),
            multiplier: "2".into(),
            max_interval: "30000".into(),
            jitter: "0".into(),
            timeout: "5000".into(),
            startup_timeout: "0".into(),
        }
    }

    fn with_own(vars: &[(&str, &str)]) -> (Vec<WaitFor>, Vec<crate::config::Problem>) {
        let shared = RetryPolicy::fixed(3, Duration::from_secs(2), Duration::from_secs(5));
        let mut c = Checker::default();
        let (mut entries, ok) = c.wait_for(Some("auth-api=http://h/x,db=tcp://h:1"), None, shared);
        assert!(ok);
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        c.per_entry(&mut entries, &["auth-api", "db"], &vars, &shared_raw());
        (entries, c.problems)
    }

    #[test]
    fn an_entrys_own_settings_override_the_shared_ones_for_it_alone() {
        let (entries, problems) = with_own(&[
            ("WAIT_FOR_AUTH_API_MAX_RETRIES", "7"),
            ("WAIT_FOR_AUTH_API_RETRY_BACKOFF", "exponential"),
            ("WAIT_FOR_AUTH_API_RETRY_JITTER", "0.5"),
            ("WAIT_FOR_AUTH_API_EXPECT_STATUS", "200,3xx"),
            ("WAIT_FOR_AUTH_API_EXPECT_BODY", "ok$"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let auth = &entries[0];
        assert_eq!(auth.policy.max_attempts, 7);
        assert_eq!(
            auth.policy.backoff,
            crate::retry::Backoff::Exponential {
                multiplier: crate::retry::Thousandths(2000),
                max_interval: Duration::from_millis(30_000)
            }
        );
        assert_eq!(auth.policy.jitter, crate::retry::Thousandths(500));
        assert_eq!(auth.policy.interval, Duration::from_millis(2000));
        let WaitTarget::Http { expect, .. } = &auth.target else {
            panic!("not http")
        };
        assert!(expect.status.accepts(301) && expect.status.accepts(200));
        assert!(!expect.status.accepts(204));
        assert_eq!(expect.body.as_ref().map(ExpectBody::as_str), Some("ok$"));
        assert_eq!(
            entries[1].policy,
            RetryPolicy::fixed(3, Duration::from_secs(2), Duration::from_secs(5))
        );
    }

    #[test]
    fn an_entrys_bad_or_stray_settings_are_named() {
        let (_, problems) = with_own(&[
            ("WAIT_FOR_AUTH_API_MAX_RETRIES", "0"),
            ("WAIT_FOR_AUTH_API_EXPECT_BODY", "(unclosed"),
            ("WAIT_FOR_AUTH_API_EXPECT_STATUS", "2xx,abc"),
            ("WAIT_FOR_DB_EXPECT_STATUS", "200"),
            ("WAIT_FOR_GHOST_MAX_RETRIES", "2"),
            ("WAIT_FOR_DB_MAX_RETRY", "2"),
        ]);
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.variable, p.reason.as_str()))
            .collect();
        for (variable, reason) in [
            ("WAIT_FOR_AUTH_API_MAX_RETRIES", "is below 1"),
            (
                "WAIT_FOR_AUTH_API_EXPECT_BODY",
                "is not a regular expression",
            ),
            ("WAIT_FOR_AUTH_API_EXPECT_STATUS", "has \"abc\""),
            (
                "WAIT_FOR_DB_EXPECT_STATUS",
                "is set, but the entry \"db\" is tcp://",
            ),
            ("WAIT_FOR_GHOST_MAX_RETRIES", "names no WAIT_FOR entry"),
            ("WAIT_FOR_DB_MAX_RETRY", "is not a setting readygate knows"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|(v, r)| *v == variable && r.starts_with(reason)),
                "{variable} {reason}: {found:?}"
            );
        }
        assert_eq!(found.len(), 6, "{found:?}");
    }
}
