//! `redact`: the password of a URL is hidden where the URL is shown
//! (`redact_url`), and the passwords of the configured URLs are scrubbed
//! from any text (`register_url_secrets`, `scrub`), as
//! docs/logs-and-endpoints.md promises: "as written and percent-decoded;
//! passwords shorter than 4 characters are only hidden inside URLs".
//!
//! The oracle for "the password" is what a client sends: the `url`
//! crate's parse (mysql_async and redis parse with it, and readygate hands
//! tokio-postgres the URL it re-serialised), and "as written" is that
//! password's text in the URL as the operator typed it.
//!
//! The registry is process-wide: each input starts from an empty one
//! (`forget_url_secrets`), so that an input's outcome is its own.

#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use readygate::redact::{MASK, forget_url_secrets, redact_url, register_url_secrets, scrub};
use readygate_fuzz::{client_password, scrubbable, written_password};

/// One URL of the input: its text, and its password as written (where
/// WHATWG's parser finds it).
struct Url {
    raw: String,
    written: Option<String>,
}

/// The input, as text: each line `url:TEXT` configures a URL (the k-th
/// such line is URL k); every other line is text to scrub, in which
/// `{wK}`, `{dK}` and `{uK}` stand for URL k's password as written,
/// percent-decoded, and the URL whole.
fn parse(input: &str) -> (Vec<Url>, String) {
    let mut urls = Vec::new();
    let mut lines = Vec::new();
    for line in input.split('\n') {
        match line.strip_prefix("url:") {
            Some(raw) if urls.len() < 4 => urls.push(Url {
                raw: raw.to_owned(),
                written: written_password(raw).map(str::to_owned),
            }),
            _ => lines.push(line),
        }
    }
    let mut text = lines.join("\n");
    for (k, u) in urls.iter().enumerate() {
        let written = u.written.clone().unwrap_or_default();
        let decoded = percent_decode_str(&written)
            .decode_utf8_lossy()
            .into_owned();
        text = text
            .replace(&format!("{{w{k}}}"), &written)
            .replace(&format!("{{d{k}}}"), &decoded)
            .replace(&format!("{{u{k}}}"), &u.raw);
    }
    (urls, text)
}

/// Where `needle` starts in `hay`, overlapping occurrences too.
fn occurrences(hay: &str, needle: &str) -> usize {
    (0..hay.len())
        .filter(|&i| hay.is_char_boundary(i) && hay[i..].starts_with(needle))
        .count()
}

fuzz_target!(|input: &str| {
    let (urls, text) = parse(input);

    // Shown: no password a client would send survives `redact_url`.
    for u in &urls {
        let shown = redact_url(&u.raw);
        if !u.raw.contains("://") {
            assert_eq!(
                shown,
                format!("<{} characters hidden>", u.raw.chars().count()),
                "{:?} is no URL and may be a bare secret",
                u.raw
            );
            continue;
        }
        let Some((_, decoded)) = client_password(&u.raw) else {
            continue;
        };
        // Which password the client sends, checked in the client's parse
        // of what is shown (a password of any length).
        if !decoded.is_empty() && decoded != MASK {
            let after = client_password(&shown).map(|(_, d)| d);
            assert_ne!(
                after.as_deref(),
                Some(decoded.as_str()),
                "{:?} shown as {shown:?} still carries its password",
                u.raw
            );
        }
        // The password as written, when it is nowhere else in the URL.
        if let Some(w) = written_password(&u.raw)
            && !w.is_empty()
            && !w.contains('*')
            && percent_decode_str(w).decode_utf8_lossy() == decoded
            && occurrences(&u.raw, w) == 1
        {
            assert!(
                !shown.contains(w),
                "{:?} shown as {shown:?} shows its password {w:?}",
                u.raw
            );
        }
    }

    // Scrubbed: the passwords of the registered URLs, as written and
    // percent-decoded, from any text.
    forget_url_secrets();
    for u in &urls {
        register_url_secrets(&u.raw);
    }
    let scrubbed = scrub(&text);
    for u in &urls {
        // The `url` crate drops tabs and newlines, so a client would send
        // the password without them; readygate refuses such a value
        // before any client sees it (a control character).
        if u.raw.contains(['\t', '\n', '\r']) {
            continue;
        }
        let Some((_, decoded)) = client_password(&u.raw) else {
            continue;
        };
        let mut forms = vec![decoded.clone()];
        if let Some(w) = &u.written
            && percent_decode_str(w).decode_utf8_lossy() == decoded
        {
            forms.push(w.clone());
        }
        for form in forms {
            if scrubbable(&form) {
                assert!(
                    !scrubbed.contains(form.as_str()),
                    "{form:?}, the password of {:?}, survives in {scrubbed:?}",
                    u.raw
                );
            }
        }
    }
});
