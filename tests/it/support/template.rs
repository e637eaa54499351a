//! Data directories of real servers: initialised once per machine into a
//! template (`initdb`, `mariadb-install-db` are slow), copied per server.
//! Shared by [`super::postgres`] and [`super::mariadb`].

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// `Some((uid, gid))` of `user` when the tests run as root (database
/// servers refuse to run as root); `None` otherwise. Panics naming
/// `package`, which creates the user, when it does not exist.
pub fn server_user(user: &str, package: &str) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let found = nix::unistd::User::from_name(user)
        .unwrap_or_else(|e| panic!("looking up the `{user}` user: {e}"))
        .unwrap_or_else(|| {
            panic!(
                "tests run as root but there is no `{user}` user to run the server as; \
                 `apt-get install {package}` creates it"
            )
        });
    Some((found.uid.as_raw(), found.gid.as_raw()))
}

pub fn chown(path: &Path, run_as: Option<(u32, u32)>) {
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// The template directory `temp_dir()/<name>` (suffixed with the uid when
/// not root: a template made by another user would be unreadable), made on
/// first use by `init` into a staging directory (mode 0700, owned by
/// `run_as`), which must leave something `is_ready` recognises. Safe against
/// concurrent test processes: the staging directory is renamed into place
/// atomically, and the loser of a race removes its own.
pub fn template(
    name: &str,
    run_as: Option<(u32, u32)>,
    is_ready: impl Fn(&Path) -> bool,
    init: impl FnOnce(&Path) -> Result<(), String>,
) -> PathBuf {
    let tmp = std::env::temp_dir();
    let mut name = name.to_owned();
    if run_as.is_none() {
        name.push_str(&format!("-uid{}", nix::unistd::geteuid().as_raw()));
    }
    let template = tmp.join(&name);
    if is_ready(&template) {
        return template;
    }
    if template.exists() {
        // A broken leftover (not produced by the rename below): move it
        // aside atomically so only one process deletes it.
        let trash = tmp.join(format!("{name}.trash-{}", unique_suffix()));
        if fs::rename(&template, &trash).is_ok() {
            let _ = fs::remove_dir_all(&trash);
        }
    }
    let staging = tmp.join(format!("{name}.tmp-{}", unique_suffix()));
    fs::create_dir(&staging).unwrap_or_else(|e| panic!("create {}: {e}", staging.display()));
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", staging.display()));
    chown(&staging, run_as);
    if let Err(e) = init(&staging) {
        let _ = fs::remove_dir_all(&staging);
        panic!("{e}");
    }
    if fs::rename(&staging, &template).is_err() {
        // Another process won the race; use theirs.
        let _ = fs::remove_dir_all(&staging);
        if !is_ready(&template) {
            panic!("template {} is not initialised", template.display());
        }
    }
    template
}

/// A fresh temporary directory (prefix `prefix`, traversable by `run_as`)
/// holding a copy of `template` as `data` (mode 0700, owned by `run_as`).
pub fn copy(template: &Path, prefix: &str, run_as: Option<(u32, u32)>) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap_or_else(|e| panic!("create a temp dir: {e}"));
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
    let data = dir.path().join("data");
    run("cp", Command::new("cp").arg("-a").arg(template).arg(&data));
    // `cp -a` as root keeps the template's owner; fix it only if the
    // template belongs to someone else.
    let template_uid = fs::metadata(template).map(|m| m.uid()).ok();
    if let Some((uid, gid)) = run_as
        && template_uid != Some(uid)
    {
        run(
            "chown",
            Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&data),
        );
    }
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", data.display()));
    (dir, data)
}

fn run(what: &str, cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}
