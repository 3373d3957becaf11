//! Resolving a path inside a directory tree as a process chrooted to it would: every component is looked up
//! under the root, absolute symlink targets restart at the root, and `..` stops at the root. What the tree's links
//! say can therefore never lead out of it, whatever they point at (a package's `/lib/x -> ../../../etc/shadow`).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Whether the last component is followed when it is a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Follow every link, the last component's too: the host path of what `inner` names.
    All,
    /// Follow the links of the directories only, so that a link at the end can itself be read, replaced or
    /// removed.
    Parents,
}

/// The kernel's own limit on links followed in one lookup.
const MAX_LINKS: u32 = 40;

/// Resolves `inner` (a path inside `root`; absolute or relative, both taken from the root) to a host path under
/// `root`. Components that do not exist are taken as they are, so the result may name nothing; more than 40
/// links is `ELOOP`.
pub fn resolve_in_root(root: &Path, inner: &Path, follow: Follow) -> io::Result<PathBuf> {
    let mut pending = parts(inner);
    let last = match follow {
        Follow::All => None,
        // Without a last component there is nothing to leave unfollowed.
        Follow::Parents => match pending.pop_back() {
            Some(name) if name != ".." => Some(name),
            _ => {
                let e = format!("{} names no file", inner.display());
                return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
            }
        },
    };
    let mut resolved = root.to_path_buf();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            if resolved != root {
                resolved.pop();
            }
            continue;
        }
        let next = resolved.join(&part);
        match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(ELOOP));
                }
                let target = fs::read_link(&next)?;
                if target.is_absolute() {
                    resolved = root.to_path_buf();
                }
                let mut rest = parts(&target);
                rest.extend(pending);
                pending = rest;
            }
            _ => resolved = next,
        }
    }
    Ok(match last {
        Some(name) => resolved.join(name),
        None => resolved,
    })
}

/// `ELOOP` on Linux (the same number on every architecture the workspace builds for).
const ELOOP: i32 = 40;

/// The normal components and `..` of a path (`/` and `.` drop out).
fn parts(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::write(root.join("usr/lib/libx.so.1"), "x").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/lib/libx.so.1", root.join("usr/lib/abs")).unwrap();
        symlink("../../../../../../usr/lib/libx.so.1", root.join("usr/lib/climb")).unwrap();
        symlink("/etc/shadow", root.join("usr/lib/secret")).unwrap();
        let x = root.join("usr/lib/libx.so.1");
        assert_eq!(resolve_in_root(root, Path::new("/lib/libx.so.1"), Follow::All).unwrap(), x);
        assert_eq!(resolve_in_root(root, Path::new("/lib/abs"), Follow::All).unwrap(), x);
        assert_eq!(resolve_in_root(root, Path::new("lib/climb"), Follow::All).unwrap(), x);
        assert_eq!(
            resolve_in_root(root, Path::new("/lib/secret"), Follow::All).unwrap(),
            root.join("etc/shadow")
        );
        assert_eq!(resolve_in_root(root, Path::new("/../../lib/abs"), Follow::All).unwrap(), x);
        // The last link is left alone when asked, the directories' links are still followed.
        assert_eq!(
            resolve_in_root(root, Path::new("/lib/abs"), Follow::Parents).unwrap(),
            root.join("usr/lib/abs")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/lib/none"), Follow::All).unwrap(),
            root.join("usr/lib/none")
        );
        assert_eq!(resolve_in_root(root, Path::new("/"), Follow::All).unwrap(), root);
        assert!(resolve_in_root(root, Path::new("/"), Follow::Parents).is_err());
    }

    #[test]
    fn link_loops_end_in_eloop() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let err = resolve_in_root(dir.path(), Path::new("/a"), Follow::All).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(40));
    }
}
