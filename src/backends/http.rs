//! `WAIT_FOR=name=http://host:port/path` (or `https://`): up when a `GET`
//! answers as expected, at start-up and at every runtime check. Expected
//! by default is a 2xx; `WAIT_FOR_<NAME>_EXPECT_STATUS` names other
//! statuses (`200,204`, `2xx,301`) and `WAIT_FOR_<NAME>_EXPECT_BODY` a
//! regex the body's first 64 KiB must match. Any other answer is transient
//! (a 5xx, a 404 while a service deploys its routes, a 401 from a proxy
//! not configured yet: the wait is bounded anyway); so is a refused or
//! timed-out connection.
//!
//! Redirects are not followed: a 3xx is the entry's answer, with where it
//! points in the cause. A health URL that redirects is most often a wrong
//! one (`http://` to `https://`, a missing slash, a login page), and a
//! login page answering 200 must not make a service up. An entry that
//! means it says `EXPECT_STATUS=3xx` (or `301`). The client is actix's own
//! (awc), over rustls for `https://` with the platform's roots.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{FutureExt, LocalBoxFuture};

use crate::connector::Exchange;
use crate::error::{BackendError, ConnectError, ErrorClass};

/// How much of a body an expectation reads.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The statuses an entry accepts: codes (`204`) and classes (`2xx`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectStatus {
    codes: Vec<u16>,
    /// Hundreds: `2` for `2xx`.
    classes: Vec<u16>,
}

impl Default for ExpectStatus {
    /// `2xx`.
    fn default() -> Self {
        ExpectStatus {
            codes: Vec::new(),
            classes: vec![2],
        }
    }
}

impl ExpectStatus {
    /// What `WAIT_FOR_<NAME>_EXPECT_STATUS` accepts.
    pub const ACCEPTED: &str =
        "status codes (100-599) or classes (1xx-5xx), comma-separated: 200,204 or 2xx";

    /// `200,204`, `2xx`, `2xx,301`; `Err` names the first bad item.
    pub fn parse(text: &str) -> Result<ExpectStatus, String> {
        let mut expect = ExpectStatus {
            codes: Vec::new(),
            classes: Vec::new(),
        };
        for item in text.split(',').map(str::trim) {
            let lower = item.to_ascii_lowercase();
            if let Some(class) = lower.strip_suffix("xx") {
                match class.parse::<u16>() {
                    Ok(c) if (1..=5).contains(&c) && class.len() == 1 => expect.classes.push(c),
                    _ => return Err(format!("has {item:?}, which is not a class 1xx to 5xx")),
                }
            } else {
                match item.parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => expect.codes.push(code),
                    _ => {
                        return Err(format!(
                            "has {item:?}, which is not a status from 100 to 599"
                        ));
                    }
                }
            }
        }
        Ok(expect)
    }

    pub fn accepts(&self, status: u16) -> bool {
        self.codes.contains(&status) || self.classes.contains(&(status / 100))
    }
}

impl std::fmt::Display for ExpectStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: Vec<String> = self
            .classes
            .iter()
            .map(|c| format!("{c}xx"))
            .chain(self.codes.iter().map(u16::to_string))
            .collect();
        f.write_str(&items.join(","))
    }
}

/// A regex the body's first [`BODY_LIMIT`] bytes (invalid UTF-8 replaced)
/// must match somewhere (anchor it with `^`/`$` to match the whole).
#[derive(Clone, Debug)]
pub struct ExpectBody(regex::Regex);

impl ExpectBody {
    /// What `WAIT_FOR_<NAME>_EXPECT_BODY` accepts.
    pub const ACCEPTED: &str = "a regular expression (Rust's regex syntax) the body must match";

    /// `Err` says why the regex is refused.
    pub fn parse(text: &str) -> Result<ExpectBody, String> {
        regex::RegexBuilder::new(text)
            .size_limit(1 << 20)
            .build()
            .map(ExpectBody)
            .map_err(|e| {
                format!(
                    "is not a regular expression ({})",
                    crate::error::one_line(&e.to_string())
                )
            })
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for ExpectBody {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// What an entry's answer must be.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    pub status: ExpectStatus,
    pub body: Option<ExpectBody>,
}

/// Why a `GET` did not answer as expected. Every case is transient.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP request failed: {0}")]
    Request(String),
    /// A status the entry does not accept; a redirect's `Location` shown.
    #[error("HTTP {status}{}, expected {expected}", location.as_deref().map(|l| format!(" (redirect to {l}, not followed)")).unwrap_or_default())]
    Status {
        status: u16,
        expected: String,
        location: Option<String>,
    },
    #[error("HTTP {status}, body does not match \"{pattern}\"")]
    Body { status: u16, pattern: String },
    #[error("HTTP {status}, body cannot be read: {reason}")]
    BodyRead { status: u16, reason: String },
}

impl BackendError for HttpError {
    /// The give-up tally's name: `HTTP 404`, `HTTP 200, body does not match`.
    fn summary(&self) -> String {
        match self {
            HttpError::Status { status, .. } => format!("HTTP {status}"),
            HttpError::Body { status, .. } => format!("HTTP {status}, body does not match"),
            HttpError::BodyRead { status, .. } => format!("HTTP {status}, body cannot be read"),
            HttpError::Request(_) => crate::error::summary(self, &[]),
        }
    }

    fn class(&self) -> ErrorClass {
        crate::error::class(self, &[])
    }
}

pub struct HttpConnector {
    url: String,
    expect: Expect,
}

impl HttpConnector {
    pub fn new(url: String, expect: Expect) -> Self {
        HttpConnector { url, expect }
    }

    fn get(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let (url, expect) = (self.url.clone(), self.expect.clone());
        async move {
            // The actor bounds the whole attempt (WAIT_FOR_CONNECT_TIMEOUT_MS);
            // awc's own limits (5 s for the request and for the connect)
            // must not cut it first.
            let unbounded = Duration::from_secs(86_400);
            let client = awc::Client::builder()
                .connector(awc::Connector::new().timeout(unbounded))
                .timeout(unbounded)
                .disable_redirects()
                .finish();
            let mut response = client
                .get(url.as_str())
                .send()
                .await
                .map_err(|e| HttpError::Request(e.to_string()))?;
            let status = response.status().as_u16();
            if !expect.status.accepts(status) {
                let location = response
                    .status()
                    .is_redirection()
                    .then(|| response.headers().get("location"))
                    .flatten()
                    .map(|l| crate::redact::redact_url(&String::from_utf8_lossy(l.as_bytes())));
                return Err(HttpError::Status {
                    status,
                    expected: expect.status.to_string(),
                    location,
                }
                .into());
            }
            let Some(pattern) = expect.body else {
                return Ok(());
            };
            let mut body = Vec::new();
            while body.len() < BODY_LIMIT {
                match response.next().await {
                    Some(Ok(chunk)) => body.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        return Err(HttpError::BodyRead {
                            status,
                            reason: e.to_string(),
                        }
                        .into());
                    }
                    None => break,
                }
            }
            body.truncate(BODY_LIMIT);
            if pattern.0.is_match(&String::from_utf8_lossy(&body)) {
                Ok(())
            } else {
                Err(HttpError::Body {
                    status,
                    pattern: pattern.as_str().to_owned(),
                }
                .into())
            }
        }
        .boxed_local()
    }
}

impl Exchange for HttpConnector {
    fn backend(&self) -> &'static str {
        "http"
    }

    fn exchange(&self) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        self.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_codes_and_classes() {
        let default = ExpectStatus::default();
        assert!(default.accepts(200) && default.accepts(299));
        for not in [199, 301, 404, 503] {
            assert!(!default.accepts(not), "{not}");
        }
        let list = ExpectStatus::parse("200, 204").unwrap();
        assert!(list.accepts(204) && !list.accepts(201));
        let mixed = ExpectStatus::parse("3XX,200").unwrap();
        assert!(mixed.accepts(301) && mixed.accepts(200) && !mixed.accepts(204));
        assert_eq!(mixed.to_string(), "3xx,200");
        for bad in ["", "2x", "6xx", "0xx", "22xx", "99", "600", "ok"] {
            assert!(ExpectStatus::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_tally_names_the_status_as_the_docs_do() {
        let e = HttpError::Status {
            status: 404,
            expected: "2xx".into(),
            location: None,
        };
        assert_eq!(e.summary(), "HTTP 404");
        assert_eq!(e.to_string(), "HTTP 404, expected 2xx");
        let moved = HttpError::Status {
            status: 301,
            expected: "2xx".into(),
            location: Some("https://h/".into()),
        };
        assert_eq!(
            moved.to_string(),
            "HTTP 301 (redirect to https://h/, not followed), expected 2xx"
        );
        let body = HttpError::Body {
            status: 200,
            pattern: "status: ok".into(),
        };
        assert_eq!(
            body.to_string(),
            "HTTP 200, body does not match \"status: ok\""
        );
    }
}
