//! Secrets and certificates that rotate without a restart: a [`Watched`]
//! value is built from files (`DATABASE_URL_FILE`, `sslrootcert`, ...) and
//! rebuilt when one of them changed, before a new connection is made.
//!
//! A change is noticed by comparing what is read: each file's content is
//! hashed (at most [`MAX_READ`] bytes) at every [`Watched::refresh`]. The
//! path's own modification time is not enough: Kubernetes updates a mounted
//! Secret by writing a new timestamped directory and swapping the `..data`
//! symlink, so the file's path, and often its mtime, stay the same while
//! what it names changes. Reading a few hundred bytes costs microseconds
//! (docs/rotation.md has the figure), and is done only when a connection is
//! made or a reconnection waits, never on the request path.
//!
//! A change that cannot be used (an unreadable or empty file, a URL that
//! does not parse, a certificate that does not, a key that does not match)
//! is logged once as a WARN naming the variable and why, and the last good
//! value stays in use; the next change is tried again. Every outcome counts
//! in `readygate_secret_reloads_total{variable,outcome}`. No content is
//! ever logged.

use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The most read of one file to tell whether it changed (certificates and
/// URLs are far smaller).
pub const MAX_READ: u64 = 1 << 20;

/// One file a [`Watched`] value is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The variable or parameter that names the file (`DATABASE_URL_FILE`,
    /// `sslrootcert`): the log line and the metric's `variable` label.
    pub variable: String,
    /// What the file holds, for the log line: `credentials`, `certificate`,
    /// `key`.
    pub what: &'static str,
    pub path: PathBuf,
}

impl Source {
    pub fn new(variable: impl Into<String>, what: &'static str, path: impl Into<PathBuf>) -> Self {
        Source {
            variable: variable.into(),
            what,
            path: path.into(),
        }
    }
}

/// What a file read as: its content's hash, or the kind of error that
/// stopped the read (so that a file that becomes readable again is a
/// change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    Content(u64),
    Unreadable(std::io::ErrorKind),
}

/// The fingerprint of the file at `path` now: what it resolves to is read,
/// so a swapped symlink reads as its new target.
pub fn fingerprint(path: &std::path::Path) -> Fingerprint {
    let read = || -> std::io::Result<u64> {
        let mut content = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_READ)
            .read_to_end(&mut content)?;
        let mut hasher = DefaultHasher::new();
        hasher.write(&content);
        Ok(hasher.finish())
    };
    match read() {
        Ok(hash) => Fingerprint::Content(hash),
        Err(e) => Fingerprint::Unreadable(e.kind()),
    }
}

/// What a [`Watched::refresh`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// No file changed.
    Unchanged,
    /// A file changed and the value was rebuilt from it.
    Changed,
    /// A file changed but the value could not be rebuilt: why. The last
    /// good value stays.
    Rejected(String),
}

/// Builds a value from its files: the value and the files it was built
/// from (which may differ from the last time: a new URL may name other
/// certificates), or why it cannot be built.
pub type Load<T> = Box<dyn Fn() -> Result<(T, Vec<Source>), String> + Send + Sync>;

struct State<T> {
    value: T,
    files: Vec<(Source, Fingerprint)>,
}

/// A value built from files, rebuilt when they change. Cheap to share
/// (`Arc` inside); [`Watched::current`] is a lock and a clone.
pub struct Watched<T> {
    /// The log lines' first word: `DB`, `Redis`.
    label: &'static str,
    state: Mutex<State<T>>,
    load: Load<T>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub variable: String,
    /// `changed` or `rejected`.
    pub outcome: &'static str,
}

/// `readygate_secret_reloads_total`, one family for the process (every
/// [`crate::metrics::Metrics`] registers it).
pub static RELOADS: LazyLock<Family<ReloadLabels, Counter>> = LazyLock::new(Family::default);

fn count(variable: &str, outcome: &'static str) {
    RELOADS
        .get_or_create(&ReloadLabels {
            variable: variable.to_owned(),
            outcome,
        })
        .inc();
}

impl<T: Clone> Watched<T> {
    /// `value` as built from `files` now; `load` rebuilds it.
    pub fn new(label: &'static str, value: T, files: Vec<Source>, load: Load<T>) -> Arc<Self> {
        let files = files
            .into_iter()
            .map(|s| {
                let print = fingerprint(&s.path);
                (s, print)
            })
            .collect();
        Arc::new(Watched {
            label,
            state: Mutex::new(State { value, files }),
            load,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the state half
        // written (every write is one assignment): take it as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any file is watched.
    pub fn watches(&self) -> bool {
        !self.lock().files.is_empty()
    }

    /// The last good value.
    pub fn current(&self) -> T {
        self.lock().value.clone()
    }

    /// Read every file; when one changed, rebuild the value (see the
    /// module's documentation). Logs and counts each change.
    pub fn refresh(&self) -> Refresh {
        let mut state = self.lock();
        let changed: Vec<(usize, Fingerprint)> = state
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, (source, old))| {
                let now = fingerprint(&source.path);
                (now != *old).then_some((i, now))
            })
            .collect();
        if changed.is_empty() {
            return Refresh::Unchanged;
        }
        let label = self.label;
        match (self.load)() {
            Ok((value, files)) => {
                for (i, _) in &changed {
                    let (source, _) = &state.files[*i];
                    log::info!(
                        variable = source.variable.as_str();
                        "{label} {} re-read from {} ({}): changed",
                        source.what, source.variable, source.path.display()
                    );
                    count(&source.variable, "changed");
                }
                state.value = value;
                state.files = files
                    .into_iter()
                    .map(|s| {
                        let print = fingerprint(&s.path);
                        (s, print)
                    })
                    .collect();
                Refresh::Changed
            }
            Err(reason) => {
                for (i, now) in &changed {
                    let (source, print) = &mut state.files[*i];
                    log::warn!(
                        variable = source.variable.as_str();
                        "{label} {} in {} ({}) changed but cannot be used, keeping the last good one: {reason}",
                        source.what, source.variable, source.path.display()
                    );
                    count(&source.variable, "rejected");
                    // Warned once: the next change is tried again.
                    *print = *now;
                }
                Refresh::Rejected(reason)
            }
        }
    }
}

/// Where a URL setting that may hold a password came from (`DATABASE_URL`
/// or `DATABASE_URL_FILE`, ...), so that it can be read again. Its `Debug`
/// shows the variables and the file, never the value.
#[derive(Clone)]
pub struct UrlSource {
    /// The variable and its `_FILE` twin: `("DATABASE_URL", "DATABASE_URL_FILE")`.
    pub variables: (&'static str, &'static str),
    /// The file the value was read from, if it was.
    pub file: Option<PathBuf>,
    /// The value given directly (empty when read from the file).
    value: String,
}

impl std::fmt::Debug for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSource")
            .field("variables", &self.variables)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl UrlSource {
    /// A secret setting read as [`crate::config::Checker::secret_or_file`]
    /// reads it (the variable that gave it, and its value), and where it
    /// came from, to read it again.
    pub(crate) fn read_setting(
        c: &mut crate::config::Checker,
        (var, value, given): (&'static str, &str, bool),
        (file_var, file): (&'static str, Option<&str>),
    ) -> (Option<(&'static str, String)>, Option<UrlSource>) {
        let read = c.secret_or_file((var, value, given), (file_var, file));
        let source = read.as_ref().map(|(gave, value)| match file {
            Some(path) if *gave == file_var => UrlSource {
                variables: (var, file_var),
                file: Some(PathBuf::from(path.trim())),
                value: String::new(),
            },
            _ => UrlSource {
                variables: (var, file_var),
                file: None,
                value: value.clone(),
            },
        });
        (read, source)
    }

    /// The value now (the file read again), and the variable that gave it;
    /// a problem is recorded in `c`.
    pub(crate) fn read(&self, c: &mut crate::config::Checker) -> Option<(&'static str, String)> {
        let (var, file_var) = self.variables;
        match &self.file {
            Some(path) => c.secret_or_file((var, "", false), (file_var, path.to_str())),
            None => Some((var, self.value.clone())),
        }
    }

    /// The file, as a [`Source`] of `what`, when the value came from one.
    pub fn watched(&self, what: &'static str) -> Option<Source> {
        let path = self.file.as_ref()?;
        Some(Source::new(self.variables.1, what, path))
    }
}

/// The reasons of a refused value, one after the other (variables and
/// values are left out: the WARN line names the file already, and a
/// value may hold a password).
pub(crate) fn reasons(problems: &[crate::config::Problem]) -> String {
    let reasons: Vec<String> = problems
        .iter()
        .map(|p| format!("{} {}", p.variable, p.reason))
        .collect();
    crate::redact::scrub(&reasons.join("; ")).into_owned()
}

#[cfg(test)]
mod tests;
