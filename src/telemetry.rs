//! Logging: one line per message on stderr, `text` for people or `json` for
//! collectors. The message text is the same in both; JSON adds the
//! structured fields (dependency, attempt, max_attempts, delay_ms). Every
//! line passes through [`crate::redact::scrub`].

use std::borrow::Cow;
use std::io::Write;

use log::LevelFilter;
use log::kv::{Key, Value, VisitSource};
use serde_json::{Map, Value as Json};

use crate::config::{LogFormat, LogSettings};
use crate::redact::scrub;

/// Install the global logger. Calling it twice keeps the first logger.
pub fn init(settings: LogSettings) {
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(settings.level)
        .target(env_logger::Target::Stderr);
    if settings.level <= LevelFilter::Info {
        // actix-server announces its workers at info; that is noise here.
        builder.filter_module("actix_server", LevelFilter::Warn);
    }
    if settings.level <= LevelFilter::Info {
        // The redis crate's cluster client logs its own recovery loop: each
        // failed reconnection to a node (WARN and ERROR, several a second
        // while a node is down or its certificate is not trusted), without
        // the dependency or what happens next. The outage is reported by
        // the dependency actor (`Redis connection lost: <cause>`, then each
        // reconnection attempt); LOG_LEVEL=debug shows the client's lines.
        builder.filter_module("redis::cluster_handling", LevelFilter::Off);
    }
    if settings.level <= LevelFilter::Debug {
        // deadpool warns once per pooled connection it cannot reuse after an
        // outage ("Connection could not be recycled: Connection closed"),
        // without the dependency or the cause. The outage itself is reported
        // by the dependency actor (`DB connection lost: <cause>`), and each
        // pooled connection's end by `DB pooled connection ended` (debug).
        builder.filter_module("deadpool", LevelFilter::Error);
    }
    match settings.format {
        LogFormat::Text => builder.format(|buf, record| {
            let ts = buf.timestamp_millis();
            let message = record.args().to_string();
            writeln!(
                buf,
                "{ts} {:<5} {}",
                record.level(),
                escape_controls(&scrub(&message))
            )
        }),
        LogFormat::Json => builder.format(|buf, record| {
            let mut fields = Map::new();
            fields.insert(
                "timestamp".into(),
                Json::String(buf.timestamp_millis().to_string()),
            );
            fields.insert("level".into(), Json::String(record.level().to_string()));
            fields.insert("target".into(), Json::String(record.target().to_owned()));
            fields.insert(
                "message".into(),
                Json::String(scrub(&record.args().to_string()).into_owned()),
            );
            let _ = record.key_values().visit(&mut JsonFields(&mut fields));
            writeln!(buf, "{}", Json::Object(fields))
        }),
    };
    let _ = builder.try_init();
}

/// `text` on one line: control characters (a newline in a server's error
/// message, say) and Unicode's line and paragraph separators are written
/// escaped (`\n`, `\u{1b}`, `\u{2028}`), so that nothing from outside can
/// start a line of its own; a backslash is written `\\`, so that the line
/// reads back as the text (an escaped newline and a server's own `\n`
/// differ).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// What [`escape_controls`] escapes: control characters, U+2028 and
/// U+2029 (line breaks to many readers, though not controls), `\`.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\\')
}

struct JsonFields<'a>(&'a mut Map<String, Json>);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            Json::from(n)
        } else if let Some(n) = value.to_i64() {
            Json::from(n)
        } else if let Some(b) = value.to_bool() {
            Json::from(b)
        } else {
            Json::String(scrub(&value.to_string()).into_owned())
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("plain: text"), "plain: text");
        assert_eq!(
            escape_controls("db error\n2026-01-01T00:00:00Z ERROR forged\r\t\u{1b}[31m"),
            "db error\\n2026-01-01T00:00:00Z ERROR forged\\r\\t\\u{1b}[31m"
        );
        assert_eq!(escape_controls("café ✓"), "café ✓");
    }

    /// Found by the fuzz target `log_escape`: a server's text holding a
    /// backslash (`C:\temp\new`) printed as an escaped tab and newline
    /// would, so an escaped line could not be read back.
    #[test]
    fn backslashes_are_escaped_so_the_line_reads_back() {
        assert_eq!(escape_controls(r"C:\temp\new"), r"C:\\temp\\new");
        assert_eq!(escape_controls("a\\n\n"), r"a\\n\n");
    }

    /// Found by the fuzz target `log_escape`: Unicode's line and paragraph
    /// separators are no control characters, yet readers (editors, log
    /// viewers, JavaScript) break lines at them.
    #[test]
    fn unicode_line_separators_are_escaped() {
        assert_eq!(
            escape_controls("one\u{2028}two\u{2029}three\u{85}four"),
            r"one\u{2028}two\u{2029}three\u{85}four"
        );
    }
}
