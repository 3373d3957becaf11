//! `builtin:fhskit-root`, fhskit's own builder of the FHS tree a build sees at its root (the `fhskitRoot`
//! attribute of the package set's `stdenv.mkDerivation`): the union of unpacked Debian packages laid out exactly
//! as dpkg would install them (`usr/lib/x86_64-linux-gnu/…`, `lib64/ld-linux-x86-64.so.2`, `bin/…`), so Debian's
//! gcc, make and bash run unmodified.
//!
//! Env `paths`: whitespace-separated store paths. The tree holds these and the closure of their store references
//! (breadth first, in the order given); the first package providing a path wins. Directories are merged as real
//! directories; a regular file becomes an absolute link to the package's file; a link is copied as it is, so a
//! relative link into another package (`gcc → gcc-12`, `libz.so → libz.so.1.2.13`) resolves inside the tree as it
//! does on an installed system. Documentation (`usr/share/{doc,man,info}`), dpkg's `DEBIAN` control directory,
//! `nix-support` and the package set's views (top-level `include`, `share`, and its links in `bin`, `lib`) are left
//! out. Runs in the builder's process (no sandbox: it only writes links), like Nix's `builtin:buildenv`; Nix
//! itself cannot build it.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use store::{Derivation, Store, StorePath};

/// Top-level entries of a package that are not part of its installed tree: dpkg's control files, Nix's support
/// files, and the package set's nixpkgs-style `include` and `share` views (links into `usr/`, which the tree has).
const SKIP_TOP: &[&str] = &["DEBIAN", "nix-support", "env-vars", "include", "share"];
/// Directories not linked (documentation a build does not read).
const SKIP_DIRS: &[&str] = &["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian"];

/// Builds the tree into `dest` (which must not exist). Errors are log text.
pub(crate) fn build(
    store: &Store,
    drv: &Derivation,
    dest: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let paths = drv.env.get("paths").ok_or("attribute 'paths' missing")?;
    let mut queue: VecDeque<StorePath> = VecDeque::new();
    for p in paths.split_whitespace() {
        let path = store.parse_path(p).map_err(|e| format!("path '{p}' in 'paths': {e}"))?;
        queue.push_back(path);
    }
    let mut seen: HashSet<StorePath> = HashSet::new();
    let mut order: Vec<StorePath> = Vec::new();
    while let Some(p) = queue.pop_front() {
        if !seen.insert(p.clone()) {
            continue;
        }
        let info = store
            .path_info(&p)
            .map_err(|e| format!("cannot read the references of '{p}': {e}"))?
            .ok_or_else(|| format!("path '{p}' is not valid"))?;
        queue.extend(info.references.into_iter().filter(|r| !seen.contains(r)));
        order.push(p);
    }
    fs::create_dir(dest).map_err(|e| format!("cannot create '{}': {e}", dest.display()))?;
    let mut tree = Tree { dest, links: 0, conflicts: 0 };
    for p in &order {
        let physical = store.physical_path(p);
        if !fs::symlink_metadata(&physical).is_ok_and(|m| m.is_dir()) {
            continue; // a single file (a source, a script): nothing to lay out
        }
        tree.merge(&physical, &PathBuf::from(p.to_string()), Path::new(""))?;
    }
    log(&format!(
        "fhskit-root: {} packages, {} links, {} paths provided twice (first kept)",
        order.len(),
        tree.links,
        tree.conflicts
    ));
    Ok(())
}

struct Tree<'a> {
    dest: &'a Path,
    links: usize,
    conflicts: usize,
}

impl Tree<'_> {
    /// Merges the directory `rel` of a package (`physical` on this host, `logical` as the store names it).
    fn merge(&mut self, physical: &Path, logical: &Path, rel: &Path) -> Result<(), String> {
        let dir = physical.join(rel);
        let mut entries: Vec<(OsString, fs::FileType)> = fs::read_dir(&dir)
            .map_err(|e| format!("cannot read directory '{}': {e}", dir.display()))?
            .map(|e| {
                let e = e.map_err(|e| format!("cannot read directory '{}': {e}", dir.display()))?;
                let t =
                    e.file_type().map_err(|err| format!("cannot read '{}': {err}", e.path().display()))?;
                Ok((e.file_name(), t))
            })
            .collect::<Result<_, String>>()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind) in entries {
            let rel = rel.join(&name);
            if rel.parent() == Some(Path::new("")) && SKIP_TOP.iter().any(|s| name.as_bytes() == s.as_bytes())
            {
                continue;
            }
            if SKIP_DIRS.iter().any(|s| rel == Path::new(s)) {
                continue;
            }
            if kind.is_symlink() && is_view_link(physical, logical, &rel) {
                continue;
            }
            let target = self.dest.join(&rel);
            let existing = fs::symlink_metadata(&target).ok();
            if kind.is_dir() {
                match existing {
                    None => fs::create_dir(&target)
                        .map_err(|e| format!("cannot create '{}': {e}", target.display()))?,
                    Some(m) if m.is_dir() => {}
                    Some(_) => {
                        self.conflicts += 1;
                        continue;
                    }
                }
                self.merge(physical, logical, &rel)?;
            } else if existing.is_some() {
                self.conflicts += 1;
            } else if kind.is_symlink() {
                let source = physical.join(&rel);
                let to = fs::read_link(&source)
                    .map_err(|e| format!("cannot read link '{}': {e}", source.display()))?;
                symlink(&to, &target).map_err(|e| format!("cannot create '{}': {e}", target.display()))?;
                self.links += 1;
            } else {
                symlink(logical.join(&rel), &target)
                    .map_err(|e| format!("cannot create '{}': {e}", target.display()))?;
                self.links += 1;
            }
        }
        Ok(())
    }
}

/// Whether `rel` is one of the package set's nixpkgs-style view links (`bin/gcc → ../usr/bin/gcc`,
/// `lib/libz.so.1 → ../usr/lib/x86_64-linux-gnu/libz.so.1`, `lib/libc.so.6 → <libc6>/lib/libc.so.6`): a link
/// directly in the top-level `bin` or `lib` that leads back into the package or into the store. The tree has
/// the files where Debian put them; Debian's own links there (`bin/sh → dash`) stay.
fn is_view_link(physical: &Path, logical: &Path, rel: &Path) -> bool {
    let mut parts = rel.components();
    let top = parts.next().map(|c| c.as_os_str().to_owned());
    if parts.clone().count() != 1 || !top.is_some_and(|t| t == "bin" || t == "lib") {
        return false;
    }
    let Ok(to) = fs::read_link(physical.join(rel)) else { return false };
    let store_dir = logical.parent().unwrap_or(Path::new("/"));
    to.starts_with("..") || (to.is_absolute() && to.starts_with(store_dir))
}
