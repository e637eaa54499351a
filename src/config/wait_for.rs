//! `WAIT_FOR`: more dependencies to wait for, from the environment, for the
//! standalone binary and init containers: `name=URL`, comma-separated, each
//! URL's scheme naming its backend ([`WaitTarget`], in the list of backends:
//! `tcp://host:port`, up when a TCP connection opens; `http://host[:port]/path`
//! or `https://`, up when a `GET` answers 2xx). `WAIT_FOR_OPTIONAL` names
//! those that must not hold start-up or `/ready`. Here: the names and the
//! list's rules.

use std::collections::BTreeSet;

use super::check::Checker;
pub use crate::backends::WaitTarget;
use crate::redact::{redact_url, register_url_secrets};

/// One `WAIT_FOR` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFor {
    pub name: String,
    pub target: WaitTarget,
    /// Not in `WAIT_FOR_OPTIONAL`.
    pub required: bool,
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
    /// naming it (without a password).
    pub(super) fn wait_for(
        &mut self,
        raw: Option<&str>,
        optional: Option<&str>,
    ) -> Option<Vec<WaitFor>> {
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
            let value = self.present(VAR, raw, ACCEPTED)?;
            let mut seen = BTreeSet::new();
            for entry in value.split(',').map(str::trim) {
                match self.wait_entry(entry, &mut seen) {
                    Some(wait) => entries.push(wait),
                    None => ok = false,
                }
            }
        }
        if let Some(optional) = optional {
            const OPT: &str = "WAIT_FOR_OPTIONAL";
            let value = self.present(
                OPT,
                optional,
                "names of WAIT_FOR's entries, comma-separated",
            )?;
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
        ok.then_some(entries)
    }

    fn wait_entry(&mut self, entry: &str, seen: &mut BTreeSet<String>) -> Option<WaitFor> {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, optional: Option<&str>) -> Result<Vec<WaitFor>, Vec<String>> {
        let mut c = Checker::default();
        c.wait_for(Some(raw), optional)
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
}
