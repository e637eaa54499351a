//! A Kubernetes-style mounted Secret: the kubelet writes each version of
//! the Secret into a new timestamped directory (`..2026_12_06_04_01_02.1`),
//! points the `..data` symlink at it by renaming a new link over the old
//! one (atomic), and each key is a symlink `KEY -> ..data/KEY`. A reader
//! sees the old files or the new ones, never a mix; the path of a key, and
//! the symlink it is, never change.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

#[derive(Debug)]
pub struct MountedSecret {
    dir: TempDir,
    versions: u32,
}

impl MountedSecret {
    /// A mount holding `files` (key, content).
    pub fn new(files: &[(&str, &[u8])]) -> MountedSecret {
        let dir = tempfile::Builder::new()
            .prefix("readygate-secret-")
            .tempdir()
            .unwrap();
        let mut mount = MountedSecret { dir, versions: 0 };
        mount.update(files);
        for (key, _) in files {
            std::os::unix::fs::symlink(format!("..data/{key}"), mount.dir.path().join(key))
                .unwrap();
        }
        mount
    }

    /// The path of `key` in the mount (what `*_FILE` points to).
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.path().join(key)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new version of the Secret, swapped in at once (every key keeps its
    /// path; a key left out is gone from the new version). The old version's
    /// directory is removed, as the kubelet does.
    pub fn update(&mut self, files: &[(&str, &[u8])]) {
        self.versions += 1;
        let name = format!("..2026_12_06_04_00_00.{}", self.versions);
        let version = self.dir.path().join(&name);
        std::fs::create_dir(&version).unwrap();
        for (key, content) in files {
            std::fs::write(version.join(key), content).unwrap();
        }
        let data = self.dir.path().join("..data");
        let old = std::fs::read_link(&data).ok();
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.path().join(old)).unwrap();
        }
    }
}
