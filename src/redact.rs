//! The one place where secrets are kept out of output.
//!
//! * [`redact_url`] hides the password of a connection URL before it is
//!   displayed (configuration errors, start-up lines).
//! * [`register_url_secrets`] remembers the password of every configured URL,
//!   plain and percent-decoded, and [`scrub`] removes them from any text. The
//!   logger scrubs every line, and error texts published on `/ready` are
//!   scrubbed too, so a driver that echoes a password cannot leak it.

use std::borrow::Cow;
use std::sync::RwLock;

use percent_encoding::percent_decode_str;

/// What a hidden password is replaced with.
pub const MASK: &str = "***";

/// Shorter passwords are still hidden in URLs but are not scrubbed from free
/// text, where they would mangle ordinary words.
const MIN_SCRUB_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// The `user:password@` part of `scheme://user:password@host/...`, as byte
/// offsets of the password, if there is one. Works on malformed URLs too: the
/// user-info ends at the last `@` before the path, so a password holding an
/// unencoded `@` or `/` is still covered.
fn password_span(raw: &str) -> Option<(usize, usize)> {
    let start = raw.find("://")? + 3;
    let rest = &raw[start..];
    let at = rest.rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some((start + colon + 1, start + at))
}

/// The URL with its password replaced by `***`. A value without `://` is
/// not recognisably a URL and might be a bare secret, so it is hidden whole.
pub fn redact_url(raw: &str) -> String {
    if !raw.contains("://") {
        return format!("<{} characters hidden>", raw.chars().count());
    }
    match password_span(raw) {
        Some((from, to)) if from < to => format!("{}{MASK}{}", &raw[..from], &raw[to..]),
        _ => raw.to_owned(),
    }
}

/// Remember the password of `raw` (as written and percent-decoded) so that
/// [`scrub`] removes it from any text.
pub fn register_url_secrets(raw: &str) {
    let Some((from, to)) = password_span(raw) else {
        return;
    };
    let written = &raw[from..to];
    let decoded = percent_decode_str(written).decode_utf8_lossy().into_owned();
    let Ok(mut secrets) = SECRETS.write() else {
        return;
    };
    for secret in [written.to_owned(), decoded] {
        if secret.len() >= MIN_SCRUB_LEN && !secrets.contains(&secret) {
            secrets.push(secret);
        }
    }
    // Longest first, so a secret that contains another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let Ok(secrets) = SECRETS.read() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_the_password_and_keeps_the_rest() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/app"),
            "postgres://app:***@db:5432/app"
        );
        assert_eq!(
            redact_url("redis://:pw@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        for url in [
            "postgres://app@db/app",
            "redis://localhost:6379/0",
            "sqlite://readygate.db",
            // An empty password stays visibly empty: `***` would hide that
            // the password is missing, the very thing to notice.
            "postgres://app:@db/app",
            "redis://:@cache:6379/0",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn covers_unencoded_at_and_slash_in_passwords() {
        assert_eq!(
            redact_url("postgres://app:p@ss/w@db/app"),
            "postgres://app:***@db/app"
        );
    }

    #[test]
    fn hides_values_that_are_not_urls() {
        assert_eq!(
            redact_url("host=db password=hunter2"),
            "<24 characters hidden>"
        );
    }

    #[test]
    fn scrubs_plain_and_percent_decoded_passwords() {
        register_url_secrets("postgres://app:p%40ss%2Fword42@db/app");
        let text = "auth failed: p%40ss%2Fword42 / p@ss/word42";
        assert_eq!(scrub(text), "auth failed: *** / ***");
    }

    #[test]
    fn short_passwords_are_not_scrubbed_from_free_text() {
        register_url_secrets("redis://:ab@localhost/0");
        assert_eq!(scrub("a cab"), "a cab");
    }
}
