//! `telemetry::escape_controls`, which every `LOG_FORMAT=text` line passes
//! through (after `redact::scrub`): whatever a server's error text holds,
//! the line stays one line, holds no control character, and reads back as
//! the text it escaped (`readygate_fuzz::unescape`, written from the
//! escaping's contract); text with nothing to escape is left as it is.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use readygate::telemetry::escape_controls;
use readygate_fuzz::{is_line_break, unescape};

fuzz_target!(|text: &str| {
    let escaped = escape_controls(text);
    assert!(
        !escaped.chars().any(|c| c.is_control() || is_line_break(c)),
        "{text:?} escaped to {escaped:?}, which still breaks or controls the line"
    );
    assert_eq!(
        unescape(&escaped).as_deref(),
        Some(text),
        "{text:?} escaped to {escaped:?}, which does not read back"
    );
    if !text
        .chars()
        .any(|c| c.is_control() || is_line_break(c) || c == '\\')
    {
        assert!(
            matches!(escaped, Cow::Borrowed(_)),
            "{text:?} had nothing to escape"
        );
    }
});
