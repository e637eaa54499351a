//! The whole settings validation from structured input (`arbitrary`): URLs
//! built from their parts for `DATABASE_URL` (by scheme: PostgreSQL with
//! libpq's TLS parameters, MySQL/MariaDB with the mysql client's, SQLite),
//! `REDIS_URL` and each `WAIT_FOR` entry (every scheme it takes), given
//! directly or through `DATABASE_URL_FILE`/`REDIS_URL_FILE`; the Sentinel
//! and Cluster nodes, master name and sentinels' password (given or in its
//! file); each `WAIT_FOR` entry's own settings (`WAIT_FOR_<NAME>_<SETTING>`,
//! typos included); numbers, decimals and words for the other settings;
//! TLS files from a menu of real ones (`fuzz/fixtures/`). Passwords hold
//! `readygate_fuzz::MARKER`, so that one found in an error text can only
//! have come from the input.
//! What is checked: `readygate_fuzz::check_settings`.

#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use readygate::config::{PER_ENTRY, env_key};
use readygate_fuzz::{MARKER, any_risky_path, check_settings, variables};

#[derive(Arbitrary, Debug)]
enum Scheme {
    Known(u8),
    Raw(String),
}

const SCHEMES: &[&str] = &[
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "sqlite",
    "redis",
    "rediss",
    "tcp",
    "http",
    "https",
    "amqp",
    "amqps",
    "nats",
    "mqtt",
    "dns",
    "redis-sentinel",
    "POSTGRES",
    "MariaDB",
    "ftp",
];

#[derive(Arbitrary, Debug)]
enum Password {
    /// `MARKER` then this: a password checked for leaks.
    Marked { rest: String, encode: bool },
    /// Any password (short ones too): not checked for leaks, since it may
    /// be a word of any message.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Host {
    Known(u8),
    V4([u8; 4]),
    Raw(String),
}

const HOSTS: &[&str] = &[
    "db",
    "localhost",
    "cache",
    "h",
    "auth.example",
    "127.0.0.1",
    "[::1]",
    "::1",
    "a..b",
    "",
    "[::ffff:1.2.3.4]",
    "xn--caf-dma.example",
    "%68ost",
];

#[derive(Arbitrary, Debug)]
enum Port {
    Number(u16),
    Large(u32),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Raw(String),
}

/// The parameters that readygate or a client reads, as written in URLs.
const KEYS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "ssl-mode",
    "ssl_mode",
    "ssl-ca",
    "ssl_ca",
    "ssl-cert",
    "ssl-key",
    "SSL-MODE",
    "sslca",
    "require_ssl",
    "verify_ca",
    "tls",
    "application_name",
    "connect_timeout",
    "options",
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "target_session_attrs",
    "keepalives",
    "prefer_socket",
    "pool_min",
    "pool_max",
    "stmt_cache_size",
    "compression",
    "socket",
    "tcp_keepalive",
    "wait_timeout",
    "protocol",
    "db",
    "insecure",
    "channel_binding",
    "load_balance_hosts",
];

#[derive(Arbitrary, Debug)]
enum ParamValue {
    Word(u8),
    File(u8),
    Text(String),
    /// The URL's password again (a `password=` parameter, say).
    Password,
}

const WORDS: &[&str] = &[
    "disable",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
    "DISABLED",
    "REQUIRED",
    "VERIFY_CA",
    "VERIFY_IDENTITY",
    "PREFERRED",
    "system",
    "true",
    "false",
    "1",
    "0",
    "-1",
    "fixed",
    "exponential",
    "redis",
    "memory",
    "none",
    "json",
    "text",
    "debug",
    "trace",
    "warn",
    "error",
    "info",
    "loud",
    "read-write",
    "any",
    "fast",
    "2",
    "1.5",
    "0.25",
    "10",
    "10.001",
    "0.0001",
    "1.",
    ".5",
    "1e3",
    "NaN",
    "inf",
    "18446744073709551616",
    "86400000",
    "86400001",
    "1000000",
    "1000001",
    "65535",
    "65536",
    "0.0.0.0",
    "::",
    "gateway-1.internal",
    "bad host",
    "-",
    "x/y",
    "redis-sentinel",
    "redis-cluster",
    "2xx",
    "200,301",
    "5xx,404",
    "600",
    "\"status\":\\s*\"ok\"",
    "(unclosed",
    "s0:26379,s1:26379",
    "mymaster",
];

#[derive(Arbitrary, Debug)]
struct UrlSpec {
    scheme: Scheme,
    user: Option<String>,
    password: Option<Password>,
    host: Host,
    port: Option<Port>,
    path: Vec<String>,
    params: Vec<(Key, ParamValue)>,
    fragment: Option<String>,
    /// Spaces around the value (trimmed by readygate).
    padded: bool,
}

#[derive(Arbitrary, Debug)]
enum Source {
    /// `DATABASE_URL=...`
    Value,
    /// `DATABASE_URL_FILE=` a file holding it (with a newline, or not).
    File { newline: bool },
    /// Both: refused.
    Both,
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Raw(String),
}

const NAMES: &[&str] = &[
    "auth", "broker", "web", "a", "x-1", "db_2", "database", "cache", "Auth", "2a",
];

#[derive(Arbitrary, Debug)]
enum Value {
    Number(u64),
    Small(u8),
    Negative(i64),
    Decimal {
        whole: u16,
        fraction: u16,
        digits: u8,
    },
    Word(u8),
    File(u8),
    Text(String),
    Padded(Box<Value>),
}

#[derive(Arbitrary, Debug)]
enum Cache {
    Memory,
    Redis,
    None,
    Other(Value),
    Sentinel {
        nodes: Vec<Node>,
        master: Option<Name>,
        password: Option<(Password, Source)>,
    },
    Cluster {
        nodes: Vec<Node>,
    },
}

/// A `host:port` entry of `REDIS_SENTINEL_NODES` or `REDIS_CLUSTER_NODES`.
#[derive(Arbitrary, Debug)]
enum Node {
    Address(Host, Option<Port>),
    Raw(String),
}

/// A `WAIT_FOR` entry's own setting: the entry (by index into the list, or
/// a name of its own) and the setting (by index, or a word of its own).
#[derive(Arbitrary, Debug)]
struct EntrySetting {
    entry: Name,
    setting: Key,
    value: Value,
}

/// Setting names no entry has (typos), beside readygate's own
/// `PER_ENTRY`.
const ENTRY_TYPOS: &[&str] = &["MAX_RETRY", ""];

#[derive(Arbitrary, Debug)]
struct Input {
    /// Other settings first (by index into every variable), so that the
    /// URLs below win when both name one.
    settings: Vec<(u8, Value)>,
    database: Option<(UrlSpec, Source)>,
    cache: Option<Cache>,
    redis: Option<(UrlSpec, Source)>,
    wait_for: Vec<(Name, UrlSpec)>,
    wait_for_optional: Option<Vec<Name>>,
    wait_for_settings: Vec<EntrySetting>,
    draws: [u16; 4],
}

/// The TLS files of the menu: valid PEM (a CA, its key), empty, not PEM,
/// missing, a directory.
fn file(i: u8) -> String {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let path = match i % 6 {
        0 => fixtures.join("ca.pem"),
        1 => fixtures.join("key.pem"),
        2 => fixtures.join("empty.pem"),
        3 => fixtures.join("garbage.pem"),
        4 => fixtures.join("missing.pem"),
        _ => fixtures,
    };
    path.display().to_string()
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

fn value(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Small(n) => n.to_string(),
        Value::Negative(n) => n.to_string(),
        Value::Decimal {
            whole,
            fraction,
            digits,
        } => {
            let digits = usize::from(digits % 6);
            format!("{whole}.{fraction:0digits$}")
        }
        Value::Word(i) => pick(WORDS, *i).to_owned(),
        Value::File(i) => file(*i),
        Value::Text(t) => t.clone(),
        Value::Padded(v) => format!(" {} \t", value(v)),
    }
}

/// The password as written into the URL.
fn password(p: &Password) -> String {
    match p {
        Password::Marked { rest, encode } => {
            let pw = format!("{MARKER}{rest}");
            if *encode {
                utf8_percent_encode(&pw, NON_ALPHANUMERIC).to_string()
            } else {
                pw
            }
        }
        Password::Raw(pw) => pw.clone(),
    }
}

fn url(u: &UrlSpec) -> String {
    let scheme = match &u.scheme {
        Scheme::Known(i) => pick(SCHEMES, *i).to_owned(),
        Scheme::Raw(s) => s.clone(),
    };
    let pw = u.password.as_ref().map(password);
    let mut out = format!("{scheme}://");
    match (&u.user, &pw) {
        (None, None) => {}
        (user, None) => out.push_str(&format!("{}@", user.as_deref().unwrap_or_default())),
        (user, Some(pw)) => out.push_str(&format!("{}:{pw}@", user.as_deref().unwrap_or_default())),
    }
    match &u.host {
        Host::Known(i) => out.push_str(pick(HOSTS, *i)),
        Host::V4(a) => out.push_str(&format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])),
        Host::Raw(h) => out.push_str(h),
    }
    match &u.port {
        None => {}
        Some(Port::Number(n)) => out.push_str(&format!(":{n}")),
        Some(Port::Large(n)) => out.push_str(&format!(":{n}")),
        Some(Port::Raw(p)) => out.push_str(&format!(":{p}")),
    }
    for segment in &u.path {
        out.push('/');
        out.push_str(segment);
    }
    for (i, (key, v)) in u.params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(match key {
            Key::Known(k) => pick(KEYS, *k),
            Key::Raw(k) => k,
        });
        out.push('=');
        match v {
            ParamValue::Word(w) => out.push_str(pick(WORDS, *w)),
            ParamValue::File(f) => out.push_str(&file(*f)),
            ParamValue::Text(t) => out.push_str(t),
            ParamValue::Password => out.push_str(pw.as_deref().unwrap_or_default()),
        }
    }
    if let Some(fragment) = &u.fragment {
        out.push('#');
        out.push_str(fragment);
    }
    if u.padded { format!("  {out} ") } else { out }
}

fn node(n: &Node) -> String {
    match n {
        Node::Address(host, port) => {
            let host = match host {
                Host::Known(i) => pick(HOSTS, *i).to_owned(),
                Host::V4(a) => format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]),
                Host::Raw(h) => h.clone(),
            };
            match port {
                None => host,
                Some(Port::Number(n)) => format!("{host}:{n}"),
                Some(Port::Large(n)) => format!("{host}:{n}"),
                Some(Port::Raw(p)) => format!("{host}:{p}"),
            }
        }
        Node::Raw(s) => s.clone(),
    }
}

fn nodes(list: &[Node]) -> String {
    list.iter().take(6).map(node).collect::<Vec<_>>().join(",")
}

fn name(n: &Name) -> String {
    match n {
        Name::Known(i) => pick(NAMES, *i).to_owned(),
        Name::Raw(s) => s.clone(),
    }
}

/// Where the `*_FILE` settings' files go: one directory per process.
fn secret_file(var: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("readygate-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    });
    dir.join(var)
}

/// `var` given as `source` says: its value, or `{var}_FILE` naming a file
/// that holds it (its content noted in `files`), or both; `false` when the
/// file cannot be written.
fn give(
    values: &mut BTreeMap<String, String>,
    files: &mut BTreeMap<String, String>,
    var: &str,
    text: String,
    source: &Source,
) -> bool {
    let file_var = format!("{var}_FILE");
    match source {
        Source::Value => {
            values.remove(&file_var);
            values.insert(var.to_owned(), text);
        }
        Source::File { .. } | Source::Both => {
            let path = secret_file(&file_var);
            let content = match source {
                Source::File { newline: true } => format!("{text}\n"),
                _ => text.clone(),
            };
            if std::fs::write(&path, &content).is_err() {
                return false;
            }
            values.insert(file_var.clone(), path.display().to_string());
            if matches!(source, Source::Both) {
                values.insert(var.to_owned(), text);
            } else {
                values.remove(var);
                files.insert(file_var, content);
            }
        }
    }
    true
}

fuzz_target!(|input: Input| {
    let vars = variables();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for (i, v) in input.settings.iter().take(12) {
        let var = &vars[usize::from(*i) % vars.len()];
        values.insert(var.clone(), value(v));
    }
    for (var, spec) in [
        ("DATABASE_URL", &input.database),
        ("REDIS_URL", &input.redis),
    ] {
        let Some((spec, source)) = spec else {
            continue;
        };
        if !give(&mut values, &mut files, var, url(spec), source) {
            return;
        }
    }
    match &input.cache {
        None => {}
        Some(Cache::Memory) => drop(values.insert("CACHE_TYPE".into(), "memory".into())),
        Some(Cache::Redis) => drop(values.insert("CACHE_TYPE".into(), "redis".into())),
        Some(Cache::None) => drop(values.insert("CACHE_TYPE".into(), "none".into())),
        Some(Cache::Other(v)) => drop(values.insert("CACHE_TYPE".into(), value(v))),
        Some(Cache::Sentinel {
            nodes: list,
            master,
            password: pw,
        }) => {
            values.insert("CACHE_TYPE".into(), "redis-sentinel".into());
            values.insert("REDIS_SENTINEL_NODES".into(), nodes(list));
            if let Some(master) = master {
                values.insert("REDIS_SENTINEL_MASTER".into(), name(master));
            }
            if let Some((pw, source)) = pw {
                let text = password(pw);
                if !give(
                    &mut values,
                    &mut files,
                    "REDIS_SENTINEL_PASSWORD",
                    text,
                    source,
                ) {
                    return;
                }
            }
        }
        Some(Cache::Cluster { nodes: list }) => {
            values.insert("CACHE_TYPE".into(), "redis-cluster".into());
            values.insert("REDIS_CLUSTER_NODES".into(), nodes(list));
        }
    }
    for s in input.wait_for_settings.iter().take(6) {
        let entry = match &s.entry {
            Name::Known(i) => input
                .wait_for
                .get(usize::from(*i) % input.wait_for.len().max(1))
                .map_or_else(|| pick(NAMES, *i).to_owned(), |(n, _)| name(n)),
            Name::Raw(raw) => raw.clone(),
        };
        let setting = match &s.setting {
            Key::Known(i) => {
                let names: Vec<&str> = PER_ENTRY.iter().chain(ENTRY_TYPOS).copied().collect();
                pick(&names, *i).to_owned()
            }
            Key::Raw(raw) => raw.clone(),
        };
        let var = format!("WAIT_FOR_{}_{setting}", env_key(&entry));
        // Only what an environment can hold.
        if var.contains(['=', '\0']) || var.is_empty() {
            continue;
        }
        values.insert(var, value(&s.value));
    }
    if !input.wait_for.is_empty() {
        let list: Vec<String> = input
            .wait_for
            .iter()
            .take(6)
            .map(|(n, u)| format!("{}={}", name(n), url(u)))
            .collect();
        values.insert("WAIT_FOR".into(), list.join(","));
    }
    if let Some(names) = &input.wait_for_optional {
        let names: Vec<String> = names.iter().take(6).map(name).collect();
        values.insert("WAIT_FOR_OPTIONAL".into(), names.join(","));
    }
    if values
        .values()
        .chain(files.values())
        .any(|v| any_risky_path(v))
    {
        return;
    }
    check_settings(&values, &files, &input.draws);
});
