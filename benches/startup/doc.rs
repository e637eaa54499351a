//! The run's Markdown: the summary table and the sections' tables, written
//! to `target/readygate-bench/`, and after a full run copied verbatim into
//! `BENCHMARKS.md` between marker comments, so that no figure of the
//! document is edited by hand:
//!
//! ```text
//! <!-- bench:NAME begin: written by `cargo bench --bench startup`, do not edit -->
//! ...
//! <!-- bench:NAME end -->
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::plan::Report;
use crate::stats;

/// The command that reproduces this run.
pub fn command(sections: &[&str], quick: bool) -> String {
    let mut c = String::new();
    if quick {
        c.push_str("READYGATE_BENCH_QUICK=1 ");
    }
    c.push_str("cargo bench --bench startup");
    if !sections.is_empty() {
        c.push_str(" -- ");
        c.push_str(&sections.join(" "));
    }
    c
}

/// First line of `program args` (stdout, else stderr), if it runs.
fn version(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let line = String::from_utf8_lossy(&text)
        .lines()
        .next()?
        .trim()
        .to_owned();
    (!line.is_empty()).then_some(line)
}

/// The PostgreSQL server the tests' support code would start.
fn postgres_version() -> Option<String> {
    let dirs = std::env::var("PG_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin")),
        );
    dirs.filter_map(|d| version(&d.join("postgres").to_string_lossy(), &["--version"]))
        .max()
}

/// The MariaDB server the tests' support code would start (`mariadbd` is
/// in /usr/sbin, which a non-root PATH may lack).
fn mariadb_version() -> Option<String> {
    ["mariadbd", "/usr/sbin/mariadbd"]
        .iter()
        .find_map(|program| version(program, &["--version"]))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The machine and the software the run used.
fn machine() -> String {
    let unknown = || "not found".to_owned();
    let wrk = version("wrk", &["-v"])
        .map(|v| v.split(" Copyright").next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| "not installed".to_owned());
    let mut s = String::new();
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Machine | {} |", stats::machine());
    let _ = writeln!(
        s,
        "| Software | {}; {}; {}; {}; {} |",
        version("rustc", &["--version"]).unwrap_or_else(unknown),
        postgres_version().unwrap_or_else(unknown),
        mariadb_version().unwrap_or_else(unknown),
        version("redis-server", &["--version"]).unwrap_or_else(unknown),
        wrk
    );
    s
}

/// The summary: when, how, where, every check, the notes.
fn results(report: &Report, command: &str, total: Duration) -> String {
    let mut s = String::new();
    let started = SystemTime::now()
        .checked_sub(total)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let misses = report
        .checks
        .iter()
        .filter(|c| c.pass == Some(false))
        .count();
    let passes = report
        .checks
        .iter()
        .filter(|c| c.pass == Some(true))
        .count();
    let _ = writeln!(
        s,
        "Run of {} UTC, `{command}`, {:.0} s; every figure below is from this one run. \
         Targets: **{passes} pass, {misses} miss**.\n",
        humantime::format_rfc3339_seconds(started)
            .to_string()
            .replace('T', " ")
            .trim_end_matches('Z'),
        total.as_secs_f64()
    );
    s.push_str(&machine());
    let _ = writeln!(
        s,
        "\n| Figure | Measured | Reference (same run) | Target | Result |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for c in &report.checks {
        let verdict = match c.pass {
            Some(true) => "pass",
            Some(false) => "**miss**",
            None => "-",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {verdict} |",
            c.figure, c.measured, c.reference, c.target
        );
    }
    if !report.notes.is_empty() {
        let _ = writeln!(s);
        for n in &report.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

fn begin(name: &str) -> String {
    format!("<!-- bench:{name} begin: written by `cargo bench --bench startup`, do not edit -->")
}

fn end(name: &str) -> String {
    format!("<!-- bench:{name} end -->")
}

/// `text` with the block `name` replaced by `body`; `None` if its markers
/// are missing.
fn replace_block(text: &str, name: &str, body: &str) -> Option<String> {
    let (b, e) = (begin(name), end(name));
    let start = text.find(&b)? + b.len();
    let stop = start + text[start..].find(&e)?;
    Some(format!(
        "{}\n\n{}\n\n{}",
        &text[..start],
        body.trim_end(),
        &text[stop..]
    ))
}

/// Writes the summary and every block to `target/readygate-bench/`; after a
/// full run, also into `doc` (BENCHMARKS.md). Returns the summary.
pub fn write(
    report: &Report,
    command: &str,
    total: Duration,
    full_run: bool,
    doc: &Path,
) -> String {
    let summary = results(report, command, total);
    let blocks: Vec<(&str, &str)> = std::iter::once(("results", summary.as_str()))
        .chain(report.blocks.iter().map(|(n, b)| (n.as_str(), b.as_str())))
        .collect();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/readygate-bench");
    if std::fs::create_dir_all(&dir).is_ok() {
        for (name, body) in &blocks {
            let name = if *name == "results" { "summary" } else { name };
            let path = dir.join(format!("{name}.md"));
            if std::fs::write(&path, body).is_ok() {
                println!("written: {}", path.display());
            }
        }
    }
    if !full_run {
        println!(
            "{} left as it is: only a full run (`cargo bench --bench startup`, without \
             READYGATE_BENCH_QUICK) writes its tables",
            doc.display()
        );
        return summary;
    }
    let Ok(mut text) = std::fs::read_to_string(doc) else {
        println!("cannot read {}: its tables were not updated", doc.display());
        return summary;
    };
    for (name, body) in &blocks {
        match replace_block(&text, name, body) {
            Some(t) => text = t,
            None => println!(
                "{}: no `{}` markers, block not written",
                doc.display(),
                begin(name)
            ),
        }
    }
    match std::fs::write(doc, text) {
        Ok(()) => println!("tables written into {}", doc.display()),
        Err(e) => println!("cannot write {}: {e}", doc.display()),
    }
    summary
}
