//! fhskit's package set (`<nixpkgs>`): its Nix files (embedded from `pkgs/nixpkgs/`), the pinned package records
//! the evaluator asks for ([`Source`]: from the lock file, new names resolved against the verified index and added
//! to it), and the builder of one Debian package's store path ([`build_deb_output`], `builtin:fhskit-deb`): the
//! `.deb` unpacked as it is, its ELF objects given the loader and the run path of their dependencies' store paths
//! (Debian's libraries have none), links into other packages made absolute, and nixpkgs' `bin`, `lib`, `include`
//! and `share` directories as links into the Debian tree, so that `lib.makeLibraryPath [ pkg ]` finds `pkg/lib`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cache::{Cache, write_atomic};
use crate::config::Settings;
use crate::error::{Error, Result, io};
use crate::index::SuiteIndex;
use crate::lock::{LOCK_VERSION, Lock, LockedPackage};
use crate::packages::Universe;
use crate::resolve::{Request, resolve};

include!(concat!(env!("OUT_DIR"), "/nixpkgs_files.rs"));

/// One pinned package as the evaluator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub package: LockedPackage,
    /// Its dependencies (`name:arch`) with the edges that close a dependency cycle left out, so that the
    /// derivations form a graph without cycles (Debian's `libc6` and `libgcc-s1` depend on each other).
    pub depends: Vec<String>,
}

/// The package records of one evaluation: the lock file, and the repositories' verified indexes for names it
/// does not pin yet (each such name is resolved and the lock file rewritten).
pub struct Source {
    settings: Settings,
    lock_path: PathBuf,
    lock: Option<Lock>,
    universe: Option<Universe>,
    acyclic: Option<HashMap<String, Vec<String>>>,
    names: HashMap<String, Vec<String>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("lock_path", &self.lock_path).finish()
    }
}

impl Source {
    /// A source reading and extending the lock file at `lock_path` (created when a first name is pinned).
    pub fn new(settings: Settings, lock_path: PathBuf) -> Source {
        Source { settings, lock_path, lock: None, universe: None, acyclic: None, names: HashMap::new() }
    }

    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    fn lock(&mut self) -> Result<&Lock> {
        if self.lock.is_none() {
            let lock = if self.lock_path.exists() {
                Lock::read(&self.lock_path)?
            } else {
                Lock { version: LOCK_VERSION, request: Vec::new(), packages: Vec::new() }
            };
            self.lock = Some(lock);
        }
        Ok(self.lock.as_ref().expect("set above"))
    }

    fn universe(&mut self) -> Result<&Universe> {
        if self.universe.is_none() {
            self.settings.require_repositories()?;
            let cache = Cache::new(&self.settings.cache_dir);
            self.universe = Some(Universe::load(&cache, &self.settings.repositories)?);
        }
        Ok(self.universe.as_ref().expect("set above"))
    }

    fn locked(&mut self, name: &str, arch: &str) -> Result<Option<LockedPackage>> {
        let lock = self.lock()?;
        Ok(lock.get(&format!("{name}:{arch}")).or_else(|| lock.get(&format!("{name}:all"))).cloned())
    }

    /// The record of package `name` for architecture `arch` (an `all` package serves every architecture);
    /// `None` when the repositories have no such package.
    pub fn package(&mut self, name: &str, arch: &str) -> Result<Option<Record>> {
        let found = match self.locked(name, arch)? {
            Some(p) => p,
            None => {
                if !self.pin(name, arch)? {
                    return Ok(None);
                }
                match self.locked(name, arch)? {
                    Some(p) => p,
                    None => return Ok(None),
                }
            }
        };
        if self.acyclic.is_none() {
            self.acyclic = Some(acyclic_depends(self.lock()?));
        }
        let depends = self.acyclic.as_ref().and_then(|a| a.get(&found.key())).cloned().unwrap_or_default();
        Ok(Some(Record { package: found, depends }))
    }

    /// Resolves `name:arch` with the lock as pins and adds its closure to the lock file; `false` when no package
    /// of that name exists.
    fn pin(&mut self, name: &str, arch: &str) -> Result<bool> {
        let request = Request::parse(&format!("{name}:{arch}"))?;
        let native = self.settings.architectures.first().cloned().unwrap_or_else(|| arch.to_owned());
        let lock = self.lock()?.clone();
        let universe = self.universe()?;
        if universe.named(name).is_empty() {
            return Ok(false);
        }
        let resolution = match resolve(universe, std::slice::from_ref(&request), &native, Some(&lock)) {
            Ok(r) => r,
            Err(Error::Resolve { reason, .. }) if reason.starts_with("no version for architecture") => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let new = resolution.to_lock(universe, std::slice::from_ref(&request));
        let mut merged = lock;
        let have: BTreeSet<String> = merged.packages.iter().map(LockedPackage::key).collect();
        merged.packages.extend(new.packages.into_iter().filter(|p| !have.contains(&p.key())));
        merged.packages.sort_by_key(LockedPackage::key);
        let req = request.to_string();
        if !merged.request.contains(&req) {
            merged.request.push(req);
            merged.request.sort();
        }
        merged.write(&self.lock_path)?;
        tracing::info!("pinned {name}:{arch} in {}", self.lock_path.display());
        self.lock = Some(merged);
        self.acyclic = None;
        Ok(true)
    }

    /// Every package name of `arch` (and `all`): the lock's, and the verified indexes' when they are cached.
    pub fn names(&mut self, arch: &str) -> Result<Vec<String>> {
        if let Some(n) = self.names.get(arch) {
            return Ok(n.clone());
        }
        let mut names: BTreeSet<String> = self
            .lock()?
            .packages
            .iter()
            .filter(|p| p.architecture == arch || p.architecture == "all")
            .map(|p| p.name.clone())
            .collect();
        let cache = Cache::new(&self.settings.cache_dir);
        for repo in &self.settings.repositories {
            match SuiteIndex::open(&cache, repo) {
                Ok(idx) => names.extend(index_names(&cache, &idx, arch)?),
                Err(Error::NoIndex { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let names: Vec<String> = names.into_iter().collect();
        self.names.insert(arch.to_owned(), names.clone());
        Ok(names)
    }
}

/// The package names of one suite's `Packages` files for `arch` (and `all`), read once per index version and kept
/// in the cache beside it as a plain list.
fn index_names(cache: &Cache, idx: &SuiteIndex, arch: &str) -> Result<Vec<String>> {
    let mut key = String::new();
    for (_, f) in idx.packages_files() {
        key.push_str(&f.sha256);
        key.push('\n');
    }
    let stamp = crate::index::sha256(key.as_bytes());
    let file = cache.root().join("nixpkgs-names").join(format!("{}-{arch}", &stamp[..32]));
    if let Ok(text) = std::fs::read_to_string(&file) {
        return Ok(text.lines().map(str::to_owned).collect());
    }
    let mut names = BTreeSet::new();
    for (path, f) in idx.packages_files() {
        if f.architecture != arch && f.architecture != "all" {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(io("read package index", &path))?;
        for para in crate::deb822::paragraphs(&text) {
            let a = para.get("Architecture").unwrap_or("");
            if (a == arch || a == "all")
                && let Some(n) = para.get("Package")
            {
                names.insert(n.to_owned());
            }
        }
    }
    let names: Vec<String> = names.into_iter().collect();
    let mut text = names.join("\n");
    text.push('\n');
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    }
    write_atomic(&file, text.as_bytes())?;
    Ok(names)
}

/// Each locked package's dependencies without the edges that would close a cycle: within a strongly connected
/// group of packages, an edge is kept only towards a package whose name sorts before the dependent's.
pub fn acyclic_depends(lock: &Lock) -> HashMap<String, Vec<String>> {
    let keys: Vec<String> = lock.packages.iter().map(LockedPackage::key).collect();
    let index: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let edges: Vec<Vec<usize>> = lock
        .packages
        .iter()
        .map(|p| p.depends.iter().filter_map(|d| index.get(d.as_str()).copied()).collect())
        .collect();
    let component = tarjan(&edges);
    let mut out = HashMap::new();
    for (i, p) in lock.packages.iter().enumerate() {
        let kept: Vec<String> = edges[i]
            .iter()
            .filter(|&&j| j != i && (component[j] != component[i] || keys[j] < keys[i]))
            .map(|&j| keys[j].clone())
            .collect();
        out.insert(p.key(), kept);
    }
    out
}

/// Strongly connected components (iterative Tarjan): the component number of each node.
fn tarjan(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![usize::MAX; n];
    let mut stack = Vec::new();
    let (mut next, mut ncomp) = (0, 0);
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut ei)) = work.last_mut() {
            if *ei == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if *ei < edges[v].len() {
                let w = edges[v][*ei];
                *ei += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = ncomp;
                    if w == v {
                        break;
                    }
                }
                ncomp += 1;
            }
        }
    }
    comp
}

/// A store path given to the builder: where derivations name it, and where its files are on this machine (they
/// differ in a chroot store).
#[derive(Debug, Clone)]
pub struct StoreDir {
    pub logical: String,
    pub physical: PathBuf,
}

/// What `builtin:fhskit-deb` is given.
#[derive(Debug, Clone)]
pub struct DebBuild {
    /// The `.deb` files (usually one; a nixpkgs attribute Debian splits has several), unpacked together.
    pub debs: Vec<PathBuf>,
    /// The output's own store path (logical), for its run path.
    pub out: String,
    /// The packages it depends on (their outputs).
    pub deps: Vec<StoreDir>,
    /// The C library package whose loader executables get and whose libraries every object finds; `None` for the C
    /// library itself and packages it needs (nothing is patched then).
    pub libc: Option<StoreDir>,
    /// The loader below `libc` (`lib64/ld-linux-x86-64.so.2`).
    pub loader: String,
    /// The multiarch triplet of the package (`x86_64-linux-gnu`).
    pub triplet: String,
}

fn unpack_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Unpack { path: path.to_owned(), reason: reason.into() }
}

/// Builds one Debian package's store path at `dest` (which must not exist); `log` gets a line per step.
pub fn build_deb_output(b: &DebBuild, dest: &Path, log: &mut dyn FnMut(&str)) -> Result<()> {
    std::fs::create_dir(dest).map_err(io("create directory", dest))?;
    let Some((first, rest)) = b.debs.split_first() else {
        return Err(unpack_err(dest, "no .deb file given"));
    };
    crate::deb::unpack_into(first, dest)?;
    log(&format!("unpacked {}", first.display()));
    for deb in rest {
        let parent = dest.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".fhskit-deb-")
            .tempdir_in(parent)
            .map_err(io("create temporary directory in", parent))?;
        crate::deb::unpack_into(deb, tmp.path())?;
        merge(tmp.path(), dest)?;
        log(&format!("unpacked {}", deb.display()));
    }
    absolute_links(b, dest, Path::new(""))?;
    if let Some(libc) = &b.libc {
        let patched = patch_tree(b, libc, dest, Path::new(""), log)?;
        log(&format!("set the loader and run path of {patched} ELF file(s)"));
    }
    nixpkgs_view(b, dest)?;
    write_support(b, dest)?;
    Ok(())
}

/// Moves the entries of `from` into `to`, directories merged; an entry `to` already has stays (the first package
/// of a group wins, as for its `DEBIAN/` control files).
fn merge(from: &Path, to: &Path) -> Result<()> {
    for e in std::fs::read_dir(from).map_err(io("list", from))? {
        let e = e.map_err(io("list", from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        match std::fs::symlink_metadata(&dst) {
            Err(_) => std::fs::rename(&src, &dst).map_err(io("move into place", &dst))?,
            Ok(m) if m.is_dir() && e.file_type().is_ok_and(|t| t.is_dir()) => merge(&src, &dst)?,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Links that lead out of the package to a file of a dependency become absolute links to that store path
/// (`libz.so` in zlib1g-dev points at `/lib/x86_64-linux-gnu/libz.so.1.2.13` of zlib1g), and absolute links to
/// the package's own files lead to its store path instead of the host's `/`.
fn absolute_links(b: &DebBuild, root: &Path, rel: &Path) -> Result<()> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(io("list", &dir))?;
    for e in entries {
        let e = e.map_err(io("list", &dir))?;
        let path = e.path();
        let name = rel.join(e.file_name());
        let ft = e.file_type().map_err(io("read the type of", &path))?;
        if ft.is_dir() {
            absolute_links(b, root, &name)?;
            continue;
        }
        if !ft.is_symlink() {
            continue;
        }
        let target = std::fs::read_link(&path).map_err(io("read link", &path))?;
        // The path the link means, relative to the package root.
        let meant = if target.is_absolute() {
            normalise(target.strip_prefix("/").unwrap_or(&target))
        } else {
            normalise(&rel.join(&target))
        };
        if meant.as_os_str().is_empty() {
            continue;
        }
        let to = if root.join(&meant).symlink_metadata().is_ok() {
            // Inside the package: an absolute link would lead to the host's file, so it leads to this output's.
            if !target.is_absolute() {
                continue;
            }
            format!("{}/{}", b.out, meant.display())
        } else {
            let dep = b
                .deps
                .iter()
                .chain(b.libc.iter())
                .find(|d| d.physical.join(&meant).symlink_metadata().is_ok());
            match dep {
                Some(dep) => format!("{}/{}", dep.logical, meant.display()),
                None => continue,
            }
        };
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
        std::os::unix::fs::symlink(&to, &path).map_err(io("create symlink", &path))?;
    }
    Ok(())
}

/// A path relative to the package root with `.` and `..` resolved; empty when it climbs out of the root.
fn normalise(joined: &Path) -> PathBuf {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    for c in joined.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n.to_owned()),
            std::path::Component::ParentDir if out.pop().is_none() => return PathBuf::new(),
            _ => {}
        }
    }
    out.iter().collect()
}

/// Sets the loader of executables and the run path of every dynamic ELF object below `rel`; returns how many
/// files changed.
fn patch_tree(
    b: &DebBuild,
    libc: &StoreDir,
    root: &Path,
    rel: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<usize> {
    let dir = root.join(rel);
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io("list", &dir))?
        .collect::<std::io::Result<_>>()
        .map_err(io("list", &dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let ft = e.file_type().map_err(io("read the type of", &path))?;
        if ft.is_dir() {
            n += patch_tree(b, libc, root, &rel.join(e.file_name()), log)?;
        } else if ft.is_file() {
            // A file the rewriter cannot handle stays as Debian built it.
            match patch_elf(b, libc, root, &path) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => log(&format!("warning: left {} unpatched: {e}", rel.join(e_name(&path)).display())),
            }
        }
    }
    Ok(n)
}

fn e_name(path: &Path) -> &std::ffi::OsStr {
    path.file_name().unwrap_or_default()
}

fn patch_elf(b: &DebBuild, libc: &StoreDir, root: &Path, path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(io("open", path))?;
    if f.read(&mut head).map_err(io("read", path))? < 4 || head != *b"\x7fELF" {
        return Ok(false);
    }
    drop(f);
    let data = std::fs::read(path).map_err(io("read", path))?;
    let Ok(elf) = patchelf_rs::Elf::parse(&data) else { return Ok(false) };
    if elf.check_patchable().is_err() || elf.dynamic.is_none() {
        return Ok(false);
    }
    let mut run_path: Vec<String> = Vec::new();
    // Existing entries: $ORIGIN ones stay, absolute ones move into this package.
    if let Some(old) = old_run_path(&elf) {
        for entry in old.split(':').filter(|e| !e.is_empty()) {
            if entry.starts_with("$ORIGIN") || entry.starts_with("${ORIGIN}") {
                run_path.push(entry.to_owned());
            } else if entry.starts_with('/') && root.join(&entry[1..]).exists() {
                run_path.push(format!("{}{entry}", b.out));
            }
        }
    }
    for d in std::iter::once(&b.out).chain(b.deps.iter().map(|d| &d.logical)).chain([&libc.logical]) {
        let dir = format!("{d}/lib");
        if !run_path.contains(&dir) {
            run_path.push(dir);
        }
    }
    let interp = elf
        .phdrs
        .iter()
        .any(|p| p.p_type == patchelf_rs::raw::PT_INTERP)
        .then(|| format!("{}/{}", libc.logical, b.loader).into_bytes());
    let opts = patchelf_rs::Options {
        set_interpreter: interp,
        rpath: Some(patchelf_rs::RpathOp::Set(run_path.join(":").into_bytes())),
        clobber_old_sections: true,
        ..Default::default()
    };
    let bad = |e: patchelf_rs::Error| unpack_err(path, format!("cannot patch: {e}"));
    let mut ed = patchelf_rs::Editor::new(&elf, false);
    ed.run(&opts, &mut std::io::sink(), &mut std::io::sink()).map_err(bad)?;
    let page = patchelf_rs::elf::default_page_size(elf.ehdr.e_machine);
    let rw = patchelf_rs::layout::plan(&ed, page, true, &mut std::io::sink(), false).map_err(bad)?;
    if rw.is_noop(&data) {
        return Ok(false);
    }
    let mode = std::fs::metadata(path).map_err(io("read metadata of", path))?.permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o200))
        .map_err(io("set the mode of", path))?;
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(io("open", path))?;
    patchelf_rs::output::write(&mut file, data.len() as u64, path, &rw).map_err(bad)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("set the mode of", path))?;
    Ok(true)
}

/// `DT_RUNPATH` (else `DT_RPATH`) of an object.
fn old_run_path(elf: &patchelf_rs::Elf<'_>) -> Option<String> {
    const DT_RPATH: u64 = 15;
    const DT_RUNPATH: u64 = 29;
    let off = elf.dyn_val(DT_RUNPATH).or_else(|| elf.dyn_val(DT_RPATH))? as usize;
    let table = elf.dynstr().ok()?;
    let s = table.get(off..)?;
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// nixpkgs' layout over Debian's: `bin`, `lib`, `include` and `share` at the top, each entry a relative link into
/// the Debian directory that holds it (the first one wins). Every package's `lib` also links the C library's
/// libraries, which nixpkgs' loader finds by itself and Debian's loader would look for on the host.
fn nixpkgs_view(b: &DebBuild, dest: &Path) -> Result<()> {
    let t = &b.triplet;
    let views: [(&str, Vec<String>); 4] = [
        ("bin", vec!["usr/bin".into(), "bin".into(), "usr/sbin".into(), "sbin".into()]),
        ("lib", vec![format!("lib/{t}"), format!("usr/lib/{t}"), "usr/lib".into()]),
        ("include", vec!["usr/include".into()]),
        ("share", vec!["usr/share".into()]),
    ];
    for (name, sources) in views {
        let view = dest.join(name);
        for src in sources {
            let from = dest.join(&src);
            let Ok(entries) = std::fs::read_dir(&from) else { continue };
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                // usr/lib's own triplet directory and its private trees are not libraries of the package.
                if src == "usr/lib" && (e.file_name() == t.as_str() || !is_library_name(&e.file_name())) {
                    continue;
                }
                make_dir(&view)?;
                let link = view.join(e.file_name());
                if link.symlink_metadata().is_ok() {
                    continue;
                }
                let to = Path::new("..").join(&src).join(e.file_name());
                std::os::unix::fs::symlink(&to, &link).map_err(io("create symlink", &link))?;
            }
        }
    }
    if let Some(libc) = &b.libc {
        let libs = libc.physical.join("lib");
        if let Ok(entries) = std::fs::read_dir(&libs) {
            let view = dest.join("lib");
            for e in entries.flatten() {
                let name = e.file_name();
                if !is_library_name(&name) {
                    continue;
                }
                make_dir(&view)?;
                let link = view.join(&name);
                if link.symlink_metadata().is_ok() {
                    continue;
                }
                let to = format!("{}/lib/{}", libc.logical, name.to_string_lossy());
                std::os::unix::fs::symlink(&to, &link).map_err(io("create symlink", &link))?;
            }
        }
    }
    Ok(())
}

fn is_library_name(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    (n.starts_with("lib") || n.starts_with("ld-")) && n.contains(".so")
}

fn make_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(unpack_err(dir, "exists and is not a directory")),
        Err(_) => std::fs::create_dir(dir).map_err(io("create directory", dir)),
    }
}

/// `nix-support/propagated-build-inputs` (as nixpkgs' setup script reads it) and `nix-support/debian-depends`: the
/// store paths of the dependencies, so the closure is known from the store without evaluating anything.
fn write_support(b: &DebBuild, dest: &Path) -> Result<()> {
    if b.deps.is_empty() {
        return Ok(());
    }
    let dir = dest.join("nix-support");
    make_dir(&dir)?;
    let text: Vec<&str> = b.deps.iter().map(|d| d.logical.as_str()).collect();
    for name in ["propagated-build-inputs", "debian-depends"] {
        let file = dir.join(name);
        std::fs::write(&file, format!("{}\n", text.join(" "))).map_err(io("write", &file))?;
    }
    Ok(())
}

/// The embedded files as a map (path → contents), for writing them out.
pub fn files() -> BTreeMap<&'static str, &'static [u8]> {
    FILES.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, deps: &[&str]) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: "1".into(),
            architecture: "amd64".into(),
            repository: "http://127.0.0.1:1".into(),
            suite: "s".into(),
            filename: format!("pool/{name}.deb"),
            size: 1,
            sha256: "0".repeat(64),
            depends: deps.iter().map(|d| format!("{d}:amd64")).collect(),
            component: String::new(),
        }
    }

    #[test]
    fn cycles_are_broken_towards_the_earlier_name() {
        let lock = Lock {
            version: LOCK_VERSION,
            request: vec![],
            packages: vec![
                pkg("libc6", &["libgcc-s1"]),
                pkg("libgcc-s1", &["libc6"]),
                pkg("zlib1g", &["libc6"]),
                pkg("a", &["b"]),
                pkg("b", &["c"]),
                pkg("c", &["a", "zlib1g"]),
            ],
        };
        let d = acyclic_depends(&lock);
        assert_eq!(d["libc6:amd64"], Vec::<String>::new());
        assert_eq!(d["libgcc-s1:amd64"], ["libc6:amd64"]);
        assert_eq!(d["zlib1g:amd64"], ["libc6:amd64"]);
        assert_eq!(d["a:amd64"], Vec::<String>::new());
        assert_eq!(d["b:amd64"], Vec::<String>::new());
        assert_eq!(d["c:amd64"], ["a:amd64", "zlib1g:amd64"]);
    }

    #[test]
    fn the_package_set_is_embedded() {
        assert!(files().contains_key("default.nix"));
    }
}
