//! The shared rules of URL and address settings: a URL's scheme and how it
//! may be shown, a URL that must name a host, `HOST`. Each backend's own
//! URL rules live in its folder (`src/backends/<name>/options.rs`), the
//! choice of backend by scheme in [`crate::backends`]. Passwords never
//! reach a [`super::Problem`]: a URL is shown through [`redact_url`].

use std::net::IpAddr;

use super::check::Checker;
use crate::redact::redact_url;

impl Checker {
    /// A URL's value (trimmed), how it may be shown, and its lower-case
    /// scheme and the rest; a problem when it is empty or has no `://`.
    pub(crate) fn url<'a>(
        &mut self,
        variable: &'static str,
        raw: &'a str,
        accepted: &str,
    ) -> Option<(&'a str, String, String, &'a str)> {
        let value = self.present(variable, raw, accepted)?;
        let shown = redact_url(value);
        let Some((scheme, rest)) = value.split_once("://") else {
            self.fail(variable, &shown, "is not a URL", accepted);
            return None;
        };
        Some((value, shown, scheme.to_ascii_lowercase(), rest))
    }

    /// The parsed URL, which must name a host.
    pub(crate) fn url_with_host(
        &mut self,
        variable: &'static str,
        value: &str,
        shown: &str,
        accepted: &str,
    ) -> Option<url::Url> {
        match url::Url::parse(value) {
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Some(u),
            Ok(_) => {
                self.fail(variable, shown, "names no host", accepted);
                None
            }
            Err(e) => {
                self.fail(
                    variable,
                    shown,
                    format!("is not a valid URL ({e})"),
                    accepted,
                );
                None
            }
        }
    }

    pub(crate) fn unsupported_scheme(
        &mut self,
        variable: &'static str,
        shown: &str,
        scheme: &str,
        accepted: &str,
    ) {
        self.fail(
            variable,
            shown,
            format!("has an unsupported scheme {scheme:?}"),
            accepted,
        );
    }

    pub(super) fn host(&mut self, raw: &str) -> Option<String> {
        const VAR: &str = "HOST";
        const ACCEPTED: &str = "an IP address (127.0.0.1, 0.0.0.0, ::) or a host name";
        let value = self.present(VAR, raw, ACCEPTED)?;
        if value.parse::<IpAddr>().is_ok() {
            return Some(value.to_owned());
        }
        let name_ok = value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if name_ok && value.len() <= 253 {
            Some(value.to_owned())
        } else {
            self.fail(
                VAR,
                value,
                "is neither an IP address nor a host name",
                ACCEPTED,
            );
            None
        }
    }
}
