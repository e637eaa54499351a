//! Docs that cannot drift (issue 21): every log line and JSON body the docs
//! quote in a block is the expected output of a scenario here, run through
//! the binary against real servers; and every Rust block of the docs is
//! compiled by `cargo test --doc` (`src/doctests.rs`).
//!
//! A quoted block carries a mark, `<!-- output: NAME -->` on the line
//! before its fence; the scenario `NAME` runs the gateway and compares the
//! block with what it printed, line by line, after [`normalise`] on both
//! sides. `docs/testing.md` ("Docs that cannot drift") explains it for
//! people.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{Gateway, Postgres, Redis, free_port};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every scenario below, by the mark of the block it holds.
const SCENARIOS: &[&str] = &[
    "quick-start-log",
    "quick-start-ready",
    "refused-database",
    "json-log-lines",
    "postgres-and-redis-ready",
    "ready-body-redis-down",
    "permanent-error",
    "sigterm-while-serving",
    "sigterm-with-a-delay",
    "bad-configuration",
    "optional-redis",
    "check-passed",
    "exec-ready",
    "exec-sigterm",
    "probe-lines",
];

// ---- reading the docs ----------------------------------------------------

/// A fenced code block of a markdown file.
#[derive(Debug)]
struct Block {
    /// `docs/logs-and-endpoints.md:42` (the opening fence).
    place: String,
    /// The info string: `text`, `json`, `rust,no_run`, or empty.
    info: String,
    /// `NAME` of an `<!-- output: NAME -->` on the last non-blank line
    /// before the fence.
    mark: Option<String>,
    /// The content, without the fence's indentation.
    lines: Vec<String>,
}

impl Block {
    /// The language: the info string's first word.
    fn lang(&self) -> &str {
        self.info.split([',', ' ']).next().unwrap_or("").trim()
    }

    /// Whether rustdoc compiles it as Rust: no language, `rust`, or only
    /// rustdoc's own attributes (`no_run`, `ignore`, `edition2024`...).
    fn is_rust(&self) -> bool {
        const ATTRIBUTES: &[&str] = &[
            "rust",
            "no_run",
            "ignore",
            "should_panic",
            "compile_fail",
            "test_harness",
            "standalone_crate",
        ];
        self.info
            .split(',')
            .map(str::trim)
            .all(|t| t.is_empty() || ATTRIBUTES.contains(&t) || t.starts_with("edition"))
    }
}

/// The markdown files of the docs, relative to the repository: the README
/// and every `.md` under `docs/`.
fn doc_files() -> Vec<String> {
    fn walk(dir: &Path, relative: &str, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let child = format!("{relative}/{name}");
            if path.is_dir() {
                walk(&path, &child, out);
            } else if name.ends_with(".md") {
                out.push(child);
            }
        }
    }
    let mut files = vec!["README.md".to_owned()];
    walk(&Path::new(ROOT).join("docs"), "docs", &mut files);
    files
}

fn read(relative: &str) -> String {
    let path = Path::new(ROOT).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The fence that opens a block on this line (three or more backticks or
/// tildes, up to three spaces in), and the info string after it. As in
/// CommonMark, a backtick fence's info string holds no backtick: a line
/// starting with an inline ```` ```sh ```` is prose.
fn fence(line: &str) -> Option<(usize, String, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let c = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = rest.chars().take_while(|x| *x == c).count();
    let info_ok = c == '~' || !rest[n..].contains('`');
    (indent <= 3 && n >= 3 && info_ok)
        .then(|| (indent, rest[..n].to_owned(), rest[n..].trim().to_owned()))
}

/// Every fenced block of `relative`, in order.
fn blocks(relative: &str) -> Vec<Block> {
    let text = read(relative);
    let mut out = Vec::new();
    let mut open: Option<(usize, String, Block)> = None;
    let mut last_prose = "";
    for (i, line) in text.lines().enumerate() {
        if let Some((indent, fence_str, block)) = &mut open {
            let closes = line.trim().len() >= fence_str.len()
                && line.trim().chars().all(|c| fence_str.starts_with(c));
            if closes {
                let (_, _, block) = open.take().unwrap();
                out.push(block);
            } else {
                let cut = line.len() - line.trim_start_matches(' ').len();
                block.lines.push(line[cut.min(*indent)..].to_owned());
            }
            continue;
        }
        if let Some((indent, fence_str, info)) = fence(line) {
            let mark = last_prose
                .strip_prefix("<!-- output:")
                .and_then(|m| m.strip_suffix("-->"))
                .map(|m| m.trim().to_owned());
            let block = Block {
                place: format!("{relative}:{}", i + 1),
                info,
                mark,
                lines: Vec::new(),
            };
            open = Some((indent, fence_str, block));
        } else if !line.trim().is_empty() {
            last_prose = line.trim();
        }
    }
    assert!(open.is_none(), "{relative}: a code block is not closed");
    out
}

/// The lines of the one block marked `name`.
fn quoted(name: &str) -> Vec<String> {
    assert!(SCENARIOS.contains(&name), "{name} is not in SCENARIOS");
    let mut found: Vec<Block> = doc_files()
        .iter()
        .flat_map(|f| blocks(f))
        .filter(|b| b.mark.as_deref() == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "blocks marked {name}: {found:#?}");
    found.remove(0).lines
}

// ---- comparing -----------------------------------------------------------

/// `text` with every match of `template` (`0`: any ASCII digit, any other
/// character: itself) replaced by `with`.
fn replace_shape(text: &str, template: &str, with: &str) -> String {
    let (bytes, shape) = (text.as_bytes(), template.as_bytes());
    let fits = |at: usize| {
        bytes.len() >= at + shape.len()
            && shape.iter().zip(&bytes[at..]).all(|(&s, &b)| {
                if s == b'0' {
                    b.is_ascii_digit()
                } else {
                    s == b
                }
            })
    };
    let (mut out, mut from, mut at) = (String::new(), 0, 0);
    while at < bytes.len() {
        if fits(at) {
            out.push_str(&text[from..at]);
            out.push_str(with);
            at += shape.len();
            from = at;
        } else {
            at += 1;
        }
    }
    out.push_str(&text[from..]);
    out
}

/// `text` with the number right after each `prefix` replaced by `with`,
/// when `unit` follows the number (`None`: whatever follows).
fn replace_number_after(text: &str, prefix: &str, unit: Option<&str>, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let start = i + prefix.len();
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let digits = after
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(after.len());
        let tail = &after[digits..];
        let unit_follows = unit.is_none_or(|u| {
            tail.strip_prefix(u)
                .is_some_and(|t| !t.starts_with(|c: char| c.is_alphanumeric()))
        });
        if digits > 0 && after.as_bytes()[0].is_ascii_digit() && unit_follows {
            out.push_str(with);
            rest = tail;
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// What differs between two runs of the same scenario, and nothing else:
/// timestamps, loopback ports, pids, and measured durations (a number of seconds
/// after `after ` or `attempt(s) in `). Configured waits (`retrying in
/// 0.5 s`) and every word stay as they are.
fn normalise(line: &str) -> String {
    let line = replace_shape(line, "0000-00-00T00:00:00.000Z", "<time>");
    let line = replace_number_after(&line, "127.0.0.1:", None, "<port>");
    let line = replace_number_after(&line, "(pid ", None, "<pid>");
    let line = replace_number_after(&line, "\"pid\":", None, "<pid>");
    let mut line = line;
    for prefix in ["after ", "attempt in ", "attempts in "] {
        line = replace_number_after(&line, prefix, Some(" s"), "<secs>");
    }
    line
}

/// The block marked `name` is, line for line, `actual` (both normalised).
fn assert_output(name: &str, actual: &[String]) {
    let want: Vec<String> = quoted(name).iter().map(|l| normalise(l)).collect();
    let got: Vec<String> = actual.iter().map(|l| normalise(l)).collect();
    assert!(
        want == got,
        "the block marked {name} is not what the program printed.\n\
         doc (normalised):\n{}\n\nprogram (normalised):\n{}\n\nprogram (as printed):\n{}",
        want.join("\n"),
        got.join("\n"),
        actual.join("\n")
    );
}

/// The block marked `name` is the JSON body `actual`: the block's lines,
/// trimmed and joined (a body is one line; the doc may break it after `{`
/// or `,`), then normalised like a log line.
fn assert_body(name: &str, actual: &str) {
    let joined: String = quoted(name).iter().map(|l| l.trim()).collect();
    assert!(
        serde_json::from_str::<serde_json::Value>(&joined).is_ok(),
        "the block marked {name} is not JSON once joined: {joined}"
    );
    assert!(
        normalise(&joined) == normalise(actual),
        "the block marked {name} is not the body the program answered.\n\
         doc (joined, normalised):\n{}\n\nprogram (normalised):\n{}\n\nprogram (as answered):\n{actual}",
        normalise(&joined),
        normalise(actual)
    );
}

// ---- the checks on the docs themselves ----------------------------------

/// Whether a line of a block is a log line or a JSON body (possibly as a
/// shell comment: `# {"status":...}`).
fn looks_like_output(line: &str) -> bool {
    let line = line.trim();
    let line = line.strip_prefix("# ").unwrap_or(line).trim_start();
    line.starts_with('{')
        || replace_shape(line, "0000-00-00T", "") != line && line.as_bytes()[0].is_ascii_digit()
        || ["ERROR ", "WARN  ", "INFO  ", "DEBUG ", "TRACE "]
            .iter()
            .any(|level| line.starts_with(level))
}

#[test]
fn normalisation_hides_what_varies_and_keeps_words_and_configured_waits() {
    let a = "2026-11-28T20:49:55.573Z WARN  DB connection failed (attempt 1/3), retrying in 0.5 s: \
             connection to 127.0.0.1:5432 refused; up after 0.025 s, after 3 attempts in 1 s";
    let b = "2026-12-06T00:28:33.045Z WARN  DB connection failed (attempt 1/3), retrying in 0.5 s: \
             connection to 127.0.0.1:41234 refused; up after 12 s, after 3 attempts in 1.005 s";
    assert_eq!(normalise(a), normalise(b));
    assert_eq!(
        normalise(a),
        "<time> WARN  DB connection failed (attempt 1/3), retrying in 0.5 s: \
         connection to 127.0.0.1:<port> refused; up after <secs> s, after 3 attempts in <secs> s"
    );
    // A configured wait, a count, a word, a level: each is kept.
    for changed in [
        a.replace("retrying in 0.5 s", "retrying in 5 s"),
        a.replace("attempt 1/3", "attempt 1/4"),
        a.replace("after 3 attempts", "after 4 attempts"),
        a.replace("refused", "rejected"),
        a.replace("WARN ", "INFO "),
    ] {
        assert_ne!(normalise(a), normalise(&changed), "{changed}");
    }
    // JSON: timestamps inside strings too, nothing else.
    assert_eq!(
        normalise(r#"{"delay_ms":500,"since":"2026-11-28T21:02:11.410Z"}"#),
        r#"{"delay_ms":500,"since":"<time>"}"#
    );
}

#[test]
fn every_quoted_output_is_held_by_a_scenario() {
    let mut marks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unheld = Vec::new();
    for file in doc_files() {
        for block in blocks(&file) {
            if let Some(mark) = &block.mark {
                assert!(
                    SCENARIOS.contains(&mark.as_str()),
                    "{}: the mark {mark:?} names no scenario of tests/it/docs.rs",
                    block.place
                );
                assert!(
                    ["text", "json"].contains(&block.lang()),
                    "{}: a quoted output is a ```text or ```json block",
                    block.place
                );
                marks.entry(mark.clone()).or_default().push(block.place);
                continue;
            }
            // An untagged block is Rust to rustdoc, but a quoted log line
            // there is still a quoted log line.
            let explicitly_rust = block.is_rust() && !block.info.is_empty();
            let output = block.lang() == "json"
                || (!explicitly_rust
                    && !["markdown", "md"].contains(&block.lang())
                    && block.lines.iter().any(|l| looks_like_output(l)));
            if output {
                unheld.push(block.place);
            }
        }
    }
    assert!(
        unheld.is_empty(),
        "blocks quoting output without an <!-- output: NAME --> mark (and a scenario): {unheld:#?}"
    );
    for name in SCENARIOS {
        assert_eq!(
            marks.get(*name).map(Vec::len),
            Some(1),
            "{name}: quoted {:?}",
            marks.get(*name)
        );
    }
}

#[test]
fn every_page_with_rust_is_compiled_by_the_doctests() {
    let doctests = read("src/doctests.rs");
    for file in doc_files() {
        let rust: Vec<String> = blocks(&file)
            .into_iter()
            .filter(Block::is_rust)
            .map(|b| b.place)
            .collect();
        let included = doctests.contains(&format!("include_str!(\"../{file}\")"));
        assert!(
            rust.is_empty() || included,
            "{file} has Rust blocks ({rust:?}; an untagged block is Rust to rustdoc) \
             but src/doctests.rs does not include it"
        );
    }
    // The pages whose snippets the docs promise compile.
    for file in ["README.md", "docs/embedding.md"] {
        assert!(
            doctests.contains(&format!("include_str!(\"../{file}\")")),
            "{file}"
        );
    }
}

/// GitHub's anchor of a heading: lower case, spaces as `-`, other
/// punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn anchors(relative: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in read(relative).lines() {
        if fence(line).is_some() {
            inside = !inside;
        }
        if let Some(heading) = line.strip_prefix('#').filter(|_| !inside) {
            out.push(anchor(heading.trim_start_matches('#').trim()));
        }
    }
    out
}

#[test]
fn every_docs_page_is_one_hop_from_the_readme_and_every_link_resolves() {
    let readme = read("README.md");
    for file in doc_files().iter().filter(|f| f.starts_with("docs/")) {
        assert!(
            readme.contains(&format!("]({file})")),
            "the README does not link {file}"
        );
    }
    for file in doc_files() {
        let text = read(&file);
        let dir = Path::new(&file).parent().unwrap_or(Path::new(""));
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let Some(end) = target.find(')') else {
                continue;
            };
            let target = &target[..end];
            if target.contains("://") || target.contains(' ') {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                let joined = dir.join(path);
                // Normalise `..`: the docs link within the repository.
                let mut parts: Vec<String> = Vec::new();
                for part in joined.components() {
                    match part.as_os_str().to_string_lossy().as_ref() {
                        ".." => {
                            parts.pop();
                        }
                        "." => {}
                        other => parts.push(other.to_owned()),
                    }
                }
                parts.join("/")
            };
            assert!(
                Path::new(ROOT).join(&resolved).exists(),
                "{file}: the link ({target}) goes to {resolved}, which does not exist"
            );
            if !fragment.is_empty() && resolved.ends_with(".md") {
                assert!(
                    anchors(&resolved).iter().any(|a| a == fragment),
                    "{file}: the link ({target}): {resolved} has no heading #{fragment}"
                );
            }
        }
    }
}

// ---- the scenarios -------------------------------------------------------

const START: Duration = Duration::from_secs(15);

/// Waits for the `Ready:` line; panics with the output otherwise.
fn wait_ready(gw: &Gateway) {
    assert!(
        gw.wait_for_line("INFO  Ready: ", START).is_some(),
        "{}",
        gw.output()
    );
}

/// A PostgreSQL server with the role `app` (password `secret`, unchecked:
/// the tests' servers trust local connections) owning a database `app`.
fn postgres_with_app() -> Postgres {
    let pg = Postgres::start();
    pg.psql("CREATE ROLE app LOGIN PASSWORD 'secret'");
    pg.psql("CREATE DATABASE app OWNER app");
    pg
}

fn app_url(port: u16, database: &str) -> String {
    format!("postgres://app:secret@127.0.0.1:{port}/{database}")
}

#[test]
fn the_quick_start_logs_and_answers_as_the_readme_shows() {
    let gw = Gateway::builder().spawn();
    wait_ready(&gw);
    let (status, body) = gw.get("/ready").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_output("quick-start-log", &gw.lines());
    assert_body("quick-start-ready", &body);
}

#[test]
fn a_sigterm_while_serving_logs_as_documented() {
    let gw = Gateway::builder().spawn();
    wait_ready(&gw);
    let from = gw.line_count();
    gw.signal(Signal::SIGTERM);
    gw.expect_exit(0, Duration::from_secs(10));
    assert_output("sigterm-while-serving", &gw.lines()[from..]);
}

#[test]
fn a_sigterm_with_a_shutdown_delay_then_a_second_one_logs_as_documented() {
    let gw = Gateway::builder().env("SHUTDOWN_DELAY_MS", "5000").spawn();
    wait_ready(&gw);
    let from = gw.line_count();
    gw.signal(Signal::SIGTERM);
    assert!(
        gw.wait_for_line_from(from, "Received SIGTERM: ", Duration::from_secs(5))
            .is_some(),
        "{}",
        gw.output()
    );
    gw.signal(Signal::SIGTERM);
    gw.expect_exit(0, Duration::from_secs(4));
    assert_output("sigterm-with-a-delay", &gw.lines()[from..]);
}

/// `DB_MAX_RETRIES=3 DB_RETRY_INTERVAL_MS=500`, nothing listening.
fn refused(format: &str) -> Gateway {
    let gw = Gateway::builder()
        .env("DATABASE_URL", app_url(free_port(), "app"))
        .env("DB_MAX_RETRIES", "3")
        .env("DB_RETRY_INTERVAL_MS", "500")
        .env("LOG_FORMAT", format)
        .spawn();
    gw.expect_exit(69, Duration::from_secs(10));
    gw
}

#[test]
fn a_refused_database_logs_each_attempt_then_gives_up_as_documented() {
    let gw = refused("text");
    assert_output("refused-database", &gw.lines());
}

#[test]
fn json_log_lines_are_as_documented() {
    let gw = refused("json");
    let lines = gw.lines();
    assert!(lines.len() >= 2, "{}", gw.output());
    assert_output("json-log-lines", &lines[..2]);
}

#[test]
fn postgres_and_redis_up_then_redis_down_log_and_answer_as_documented() {
    // Arrange
    let pg = postgres_with_app();
    let mut redis = Redis::start();
    let gw = Gateway::builder()
        .env("DATABASE_URL", app_url(pg.port(), "app"))
        .env("CACHE_TYPE", "redis")
        .env("REDIS_URL", redis.url())
        .env("HEALTH_CHECK_INTERVAL_MS", "100")
        .env("REDIS_RETRY_INTERVAL_MS", "500")
        .spawn();
    wait_ready(&gw);
    assert_output("postgres-and-redis-ready", &gw.lines());

    // Act: Redis goes; the check finds it gone, two reconnections fail.
    redis.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = gw.get("/ready").unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let failures = json["dependencies"]["cache"]["consecutive_failures"]
            .as_u64()
            .unwrap();
        assert!(failures <= 3, "missed the third failure: {body}");
        if failures == 3 {
            assert_eq!(status, 503, "{body}");
            break body;
        }
        assert!(Instant::now() < deadline, "{body}\n{}", gw.output());
        std::thread::sleep(Duration::from_millis(20));
    };

    // Assert
    assert_body("ready-body-redis-down", &body);
}

#[test]
fn a_permanent_error_logs_two_error_lines_as_documented() {
    let pg = postgres_with_app();
    let gw = Gateway::builder()
        .env("DATABASE_URL", app_url(pg.port(), "shop"))
        .spawn();
    gw.expect_exit(69, Duration::from_secs(10));
    assert_output("permanent-error", &gw.lines());
}

#[test]
fn a_bad_setting_logs_one_line_as_documented() {
    let gw = Gateway::builder()
        .env("DB_MAX_RETRIES", "many")
        .env("CACHE_TYPE", "memcached")
        .spawn();
    gw.expect_exit(78, Duration::from_secs(10));
    assert_output("bad-configuration", &gw.lines());
}

#[test]
fn an_optional_redis_that_comes_late_logs_as_documented() {
    // Arrange: no Redis yet.
    let mut redis = Redis::reserve();
    let gw = Gateway::builder()
        .env("CACHE_TYPE", "redis")
        .env("CACHE_REQUIRED", "false")
        .env("REDIS_URL", redis.url())
        .env("REDIS_MAX_RETRIES", "2")
        .env("REDIS_RETRY_INTERVAL_MS", "1000")
        .spawn();

    // Act: Redis starts after the first background attempt, within the
    // 1 s before the next.
    assert!(
        gw.wait_for_line("Redis background attempt 1 failed", START)
            .is_some(),
        "{}",
        gw.output()
    );
    redis.start_server();
    assert!(
        gw.wait_for_line(", in the background", START).is_some(),
        "{}",
        gw.output()
    );

    // Assert: the lines about Redis (the database's interleave at random).
    let lines: Vec<String> = gw
        .lines()
        .into_iter()
        .filter(|l| l.contains(" Redis "))
        .collect();
    assert_output("optional-redis", &lines);
}

#[test]
fn check_passes_as_documented() {
    let gw = Gateway::builder().args(&["check"]).spawn();
    gw.expect_exit(0, Duration::from_secs(10));
    assert_output("check-passed", &gw.lines());
}

#[test]
fn exec_runs_and_stops_its_program_as_documented() {
    let gw = Gateway::builder()
        .env("SHUTDOWN_DELAY_MS", "300")
        .env("CACHE_TYPE", "none")
        .args(&[
            "exec",
            "--",
            "sh",
            "-c",
            "trap \"exit 3\" TERM; while :; do sleep 0.05; done",
        ])
        .spawn();
    assert!(
        gw.wait_for_line("INFO  Started sh ", START).is_some(),
        "{}",
        gw.output()
    );
    let (_, body) = gw.get("/ready").unwrap();
    assert_body("exec-ready", &body);
    gw.signal(Signal::SIGTERM);
    gw.expect_exit(3, Duration::from_secs(10));
    assert_output("exec-sigterm", &gw.lines());
}

#[test]
fn probe_logs_as_documented() {
    let gw = Gateway::builder().spawn();
    wait_ready(&gw);
    let healthy = Gateway::builder()
        .env("PORT", gw.port().to_string())
        .args(&["probe"])
        .spawn();
    healthy.expect_exit(0, Duration::from_secs(10));
    let refused = Gateway::builder().args(&["probe"]).spawn();
    refused.expect_exit(1, Duration::from_secs(10));
    let mut lines = healthy.lines();
    lines.extend(refused.lines());
    assert_output("probe-lines", &lines);
}
