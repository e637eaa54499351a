//! What the fuzz targets share: a clean process (no setting in the
//! environment), the settings check with its properties, and the oracles
//! (which password a client would send, how an escaped log line reads back).
//! docs/testing.md#fuzzing says how to run them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

use percent_encoding::percent_decode_str;
use readygate::config::{Cli, ConfigError, Settings, documented_settings, optional_settings};
use readygate::redact::{forget_url_secrets, scrub};

/// Passwords that hold this are checked for leaks in error texts: it is in
/// no message of readygate's, so an error text that holds such a password
/// got it from the input.
pub const MARKER: &str = "s3cr3t";

/// Every variable readygate reads (with a default, then without).
pub fn variables() -> &'static [String] {
    static VARS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    VARS.get_or_init(|| {
        let mut vars: Vec<String> = documented_settings().into_iter().map(|(v, _)| v).collect();
        vars.extend(optional_settings());
        vars
    })
}

/// Once per process: no setting may come from the environment, since
/// `Cli::parse_args` reads it (clap's `env`). libFuzzer runs one input at
/// a time on one thread, and this runs before the first.
pub fn clean_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for var in variables() {
            // SAFETY: at the start of the fuzz target, before any thread of
            // ours reads the environment; libFuzzer runs inputs on one thread.
            unsafe { std::env::remove_var(var) };
        }
    });
}

/// `DB_POOL_SIZE` → `--db-pool-size` (clap's derive names them so).
pub fn flag(var: &str) -> String {
    format!("--{}", var.to_ascii_lowercase().replace('_', "-"))
}

/// The password a client would send for `url` (the `url` crate's parse,
/// which mysql_async and redis use, and which readygate hands
/// tokio-postgres): as the URL serialises it, and percent-decoded.
pub fn client_password(url: &str) -> Option<(String, String)> {
    let parsed = url::Url::parse(url).ok()?;
    let written = parsed.password()?.to_owned();
    let decoded = percent_decode_str(&written)
        .decode_utf8_lossy()
        .into_owned();
    Some((written, decoded))
}

/// The forms of `url`'s password that must not be shown or survive
/// scrubbing: as a client sends it (percent-decoded), and as written in
/// `url`, when [`written_password`] finds the same password there.
pub fn password_forms(url: &str) -> Vec<String> {
    let Some((_, decoded)) = client_password(url) else {
        return Vec::new();
    };
    let mut forms = vec![decoded.clone()];
    if let Some(w) = written_password(url)
        && w != decoded
        && percent_decode_str(w).decode_utf8_lossy() == decoded
    {
        forms.push(w.to_owned());
    }
    forms
}

/// The password's text in `raw` as WHATWG's URL parser (the `url` crate)
/// delimits it: the authority ends at the first `/`, `?` or `#` (and `\`
/// for the special schemes), the user-info at its last `@`, the user name
/// at the user-info's first `:`. `None` for text the parser would change
/// first (tabs and newlines it drops).
pub fn written_password(raw: &str) -> Option<&str> {
    if raw.contains(['\t', '\n', '\r']) {
        return None;
    }
    // The parser drops leading and trailing C0 controls and spaces.
    let (scheme, rest) = raw.trim_matches(|c| c <= ' ').split_once("://")?;
    let special = ["http", "https", "ws", "wss", "ftp", "file"]
        .contains(&scheme.to_ascii_lowercase().as_str());
    let end = rest
        .find(|c| matches!(c, '/' | '?' | '#') || special && c == '\\')
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(userinfo.split_once(':')?.1)
}

/// Whether `redact::scrub` promises to remove `secret` from free text: 4
/// characters or more (docs/logs-and-endpoints.md: shorter ones are hidden
/// in URLs only). A secret holding `*` may be "found" again in the `***`
/// that replaced it plus the text beside it, so it is left out.
pub fn scrubbable(secret: &str) -> bool {
    secret.len() >= 4 && !secret.contains('*')
}

/// Whether reading `path` could block or take long (a FIFO, `/dev/zero`,
/// `/proc/kmsg`, a large file): such inputs are skipped. readygate reads
/// the files an operator names (TLS files, `*_FILE`), which is right; the
/// fuzzer must not make it read a device.
pub fn risky_path(path: &str) -> bool {
    if path.is_empty() || path.contains('\0') {
        return false;
    }
    let p = Path::new(path);
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    let special = std::fs::canonicalize(p).map_or(true, |c| {
        c.starts_with("/proc") || c.starts_with("/sys") || c.starts_with("/dev")
    });
    special || !meta.is_file() && !meta.is_dir() || meta.len() > 1 << 20
}

/// Every string of `value` that readygate may take for a path: the value,
/// trimmed, percent-decoded, and each query parameter of a URL in it.
pub fn any_risky_path(value: &str) -> bool {
    let mut candidates = vec![
        value.to_owned(),
        value.trim().to_owned(),
        percent_decode_str(value.trim())
            .decode_utf8_lossy()
            .into_owned(),
    ];
    for part in value.split([',', '=']) {
        candidates.push(part.trim().to_owned());
    }
    for piece in value.split(',') {
        let url = piece.split_once('=').map_or(piece, |(_, u)| u).trim();
        if let Ok(parsed) = url::Url::parse(url) {
            candidates.extend(parsed.query_pairs().map(|(_, v)| v.into_owned()));
        }
        if let Ok(parsed) = url::Url::parse(value.trim()) {
            candidates.extend(parsed.query_pairs().map(|(_, v)| v.into_owned()));
        }
    }
    candidates.iter().any(|c| risky_path(c))
}

/// A URL some setting gives a client: where it came from and its text.
#[derive(Debug)]
struct ClientUrl {
    variable: &'static str,
    url: String,
}

/// The URLs clients would get from these settings, split as readygate
/// splits them (`WAIT_FOR`: `,` then the first `=`), with `files` holding
/// the content of the `*_FILE` settings that were read.
fn client_urls(
    values: &BTreeMap<String, String>,
    files: &BTreeMap<String, String>,
) -> Vec<ClientUrl> {
    let mut urls = Vec::new();
    for (var, file_var) in [
        ("DATABASE_URL", "DATABASE_URL_FILE"),
        ("REDIS_URL", "REDIS_URL_FILE"),
    ] {
        let variable = if var == "DATABASE_URL" {
            "DATABASE_URL"
        } else {
            "REDIS_URL"
        };
        if let Some(v) = values.get(var) {
            urls.push(ClientUrl {
                variable,
                url: v.trim().to_owned(),
            });
        }
        // `REDIS_URL_FILE` is read only with a Redis cache.
        let read = var == "DATABASE_URL"
            || values.get("CACHE_TYPE").is_some_and(|c| {
                ["redis", "redis-sentinel", "redis-cluster"]
                    .iter()
                    .any(|kind| c.trim().eq_ignore_ascii_case(kind))
            });
        if let Some(content) = files.get(file_var).filter(|_| read) {
            urls.push(ClientUrl {
                variable,
                url: content.trim().to_owned(),
            });
        }
    }
    if let Some(list) = values.get("WAIT_FOR") {
        for entry in list.trim().split(',').map(str::trim) {
            if let Some((_, url)) = entry.split_once('=') {
                urls.push(ClientUrl {
                    variable: "WAIT_FOR",
                    url: url.trim().to_owned(),
                });
            }
        }
    }
    urls
}

/// Whether `var` is a `WAIT_FOR` entry's own setting
/// (`WAIT_FOR_<NAME>_<SETTING>`), which readygate reads from the
/// environment only, not from the command line.
pub fn per_entry(var: &str) -> bool {
    var.starts_with("WAIT_FOR_") && !variables().iter().any(|v| v == var)
}

/// The secrets that are no URL (the sentinels' password, given or in its
/// file) holding [`MARKER`].
fn plain_secrets(
    values: &BTreeMap<String, String>,
    files: &BTreeMap<String, String>,
) -> Vec<String> {
    [
        values.get("REDIS_SENTINEL_PASSWORD"),
        files.get("REDIS_SENTINEL_PASSWORD_FILE"),
    ]
    .into_iter()
    .flatten()
    .map(|s| s.trim().to_owned())
    .filter(|s| s.contains(MARKER))
    .collect()
}

/// Validate `values` (variable → text, given as `--flag=value`, a
/// `WAIT_FOR_<NAME>_<SETTING>` as the environment would give it; `files`:
/// the content of the `*_FILE` settings among them, already written) and
/// check what holds for every input:
///
/// * no panic (the harness catches one);
/// * clap takes every value (each setting is free text to it);
/// * a refusal lists at least one problem, each naming a variable that
///   readygate documents, or a `WAIT_FOR_<NAME>_<SETTING>` of the input;
/// * a password (holding [`MARKER`], written once in the input, and
///   nowhere in it but as a password) is never
///   in the error text, nor in the accepted settings' `Debug` (SQLite's
///   path is no URL with a password, and is shown whole);
/// * every password a client would send is scrubbed from free text after
///   validation (4 characters or more: docs/logs-and-endpoints.md);
/// * an accepted retry policy's waits stay within their jitter.
pub fn check_settings(
    values: &BTreeMap<String, String>,
    files: &BTreeMap<String, String>,
    draws: &[u16],
) {
    clean_env();
    forget_url_secrets();
    let mut argv = vec!["readygate".to_owned()];
    let mut entries = Vec::new();
    for (var, value) in values {
        if per_entry(var) {
            entries.push((var.clone(), value.clone()));
        } else {
            argv.push(format!("{}={value}", flag(var)));
        }
    }
    let mut cli = match Cli::parse_args(&argv) {
        Ok(cli) => cli,
        Err(e) => panic!("clap refused {argv:?}: {e}"),
    };
    // As `Cli::parse_args` reads them from the environment (sorted).
    cli.settings.wait_for_entries = entries;
    let result = cli.settings.validate();
    let inputs: Vec<&String> = values.values().chain(files.values()).collect();
    let urls = client_urls(values, files);
    // A form of a password is checked when the input holds it once, and
    // no more once that password as written (`own`) is taken out of it: a
    // form still found was written elsewhere too (found by the fuzzer: a
    // path holding the decoded text of its URL's percent-encoded password),
    // and an error showing that shows the path, not the password.
    let attributable = |form: &str, own: Option<&str>| {
        let count: usize = inputs.iter().map(|v| v.matches(form).count()).sum();
        count == 1
            && !inputs.iter().any(|v| match own {
                Some(w) if !w.is_empty() => v.replacen(w, "\u{0}", 1).contains(form),
                _ => v.contains(form),
            })
    };
    let sentinels = ClientUrl {
        variable: "REDIS_SENTINEL_PASSWORD",
        url: String::new(),
    };
    let marked: Vec<(&ClientUrl, String)> = urls
        .iter()
        .flat_map(|u| {
            let own = written_password(&u.url);
            password_forms(&u.url)
                .into_iter()
                .filter(move |pw| attributable(pw, own))
                .map(move |pw| (u, pw))
        })
        .chain(
            plain_secrets(values, files)
                .into_iter()
                .filter(|pw| attributable(pw, Some(pw)))
                .map(|pw| (&sentinels, pw)),
        )
        .filter(|(_, pw)| pw.contains(MARKER))
        .collect();
    match &result {
        Ok(settings) => {
            check_retry(settings, draws);
            let shown = format!("{settings:?}");
            let sqlite = settings.database.url.backend() == "sqlite";
            if let readygate::config::CacheSettings::RedisSentinel(s) = &settings.cache {
                for pw in s.password.iter().filter(|pw| scrubbable(pw)) {
                    assert!(
                        !scrub(pw).contains(pw.as_str()),
                        "the sentinels' password {pw:?} is not scrubbed"
                    );
                }
            }
            for (u, pw) in &marked {
                if sqlite && u.variable == "DATABASE_URL" {
                    continue;
                }
                assert!(
                    !shown.contains(pw.as_str()),
                    "{}'s password {pw:?} is in the settings' Debug: {shown}",
                    u.variable
                );
            }
        }
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "refused without a problem");
            for p in problems {
                assert!(
                    variables().iter().any(|v| v == p.variable)
                        || per_entry(p.variable) && values.contains_key(p.variable),
                    "problem names {:?}, which is no documented setting: {p}",
                    p.variable
                );
            }
            let text = result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default();
            for (u, pw) in &marked {
                assert!(
                    !text.contains(pw.as_str()),
                    "{}'s password {pw:?} is in the error: {text}",
                    u.variable
                );
            }
        }
        Err(other) => panic!("validate failed with {other}, not a list of problems"),
    }
    for u in &urls {
        // The `url` crate drops tabs and newlines (a client would send the
        // password without them); readygate refuses such a value first.
        if u.url.contains(['\t', '\n', '\r']) {
            continue;
        }
        for pw in password_forms(&u.url) {
            if scrubbable(&pw) {
                let scrubbed = scrub(&pw);
                assert!(
                    !scrubbed.contains(pw.as_str()),
                    "{}'s password {pw:?} (of {:?}) is not scrubbed: {scrubbed}",
                    u.variable,
                    u.url
                );
            }
        }
    }
}

/// An accepted policy's waits: each within `base x (1 ± jitter)` and at
/// most `max_wait`, the worst case computed without overflow.
fn check_retry(settings: &Settings, draws: &[u16]) {
    let mut policies = vec![settings.database.retry, settings.wait_retry];
    if let Some(r) = settings.cache.redis() {
        policies.push(r.retry);
    }
    policies.extend(settings.wait_for.iter().map(|w| w.policy));
    for policy in policies {
        let _ = policy.worst_case_budget();
        for (i, draw) in draws.iter().enumerate() {
            let n = u32::try_from(i).unwrap_or(u32::MAX).saturating_add(1);
            let draw = f64::from(*draw) / 65536.0;
            let wait = policy.wait(n, draw);
            assert!(
                wait <= policy.max_wait(n),
                "wait {n} is {wait:?}, above {:?}",
                policy.max_wait(n)
            );
            let base = policy.base_wait(n).as_millis();
            let jitter = u128::from(policy.jitter.0.min(1000));
            let spread = (base * jitter).div_ceil(1000);
            assert!(
                wait.as_millis() + spread >= base,
                "wait {n} is {wait:?}, below {base} ms less its jitter"
            );
        }
    }
}

/// The characters after which a reader starts a new line (Unicode's
/// mandatory breaks, UAX #14: LF, VT, FF, CR, NEL, LS, PS).
pub fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// The inverse of `telemetry::escape_controls`, written from its contract
/// (Rust's `char::escape_default` forms: `\\`, `\n`, `\r`, `\t`,
/// `\u{HEX}`), not from its code; `None` for text it cannot have written.
pub fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let mut hex = String::new();
                loop {
                    match chars.next()? {
                        '}' => break,
                        h if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                        _ => return None,
                    }
                }
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}
