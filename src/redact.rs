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

/// The schemes for which WHATWG's URL parser (the `url` crate, which the
/// clients use) needs no `//` and takes `\` for `/`.
const SPECIAL_SCHEMES: [&str; 6] = ["http", "https", "ws", "wss", "ftp", "file"];

fn is_special(scheme: &str) -> bool {
    SPECIAL_SCHEMES
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
}

/// Where the authority (`user:password@host:port`) of `raw` may begin, and
/// whether its scheme is special: after the scheme that starts `raw` as
/// WHATWG's parser reads it (a special scheme needs no slashes:
/// `https:user:pw@host` is a URL with a password), and after the first
/// `://` (a list such as `WAIT_FOR`'s `name=http://...`).
fn authority_starts(raw: &str) -> Vec<(usize, bool)> {
    let mut starts = Vec::new();
    let lead = raw.len() - raw.trim_start_matches(|c| c <= ' ').len();
    if let Some(colon) = raw[lead..].find(':') {
        let scheme = &raw[lead..lead + colon];
        let after = &raw[lead + colon + 1..];
        let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        let slashes = if is_special(scheme) {
            Some(after.len() - after.trim_start_matches(['/', '\\']).len())
        } else {
            after.starts_with("//").then_some(2)
        };
        if let (true, Some(slashes)) = (valid, slashes) {
            starts.push((lead + colon + 1 + slashes, is_special(scheme)));
        }
    }
    if let Some(i) = raw.find("://") {
        let scheme = raw[..i]
            .rsplit(|c: char| !c.is_ascii_alphanumeric() && !matches!(c, '+' | '-' | '.'))
            .next()
            .unwrap_or_default();
        if !starts.iter().any(|(start, _)| *start == i + 3) {
            starts.push((i + 3, is_special(scheme)));
        }
    }
    starts
}

/// The passwords of `raw`, as byte offsets: for each place its authority
/// may begin ([`authority_starts`]), the password as the clients delimit it
/// (the authority ends at the first `/`, `?` or `#`, or `\` for a special
/// scheme; the user-info at the authority's last `@`), and the password of
/// a malformed URL, whose user-info ends at the last `@` of all, so that a
/// password holding an unencoded `@` or `/` is still covered.
fn password_spans(raw: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for (start, special) in authority_starts(raw) {
        let rest = &raw[start..];
        let end = rest
            .find(|c| matches!(c, '/' | '?' | '#') || special && c == '\\')
            .unwrap_or(rest.len());
        for at in [rest[..end].rfind('@'), rest.rfind('@')]
            .into_iter()
            .flatten()
        {
            if let Some(colon) = rest[..at].find(':') {
                spans.push((start + colon + 1, start + at));
            }
        }
    }
    spans
}

/// The URL with its passwords replaced by `***`. A value without `://` is
/// not recognisably a URL and might be a bare secret, so it is hidden whole.
pub fn redact_url(raw: &str) -> String {
    if !raw.contains("://") {
        return format!("<{} characters hidden>", raw.chars().count());
    }
    // Spans that overlap are hidden as one.
    let mut spans = password_spans(raw);
    spans.retain(|(from, to)| from < to);
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (from, to) in spans {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    let mut shown = raw.to_owned();
    for (from, to) in merged.into_iter().rev() {
        shown.replace_range(from..to, MASK);
    }
    // The safety net: what a client would still read as a password in
    // what is shown (found by the fuzz target `redact`: carriage returns,
    // which the `url` crate drops before parsing, moved the password away
    // from where the spans looked) hides the whole value.
    let still = url::Url::parse(&shown)
        .ok()
        .and_then(|u| u.password().map(str::to_owned));
    if still.is_some_and(|pw| !pw.is_empty() && pw != MASK) {
        return format!("<{} characters hidden>", raw.chars().count());
    }
    shown
}

/// Remember the passwords of `raw` ([`password_spans`]), as written and
/// percent-decoded, so that [`scrub`] removes them from any text.
pub fn register_url_secrets(raw: &str) {
    let spans = password_spans(raw);
    let Ok(mut secrets) = SECRETS.write() else {
        return;
    };
    for (from, to) in spans {
        let written = &raw[from..to];
        let decoded = percent_decode_str(written).decode_utf8_lossy().into_owned();
        for secret in [written.to_owned(), decoded] {
            if secret.len() >= MIN_SCRUB_LEN && !secrets.contains(&secret) {
                secrets.push(secret);
            }
        }
    }
    // Longest first, so a secret that contains another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Remember `secret` itself (a password given on its own, such as
/// `REDIS_SENTINEL_PASSWORD`), so that [`scrub`] removes it from any text.
pub fn register_secret(secret: &str) {
    let Ok(mut secrets) = SECRETS.write() else {
        return;
    };
    if secret.len() >= MIN_SCRUB_LEN && !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_owned());
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Forget every secret [`register_url_secrets`] remembered: for the fuzz
/// targets, which validate settings millions of times in one process and
/// need each input to start from an empty list. Not for applications: a
/// forgotten password is no longer scrubbed.
#[doc(hidden)]
pub fn forget_url_secrets() {
    if let Ok(mut secrets) = SECRETS.write() {
        secrets.clear();
    }
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
    fn a_url_whose_password_a_client_would_still_read_is_hidden_whole() {
        // Found by the fuzz target `redact`: the `url` crate drops CRs.
        let raw = "\u{16}\0\0\0\0\0\0\0res:\r\r\r\r\r\r\r\r\r\r\r\r\r//app:d0}@\u{3}/ssp\0\0\0\0\0gres://app\0@://po:pwst@gr";
        let shown = super::redact_url(raw);
        let client = url::Url::parse(&shown)
            .ok()
            .and_then(|u| u.password().map(str::to_owned));
        assert!(client.is_none_or(|pw| pw == "***"), "{shown:?}");
        assert_eq!(
            super::redact_url("postgres://u:pw@h/db"),
            "postgres://u:***@h/db"
        );
    }

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

    /// Found by the fuzz target `redact`: the user-info ended at the last
    /// `@` of all, so with an `@` after the host (in a query value, a
    /// path) the password a client sends was not the one registered.
    #[test]
    fn scrubs_the_password_a_client_sends_when_an_at_follows_the_host() {
        register_url_secrets("postgres://app:qu3ry-pw@db/app?application_name=me@host");
        assert_eq!(scrub("auth failed: qu3ry-pw"), "auth failed: ***");
        register_url_secrets("http://svc:b4ckslash@auth\\health@x");
        assert_eq!(scrub("b4ckslash"), "***");
    }

    /// Found by the fuzz target `redact`: to WHATWG's parser, and so to
    /// the clients, `https:user:pw@host` is a URL with a password; a `://`
    /// later in the text was taken for the start of the URL.
    #[test]
    fn special_schemes_need_no_slashes() {
        assert_eq!(
            redact_url("https:svc:w4itpass@auth/cb?next=http://x"),
            "https:svc:***@auth/cb?next=http://x"
        );
        register_url_secrets("https:svc:n0sl4shes@auth/cb?next=http://x");
        assert_eq!(scrub("n0sl4shes"), "***");
    }

    #[test]
    fn short_passwords_are_not_scrubbed_from_free_text() {
        register_url_secrets("redis://:ab@localhost/0");
        assert_eq!(scrub("a cab"), "a cab");
    }
}
