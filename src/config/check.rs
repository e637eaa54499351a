//! The validation primitives: each reads one variable's text, returns the
//! value when it is good and records a [`Problem`] when it is not, so that
//! one run reports every bad variable at once.

use std::fmt;
use std::time::Duration;

use crate::retry::Thousandths;

/// Longest accepted interval or timeout: one day.
pub const MAX_MILLIS: u64 = 86_400_000;
/// Most accepted connection attempts.
pub const MAX_RETRIES: u64 = 1_000_000;

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    /// The value as it may be shown (URLs without password).
    pub shown: String,
    pub reason: String,
    pub accepted: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} {} (accepted: {})",
            self.variable, self.shown, self.reason, self.accepted
        )
    }
}

/// Collects problems while each variable is checked.
#[derive(Default)]
pub(crate) struct Checker {
    pub(crate) problems: Vec<Problem>,
}

impl Checker {
    pub(crate) fn fail(
        &mut self,
        variable: &'static str,
        shown: &str,
        reason: impl Into<String>,
        accepted: &str,
    ) {
        self.problems.push(Problem {
            variable,
            shown: shown.to_owned(),
            reason: reason.into(),
            accepted: accepted.to_owned(),
        });
    }

    /// The trimmed value, or a problem when it is empty or holds a control
    /// character (a newline in a value could forge a log line; the problem
    /// shows the value escaped, as every [`Problem`] does).
    pub(crate) fn present<'a>(
        &mut self,
        variable: &'static str,
        raw: &'a str,
        accepted: &str,
    ) -> Option<&'a str> {
        let value = raw.trim();
        if value.is_empty() {
            self.fail(
                variable,
                raw,
                "is empty (unset it to use the default)",
                accepted,
            );
            None
        } else if value.chars().any(char::is_control) {
            // A URL may hold a password: shown as every URL is, whatever
            // the variable (a `WAIT_FOR` list, a `*_URL_FILE`'s content);
            // a value that may be a secret without `://` is hidden whole
            // (found by the fuzz target `settings`).
            let shown = if value.contains("://") || may_hold_secret(variable) {
                crate::redact::redact_url(value)
            } else {
                value.to_owned()
            };
            self.fail(
                variable,
                &shown,
                "contains a control character (such as a newline)",
                accepted,
            );
            None
        } else {
            Some(value)
        }
    }

    pub(crate) fn number(
        &mut self,
        variable: &'static str,
        raw: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let accepted = format!("a whole number from {min} to {max}");
        let value = self.present(variable, raw, &accepted)?;
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) if n < min => {
                self.fail(variable, value, format!("is below {min}"), &accepted);
                None
            }
            Ok(_) => {
                self.fail(variable, value, format!("is above {max}"), &accepted);
                None
            }
            Err(_) => {
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                let reason = if digits(value) {
                    "is too large"
                } else if value.strip_prefix('-').is_some_and(digits) {
                    "is negative"
                } else if value.parse::<f64>().is_ok_and(f64::is_finite) {
                    "is not a whole number"
                } else {
                    "is not a number"
                };
                self.fail(variable, value, reason, &accepted);
                None
            }
        }
    }

    /// A duration in milliseconds, from `min` ms to one day.
    pub(crate) fn millis_from(
        &mut self,
        variable: &'static str,
        raw: &str,
        min: u64,
    ) -> Option<Duration> {
        self.number(variable, raw, min, MAX_MILLIS)
            .map(Duration::from_millis)
    }

    /// A duration in milliseconds, from 1 ms to one day.
    pub(crate) fn millis(&mut self, variable: &'static str, raw: &str) -> Option<Duration> {
        self.millis_from(variable, raw, 1)
    }

    /// A decimal number with at most three decimals (`2`, `1.5`, `0.25`),
    /// from `min` to `max`, counted in thousandths.
    pub(crate) fn thousandths(
        &mut self,
        variable: &'static str,
        raw: &str,
        (min, max): (Thousandths, Thousandths),
    ) -> Option<Thousandths> {
        let accepted = format!("a decimal number from {min} to {max}, at most 3 decimals");
        let value = self.present(variable, raw, &accepted)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
        let well_formed =
            digits(whole) && (frac.is_empty() || digits(frac)) && !value.ends_with('.');
        let reason = if !well_formed {
            if value.parse::<f64>().is_ok_and(|v| v < 0.0) {
                "is negative".to_owned()
            } else {
                "is not a decimal number".to_owned()
            }
        } else if frac.len() > 3 {
            "has more than 3 decimals".to_owned()
        } else {
            let frac: u64 = format!("{frac:0<3}").parse().unwrap_or(0);
            let n = whole
                .parse::<u64>()
                .ok()
                .and_then(|w| w.checked_mul(1000))
                .and_then(|w| w.checked_add(frac))
                .and_then(|n| u32::try_from(n).ok())
                .map(Thousandths);
            match n {
                Some(n) if (min..=max).contains(&n) => return Some(n),
                Some(n) if n < min => format!("is below {min}"),
                _ => format!("is above {max}"),
            }
        };
        self.fail(variable, value, reason, &accepted);
        None
    }

    pub(crate) fn retries(&mut self, variable: &'static str, raw: &str) -> Option<u32> {
        self.number(variable, raw, 1, MAX_RETRIES)
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A secret setting's value: `value` of `var`, or the content of the
    /// file `file_var` names (a trailing newline dropped, the content
    /// registered as a secret, never shown). Both given is a problem; so is
    /// a file that cannot be read. Returns which variable gave the value.
    pub(crate) fn secret_or_file(
        &mut self,
        (var, value, given): (&'static str, &str, bool),
        (file_var, file): (&'static str, Option<&str>),
    ) -> Option<(&'static str, String)> {
        let Some(raw_path) = file else {
            return Some((var, value.to_owned()));
        };
        const ACCEPTED: &str = "the path of a readable file holding the value";
        let path = self.present(file_var, raw_path, ACCEPTED)?;
        if given {
            self.fail(
                file_var,
                path,
                format!("is set together with {var}: set one of them"),
                ACCEPTED,
            );
            return None;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                crate::redact::register_url_secrets(text);
                Some((file_var, text.to_owned()))
            }
            Err(e) => {
                self.fail(file_var, path, format!("cannot be read ({e})"), ACCEPTED);
                None
            }
        }
    }

    pub(crate) fn choice<T: Copy>(
        &mut self,
        variable: &'static str,
        raw: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let accepted = choices
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
        let value = self.present(variable, raw, &accepted)?;
        let found = choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
            .map(|(_, v)| *v);
        if found.is_none() {
            self.fail(
                variable,
                value,
                "is not one of the accepted values",
                &accepted,
            );
        }
        found
    }
}

/// Whether a variable's value may be or hold a secret: a URL setting, a
/// `*_FILE` (whose content is checked under its name), a password.
fn may_hold_secret(variable: &str) -> bool {
    variable.ends_with("_URL") || variable.ends_with("_FILE") || variable.contains("PASSWORD")
}
