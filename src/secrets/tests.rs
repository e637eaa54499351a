//! A watched value against real files: in place, through a Kubernetes-style
//! `..data` symlink swap, and with changes that cannot be used.

use super::*;
use std::path::Path;

/// A value that is the file's content, refused when empty or `bad`.
fn watched(path: &Path) -> Arc<Watched<String>> {
    let p = path.to_owned();
    let load: Load<String> = Box::new(move || {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot be read ({e})"))?;
        match text.trim() {
            "" => Err("is empty".to_owned()),
            "bad" => Err("is bad".to_owned()),
            good => Ok((
                good.to_owned(),
                vec![Source::new("X_FILE", "credentials", &p)],
            )),
        }
    });
    let first = std::fs::read_to_string(path).unwrap();
    Watched::new(
        "DB",
        first,
        vec![Source::new("X_FILE", "credentials", path)],
        load,
    )
}

fn reloads(variable: &str, outcome: &'static str) -> u64 {
    RELOADS
        .get_or_create(&ReloadLabels {
            variable: variable.to_owned(),
            outcome,
        })
        .get()
}

#[test]
fn a_file_changed_in_place_is_taken_and_an_unusable_one_is_refused_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url");
    std::fs::write(&path, "one").unwrap();
    let w = watched(&path);
    let (changed, rejected) = (reloads("X_FILE", "changed"), reloads("X_FILE", "rejected"));
    assert_eq!(w.refresh(), Refresh::Unchanged);
    std::fs::write(&path, "two").unwrap();
    assert_eq!(w.refresh(), Refresh::Changed);
    assert_eq!(w.current(), "two");
    assert_eq!(w.refresh(), Refresh::Unchanged);
    // Refused: the last good value stays, and the same content is not
    // refused twice.
    std::fs::write(&path, "bad").unwrap();
    assert_eq!(w.refresh(), Refresh::Rejected("is bad".to_owned()));
    assert_eq!(w.current(), "two");
    assert_eq!(w.refresh(), Refresh::Unchanged);
    std::fs::write(&path, "").unwrap();
    assert_eq!(w.refresh(), Refresh::Rejected("is empty".to_owned()));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(w.refresh(), Refresh::Rejected(r) if r.starts_with("cannot be read")));
    assert_eq!(w.current(), "two");
    // A good value is taken again.
    std::fs::write(&path, "three").unwrap();
    assert_eq!(w.refresh(), Refresh::Changed);
    assert_eq!(w.current(), "three");
    // Counted (other tests may count the same labels at the same time).
    assert!(reloads("X_FILE", "changed") >= changed + 2);
    assert!(reloads("X_FILE", "rejected") >= rejected + 3);
}

#[test]
fn a_kubernetes_symlink_swap_is_a_change_even_with_the_same_mtime() {
    // /mount/url -> ..data/url, ..data -> ..2026_12_06_1; the update writes
    // ..2026_12_06_2 and renames a new ..data link over the old one.
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path();
    let write_version = |name: &str, text: &str| {
        let version = mount.join(name);
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("url"), text).unwrap();
        let file = std::fs::File::open(version.join("url")).unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        let tmp = mount.join("..data_tmp");
        std::os::unix::fs::symlink(name, &tmp).unwrap();
        std::fs::rename(&tmp, mount.join("..data")).unwrap();
    };
    write_version("..2026_12_06_1", "one");
    std::os::unix::fs::symlink("..data/url", mount.join("url")).unwrap();
    let w = watched(&mount.join("url"));
    assert_eq!(w.current(), "one");
    let before = std::fs::metadata(mount.join("url"))
        .unwrap()
        .modified()
        .unwrap();
    write_version("..2026_12_06_2", "two");
    let after = std::fs::metadata(mount.join("url"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "the swap keeps the mtime");
    assert_eq!(w.refresh(), Refresh::Changed);
    assert_eq!(w.current(), "two");
}

#[test]
fn only_the_reasons_of_problems_are_kept() {
    let problems = [crate::config::Problem {
        variable: "DATABASE_URL_FILE",
        shown: "postgres://u:hunter22@h/db".to_owned(),
        reason: "is not a valid URL".to_owned(),
        accepted: "postgres://...".to_owned(),
    }];
    let text = reasons(&problems);
    assert_eq!(text, "DATABASE_URL_FILE is not a valid URL");
}
