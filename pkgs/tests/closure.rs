//! The library closure resolver (`pkgs::closure`) on synthetic packages: ELF images written by this test (no C
//! compiler), a fake host root with a dpkg database, and a repository given as an in-memory `Packages` text and
//! soname index, realised by copying prepared package trees. Needs neither root nor network.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use patchelf_rs::dynamic::Class;
use pkgs::closure::{self, Need, Needs, OptionalGroup, Origin, Realiser, Reason, RepoSource, Sources};
use pkgs::config::{Keys, Repository};
use pkgs::host::{HostDb, Installed};
use pkgs::lock::Lock;
use pkgs::packages::Universe;
use pkgs::realise::Realised;

const EM_X86_64: u16 = 62;
const LIBDIR: &str = "usr/lib/x86_64-linux-gnu";

/// A little-endian ELF image with a dynamic segment: a shared object, or an executable with `interp`.
fn elf(
    class: Class,
    interp: Option<&str>,
    soname: Option<&str>,
    needed: &[&str],
    runpath: Option<&str>,
) -> Vec<u8> {
    let is64 = class == Class::Elf64;
    let (ehsz, phsz, dsz) = if is64 { (64u64, 56u64, 16u64) } else { (52, 32, 8) };
    let machine: u16 = if is64 { EM_X86_64 } else { 3 };
    let nph = if interp.is_some() { 3 } else { 2 };
    let mut strtab = vec![0u8];
    let mut add = |s: &str| {
        let off = strtab.len() as u64;
        strtab.extend_from_slice(s.as_bytes());
        strtab.push(0);
        off
    };
    let mut dyns: Vec<(u64, u64)> = needed.iter().map(|n| (1, add(n))).collect();
    if let Some(s) = soname {
        dyns.push((14, add(s)));
    }
    if let Some(r) = runpath {
        dyns.push((29, add(r)));
    }
    let interp_bytes = interp.map(|i| format!("{i}\0").into_bytes()).unwrap_or_default();
    let interp_off = ehsz + nph * phsz;
    let str_off = interp_off + interp_bytes.len() as u64;
    let dyn_off = (str_off + strtab.len() as u64 + 7) & !7;
    dyns.push((5, str_off));
    dyns.push((10, strtab.len() as u64));
    dyns.push((0, 0));
    let total = dyn_off + dyns.len() as u64 * dsz;
    let mut out = Vec::new();
    let word = |out: &mut Vec<u8>, v: u64| {
        if is64 {
            out.extend_from_slice(&v.to_le_bytes())
        } else {
            out.extend_from_slice(&(v as u32).to_le_bytes())
        }
    };
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[if is64 { 2 } else { 1 }, 1, 1]);
    out.resize(16, 0);
    out.extend_from_slice(&(if interp.is_some() { 2u16 } else { 3u16 }).to_le_bytes());
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    word(&mut out, 0);
    word(&mut out, ehsz);
    word(&mut out, 0);
    out.extend_from_slice(&0u32.to_le_bytes());
    for v in [ehsz as u16, phsz as u16, nph as u16, 0, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let phdr = |out: &mut Vec<u8>, p_type: u32, off: u64, size: u64| {
        if is64 {
            out.extend_from_slice(&p_type.to_le_bytes());
            out.extend_from_slice(&6u32.to_le_bytes());
            for v in [off, off, off, size, size, 8] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            for v in [p_type as u64, off, off, off, size, size, 6, 4] {
                out.extend_from_slice(&(v as u32).to_le_bytes());
            }
        }
    };
    phdr(&mut out, 1, 0, total);
    phdr(&mut out, 2, dyn_off, dyns.len() as u64 * dsz);
    if interp.is_some() {
        phdr(&mut out, 3, interp_off, interp_bytes.len() as u64);
    }
    out.extend_from_slice(&interp_bytes);
    out.extend_from_slice(&strtab);
    out.resize(dyn_off as usize, 0);
    for (tag, val) in dyns {
        word(&mut out, tag);
        word(&mut out, val);
    }
    out
}

fn lib(soname: &str, needed: &[&str]) -> Vec<u8> {
    elf(Class::Elf64, None, Some(soname), needed, None)
}

enum Entry<'a> {
    File(&'a str, Vec<u8>),
    Link(&'a str, &'a str),
}

fn write_tree(root: &Path, entries: Vec<Entry<'_>>) {
    for e in entries {
        match e {
            Entry::File(rel, data) => {
                let p = root.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, data).unwrap();
            }
            Entry::Link(rel, target) => {
                let p = root.join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, &p).unwrap();
            }
        }
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    let meta = std::fs::symlink_metadata(src).unwrap();
    if meta.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src).unwrap(), dst).unwrap();
    } else if meta.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        std::fs::copy(src, dst).unwrap();
    }
}

/// Realises packages by copying prepared trees (`trees/<name>`), and host packages with the real host copy.
struct Trees {
    trees: PathBuf,
    out: PathBuf,
    realised: Vec<String>,
}

impl Realiser for Trees {
    fn realise(&mut self, lock: &Lock) -> pkgs::Result<Vec<Realised>> {
        let mut done = Vec::new();
        for p in &lock.packages {
            let tree = tree_name(&p.name, &p.architecture);
            let dest = self.out.join(format!("repo-{tree}"));
            if !dest.exists() {
                copy_tree(&self.trees.join(&tree), &dest);
                self.realised.push(p.key());
            }
            done.push(Realised {
                package: p.key(),
                version: p.version.clone(),
                location: dest.display().to_string(),
                from_host: false,
            });
        }
        Ok(done)
    }

    fn copy_host(&mut self, db: &HostDb, pkg: &Installed) -> pkgs::Result<Realised> {
        let dest = self.out.join(format!("host-{}", pkg.name));
        std::fs::create_dir_all(&dest).unwrap();
        if let Err(e) = db.copy_package(pkg, &dest) {
            std::fs::remove_dir_all(&dest).unwrap();
            return Err(e);
        }
        Ok(Realised {
            package: format!("{}:{}", pkg.name, pkg.architecture),
            version: pkg.version.clone(),
            location: dest.display().to_string(),
            from_host: true,
        })
    }

    fn dir(&self, location: &str) -> pkgs::Result<PathBuf> {
        Ok(PathBuf::from(location))
    }
}

fn repository() -> Repository {
    Repository {
        url: "http://127.0.0.1:9/debian".into(),
        suite: "testing".into(),
        components: vec!["main".into()],
        architectures: vec!["amd64".into()],
        keys: Keys::HostTrusted,
        origin: "test".into(),
    }
}

fn stanza(name: &str, arch: &str, extra: &str) -> String {
    format!(
        "Package: {name}\nVersion: 1.0-1\nArchitecture: {arch}\nMulti-Arch: same\n{extra}Filename: pool/{name}_{arch}.deb\nSize: 1\nSHA256: {}\n\n",
        "0".repeat(64)
    )
}

/// The directory of a package's tree: its name for amd64, `name-arch` for others.
fn tree_name(name: &str, arch: &str) -> String {
    if arch == "amd64" { name.to_owned() } else { format!("{name}-{arch}") }
}

/// A repository: package trees, their `Packages` stanzas and `Contents` lines (derived from the trees).
struct Repo {
    dir: tempfile::TempDir,
    packages: String,
}

impl Repo {
    fn new() -> Repo {
        Repo { dir: tempfile::tempdir().unwrap(), packages: String::new() }
    }

    fn add(&mut self, name: &str, control: &str, entries: Vec<Entry<'_>>) {
        self.add_for("amd64", name, control, entries);
    }

    fn add_for(&mut self, arch: &str, name: &str, control: &str, entries: Vec<Entry<'_>>) {
        write_tree(&self.dir.path().join("trees").join(tree_name(name, arch)), entries);
        self.packages.push_str(&stanza(name, arch, control));
    }

    /// The `Contents` index of one architecture.
    fn contents(&self, arch: &str) -> String {
        let mut lines = Vec::new();
        let trees = self.dir.path().join("trees");
        for pkg in std::fs::read_dir(&trees).unwrap() {
            let pkg = pkg.unwrap();
            let dir = pkg.file_name().to_string_lossy().into_owned();
            let name = match dir.strip_suffix(&format!("-{arch}")) {
                Some(n) if arch != "amd64" => n.to_owned(),
                _ if arch == "amd64" && !dir.ends_with("-i386") => dir,
                _ => continue,
            };
            let mut stack = vec![pkg.path()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let e = e.unwrap();
                    let rel = e.path().strip_prefix(pkg.path()).unwrap().display().to_string();
                    if rel.starts_with("DEBIAN") {
                        continue;
                    }
                    if e.file_type().unwrap().is_dir() {
                        stack.push(e.path());
                    } else {
                        lines.push(format!("{rel}   libs/{name}"));
                    }
                }
            }
        }
        lines.sort();
        lines.join("\n") + "\n"
    }

    fn source(&self) -> RepoSource {
        let mut indexes = Vec::new();
        for arch in ["amd64", "i386"] {
            let idx_path = self.dir.path().join(format!("soname-{arch}.idx"));
            pkgs::soname::build(self.contents(arch).as_bytes(), &idx_path).unwrap();
            indexes.push((arch.to_owned(), pkgs::soname::SonameIndex::open(&idx_path).unwrap()));
        }
        let mut repository = repository();
        repository.architectures.push("i386".into());
        let universe = Universe::from_texts(vec![repository], &[(0, &self.packages)]);
        RepoSource::from_parts(universe, indexes)
    }

    fn realiser(&self) -> Trees {
        let out = self.dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        Trees { trees: self.dir.path().join("trees"), out, realised: Vec::new() }
    }
}

fn soname(s: &str) -> Need {
    Need::Soname(Class::Elf64, s.to_owned())
}

fn needs(required: &[Need]) -> Needs {
    Needs { machine: EM_X86_64, required: required.iter().cloned().collect(), ..Needs::default() }
}

/// A C library package: the loader behind an absolute link (as Debian's libc6 ships it) and libc.
fn libc6(repo: &mut Repo) {
    repo.add(
        "libc6",
        "",
        vec![
            Entry::File(&format!("{LIBDIR}/ld-linux-x86-64.so.2"), lib("ld-linux-x86-64.so.2", &[])),
            Entry::Link("lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            Entry::File(&format!("{LIBDIR}/libc.so.6"), lib("libc.so.6", &["ld-linux-x86-64.so.2"])),
        ],
    );
}

#[test]
fn alternatives_run_paths_private_libraries_and_optional_groups() {
    let mut repo = Repo::new();
    libc6(&mut repo);
    let blas_postinst = |dir: &str, prio: u32| {
        format!(
            "#!/bin/sh\nupdate-alternatives --install /usr/lib/x86_64-linux-gnu/libblas.so.3 \\\n  libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/{dir}/libblas.so.3 {prio}\n"
        )
    };
    repo.add(
        "libblas3",
        "Provides: libblas.so.3\nDepends: libc6\n",
        vec![
            Entry::File(&format!("{LIBDIR}/blas/libblas.so.3"), lib("libblas.so.3", &["libc.so.6"])),
            Entry::File("DEBIAN/postinst", blas_postinst("blas", 10).into_bytes()),
        ],
    );
    repo.add(
        "libopenblas0-pthread",
        "Provides: libblas.so.3\n",
        vec![
            Entry::File(&format!("{LIBDIR}/openblas-pthread/libblas.so.3"), lib("libblas.so.3", &[])),
            Entry::File(&format!("{LIBDIR}/libopenblas.so.0"), lib("libopenblas.so.0", &[])),
            Entry::File("DEBIAN/postinst", blas_postinst("openblas-pthread", 100).into_bytes()),
        ],
    );
    repo.add(
        "libpulse0",
        "",
        vec![
            Entry::File(
                &format!("{LIBDIR}/libpulse.so.0.24.2"),
                elf(
                    Class::Elf64,
                    None,
                    Some("libpulse.so.0"),
                    &["libpulsecommon-16.1.so", "libc.so.6"],
                    Some("/usr/lib/x86_64-linux-gnu/pulseaudio"),
                ),
            ),
            Entry::Link(&format!("{LIBDIR}/libpulse.so.0"), "libpulse.so.0.24.2"),
            Entry::File(
                &format!("{LIBDIR}/pulseaudio/libpulsecommon-16.1.so"),
                lib("libpulsecommon-16.1.so", &["libc.so.6"]),
            ),
        ],
    );
    repo.add(
        "libfancy1",
        "",
        vec![Entry::File(&format!("{LIBDIR}/libfancy.so.1"), lib("libfancy.so.1", &["libgone.so.9"]))],
    );
    repo.add("firefox", "", vec![Entry::File("usr/lib/firefox/libmozgtk.so", lib("libmozgtk.so", &[]))]);
    repo.add(
        "bash",
        "",
        vec![Entry::File(
            "usr/bin/bash",
            elf(Class::Elf64, Some("/lib64/ld-linux-x86-64.so.2"), None, &["libc.so.6"], None),
        )],
    );

    // One need of each kind; libblas.so.3 is only reachable through the alternatives link.
    let mut n = needs(&[soname("libblas.so.3"), soname("libpulse.so.0"), Need::Path("/bin/bash".into())]);
    n.optional.push(OptionalGroup {
        label: "libfancy.so.1 (dlopen list)".into(),
        needs: [soname("libfancy.so.1")].into(),
    });
    let mut sources = Sources { host: None, repo: Ok(repo.source()) };
    let mut realiser = repo.realiser();
    let c = closure::resolve(&n, &mut sources, &mut realiser).unwrap();
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    let blas = c.file(Class::Elf64, "libblas.so.3").unwrap();
    assert!(blas.ends_with("repo-libblas3/usr/lib/x86_64-linux-gnu/blas/libblas.so.3"), "{}", blas.display());
    let dirs = c.lib_dirs(Class::Elf64);
    assert!(dirs.iter().any(|d| d.ends_with("repo-libblas3/usr/lib/x86_64-linux-gnu/blas")), "{dirs:?}");
    assert!(
        dirs.iter().any(|d| d.ends_with("repo-libpulse0/usr/lib/x86_64-linux-gnu/pulseaudio")),
        "{dirs:?}"
    );
    assert!(
        c.file(Class::Elf64, "libpulsecommon-16.1.so").is_some(),
        "the library's own run path inside its package"
    );
    let loader = c.file(Class::Elf64, "ld-linux-x86-64.so.2").unwrap();
    assert!(loader.starts_with(realiser.out.join("repo-libc6")), "absolute link resolved inside the package");
    assert!(c.file_for(&Need::Path("/bin/bash".into())).unwrap().ends_with("repo-bash/usr/bin/bash"));
    let links = c.links();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].0, Path::new("usr/lib/x86_64-linux-gnu/libblas.so.3"));
    // The optional library whose own need nothing provides is left out whole: reported, not fatal, not offered.
    assert_eq!(c.left_out.len(), 1);
    assert_eq!(c.left_out[0].label, "libfancy.so.1 (dlopen list)");
    assert_eq!(c.left_out[0].missing.need, soname("libgone.so.9"));
    assert_eq!(c.left_out[0].missing.reason, Reason::NotInRepositories);
    assert!(c.file(Class::Elf64, "libfancy.so.1").is_none());
    let keys: BTreeSet<&str> = c.packages.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains("libc6:amd64") && keys.contains("libpulse0:amd64") && keys.contains("bash:amd64"));
    assert!(c.packages.iter().all(|p| p.origin == Origin::Repository));
    let blas_pkg = c.packages.iter().find(|p| p.key == "libblas3:amd64").unwrap();
    assert!(blas_pkg.provides.contains("libblas.so.3"), "{:?}", blas_pkg.provides);

    // With OpenBLAS in the closure too, the higher priority wins, as `update-alternatives --auto` would choose.
    let n = needs(&[soname("libblas.so.3"), soname("libopenblas.so.0")]);
    let mut sources = Sources { host: None, repo: Ok(repo.source()) };
    let c = closure::resolve(&n, &mut sources, &mut repo.realiser()).unwrap();
    let blas = c.file(Class::Elf64, "libblas.so.3").unwrap();
    assert!(blas.ends_with("openblas-pthread/libblas.so.3"), "{}", blas.display());

    // Required needs nothing provides are fatal, each with its reason.
    let mut n = needs(&[soname("libmozgtk.so"), soname("libnothere.so.1")]);
    n.needed_by.insert(soname("libnothere.so.1"), [PathBuf::from("/opt/app/app")].into());
    let mut sources = Sources { host: None, repo: Ok(repo.source()) };
    let c = closure::resolve(&n, &mut sources, &mut repo.realiser()).unwrap();
    assert_eq!(c.missing.len(), 2, "{:?}", c.missing);
    let moz = c.missing.iter().find(|m| m.need == soname("libmozgtk.so")).unwrap();
    assert_eq!(moz.reason, Reason::OnlyPrivate(vec!["firefox".into()]));
    let none = c.missing.iter().find(|m| m.need == soname("libnothere.so.1")).unwrap();
    assert_eq!(none.reason, Reason::NotInRepositories);
    assert_eq!(none.needed_by, [PathBuf::from("/opt/app/app")]);
    assert!(none.reason.to_string().contains("no package in the configured repositories ships it"));

    // A required need reached only through an optional one becomes required as well when asked for directly.
    let mut n = needs(&[soname("libfancy.so.1")]);
    n.optional.push(OptionalGroup { label: "x".into(), needs: [soname("libfancy.so.1")].into() });
    let mut sources = Sources { host: None, repo: Ok(repo.source()) };
    let c = closure::resolve(&n, &mut sources, &mut repo.realiser()).unwrap();
    assert_eq!(c.missing.len(), 1);
    assert_eq!(c.missing[0].need, soname("libgone.so.9"));
}

/// A fake host root: a dpkg database with `packages` (name, files relative to `/`, files listed but not on disk).
fn host_root(dir: &Path, packages: &[(&str, Vec<Entry<'_>>, &[&str])]) {
    let info = dir.join("var/lib/dpkg/info");
    std::fs::create_dir_all(&info).unwrap();
    let mut status = String::new();
    for (name, entries, absent) in packages {
        let rels: Vec<String> = entries
            .iter()
            .map(|e| match e {
                Entry::File(r, _) | Entry::Link(r, _) => (*r).to_owned(),
            })
            .collect();
        let mut sums = String::new();
        for e in entries {
            if let Entry::File(r, data) = e {
                use md5::{Digest, Md5};
                let sum: String = Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect();
                sums.push_str(&format!("{sum}  {r}\n"));
            }
        }
        for a in *absent {
            sums.push_str(&format!("{}  {a}\n", "0".repeat(32)));
        }
        let list: String = rels
            .iter()
            .chain(absent.iter().map(|a| a.to_string()).collect::<Vec<_>>().iter())
            .map(|r| format!("/{r}\n"))
            .collect();
        std::fs::write(info.join(format!("{name}:amd64.list")), list).unwrap();
        std::fs::write(info.join(format!("{name}:amd64.md5sums")), sums).unwrap();
        status.push_str(&format!(
            "Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\nMulti-Arch: same\n\n"
        ));
        write_tree(
            dir,
            entries
                .iter()
                .map(|e| match e {
                    Entry::File(r, d) => Entry::File(r, d.clone()),
                    Entry::Link(r, t) => Entry::Link(r, t),
                })
                .collect(),
        );
    }
    std::fs::write(dir.join("var/lib/dpkg/status"), status).unwrap();
}

#[test]
fn host_packages_first_and_a_broken_host_package_falls_back_to_the_repository() {
    let host = tempfile::tempdir().unwrap();
    let foo = format!("{LIBDIR}/libfoo.so.1");
    let bar = format!("{LIBDIR}/libbar.so.2");
    host_root(
        host.path(),
        &[
            ("libfoo1", vec![Entry::File(&foo, lib("libfoo.so.1", &["libbar.so.2"]))], &[]),
            // libbar2's documentation was deleted from the host: copying it fails its checks.
            ("libbar2", vec![Entry::File(&bar, lib("libbar.so.2", &[]))], &["usr/share/doc/libbar2/README"]),
        ],
    );
    let mut repo = Repo::new();
    repo.add("libbar2", "", vec![Entry::File(&bar, lib("libbar.so.2", &[]))]);
    let mut sources =
        Sources { host: closure::HostSource::load(host.path()).unwrap(), repo: Ok(repo.source()) };
    let mut realiser = repo.realiser();
    let c = closure::resolve(&needs(&[soname("libfoo.so.1")]), &mut sources, &mut realiser).unwrap();
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    let origin = |key: &str| c.packages.iter().find(|p| p.key == key).map(|p| p.origin);
    assert_eq!(origin("libfoo1:amd64"), Some(Origin::Host));
    assert_eq!(origin("libbar2:amd64"), Some(Origin::Repository));
    assert_eq!(realiser.realised, ["libbar2:amd64"]);

    // Offline, the broken host package leaves the need unmet with the reason.
    let mut sources =
        Sources { host: closure::HostSource::load(host.path()).unwrap(), repo: Err(Reason::Offline) };
    let c = closure::resolve(&needs(&[soname("libfoo.so.1")]), &mut sources, &mut repo.realiser()).unwrap();
    assert_eq!(c.missing.len(), 1);
    assert_eq!(c.missing[0].need, soname("libbar.so.2"));
    assert_eq!(c.missing[0].reason, Reason::Offline);
    assert!(c.missing[0].needed_by[0].ends_with("libfoo.so.1"), "{:?}", c.missing[0].needed_by);
}

#[test]
fn each_unusable_source_has_its_own_reason() {
    let empty = Repo::new();
    // No repository at all.
    let mut sources =
        Sources { host: None, repo: Ok(RepoSource::from_parts(Universe::default(), Vec::new())) };
    let c = closure::resolve(&needs(&[soname("libz.so.1")]), &mut sources, &mut empty.realiser()).unwrap();
    assert_eq!(c.missing[0].reason, Reason::NoRepository);
    // A configured repository whose index was never downloaded.
    let cache = pkgs::cache::Cache::new(empty.dir.path().join("cache"));
    let mut sources = Sources { host: None, repo: Ok(RepoSource::open(cache, vec![repository()])) };
    let c = closure::resolve(&needs(&[soname("libz.so.1")]), &mut sources, &mut empty.realiser()).unwrap();
    let Reason::NoIndex(repos) = &c.missing[0].reason else { panic!("{:?}", c.missing) };
    assert_eq!(repos, &["http://127.0.0.1:9/debian testing"]);
    assert!(c.missing[0].reason.to_string().contains("never downloaded"));
    // Ignored needs are neither resolved nor reported.
    let mut n = needs(&[soname("libcuda.so.1")]);
    n.ignore.push("libcuda*".into());
    let c = closure::resolve(&n, &mut sources, &mut empty.realiser()).unwrap();
    assert!(c.missing.is_empty());
}

#[test]
fn commands_and_packages_by_name() {
    let mut repo = Repo::new();
    libc6(&mut repo);
    repo.add(
        "grep",
        "Depends: libc6\n",
        vec![Entry::File(
            "bin/grep",
            elf(Class::Elf64, Some("/lib64/ld-linux-x86-64.so.2"), None, &["libc.so.6"], None),
        )],
    );
    repo.add(
        "coreutils",
        "",
        vec![Entry::File(
            "usr/bin/ls",
            elf(Class::Elf64, Some("/lib64/ld-linux-x86-64.so.2"), None, &["libc.so.6"], None),
        )],
    );
    let mut n = needs(&[Need::Package("coreutils".into())]);
    n.optional.push(OptionalGroup {
        label: "commands of the launcher".into(),
        needs: [Need::Command("grep".into()), Need::Command("no-such-tool".into())].into(),
    });
    let mut sources = Sources { host: None, repo: Ok(repo.source()) };
    let c = closure::resolve(&n, &mut sources, &mut repo.realiser()).unwrap();
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    assert!(c.file(Class::Elf64, "libc.so.6").is_some(), "the executables of a package asked for by name");
    // The group with an unknown command is left out, grep with it.
    assert_eq!(c.left_out.len(), 1);
    assert_eq!(c.left_out[0].missing.need, Need::Command("no-such-tool".into()));
    let n = needs(&[Need::Command("grep".into())]);
    let mut sources = Sources { host: None, repo: Ok(repo.source()) };
    let c = closure::resolve(&n, &mut sources, &mut repo.realiser()).unwrap();
    assert!(c.file_for(&Need::Command("grep".into())).unwrap().ends_with("repo-grep/bin/grep"));
}

const LIBDIR32: &str = "usr/lib/i386-linux-gnu";

fn lib32(soname: &str, needed: &[&str], runpath: Option<&str>) -> Vec<u8> {
    elf(Class::Elf32, None, Some(soname), needed, runpath)
}

/// Mesa's 32-bit GL stack as Debian ships it: libGLX_mesa depends on the package of the DRI driver, which
/// libGLX_mesa opens by path; the driver needs libLLVM, which needs libz3 (no package dependency says so).
fn mesa_i386(repo: &mut Repo) {
    repo.add_for(
        "i386",
        "libc6",
        "",
        vec![
            Entry::File(&format!("{LIBDIR32}/ld-linux.so.2"), lib32("ld-linux.so.2", &[], None)),
            Entry::Link("lib/ld-linux.so.2", "/usr/lib/i386-linux-gnu/ld-linux.so.2"),
            Entry::File(&format!("{LIBDIR32}/libc.so.6"), lib32("libc.so.6", &["ld-linux.so.2"], None)),
        ],
    );
    repo.add_for(
        "i386",
        "libglx-mesa0",
        "Depends: libgl1-mesa-dri, libc6\n",
        vec![Entry::File(
            &format!("{LIBDIR32}/libGLX_mesa.so.0"),
            lib32("libGLX_mesa.so.0", &["libc.so.6"], None),
        )],
    );
    repo.add_for(
        "i386",
        "libgl1-mesa-dri",
        "Depends: libllvm15\n",
        vec![Entry::File(
            &format!("{LIBDIR32}/dri/swrast_dri.so"),
            elf(Class::Elf32, None, None, &["libLLVM-15.so.1", "libc.so.6"], None),
        )],
    );
    repo.add_for(
        "i386",
        "libllvm15",
        "",
        vec![Entry::File(
            &format!("{LIBDIR32}/libLLVM-15.so.1"),
            lib32("libLLVM-15.so.1", &["libz3.so.4", "libc.so.6"], Some("$ORIGIN/../lib")),
        )],
    );
    repo.add_for(
        "i386",
        "libz3-4",
        "",
        vec![Entry::File(&format!("{LIBDIR32}/libz3.so.4"), lib32("libz3.so.4", &["libc.so.6"], None))],
    );
    // The native architecture has no driver: the i386 path is only in the i386 index.
    libc6(repo);
}

#[test]
fn a_foreign_architecture_driver_path_is_found_and_kept_with_its_needs() {
    let mut repo = Repo::new();
    mesa_i386(&mut repo);
    let driver = Need::Path("/usr/lib/i386-linux-gnu/dri/swrast_dri.so".into());
    let group = || OptionalGroup { label: "Mesa's software renderer".into(), needs: [driver.clone()].into() };
    let check = |c: &closure::Closure| {
        assert!(c.missing.is_empty(), "{:?}", c.missing);
        assert!(c.left_out.is_empty(), "the driver's group was left out: {:?}", c.left_out);
        assert!(
            c.file_for(&driver)
                .unwrap()
                .ends_with("repo-libgl1-mesa-dri-i386/usr/lib/i386-linux-gnu/dri/swrast_dri.so")
        );
        let z3 = c.file(Class::Elf32, "libz3.so.4").expect("the driver's libLLVM's libz3");
        assert!(c.lib_dirs(Class::Elf32).iter().any(|d| z3.starts_with(d)), "{:?}", c.lib_dirs(Class::Elf32));
        assert!(c.packages.iter().any(|p| p.key == "libz3-4:i386"));
    };
    // The driver's package comes in as a dependency of the package providing libGLX_mesa, in a later round than
    // the one that first looked the path up.
    let mut n = Needs { machine: 3, ..Needs::default() };
    n.required.insert(Need::Soname(Class::Elf32, "libGLX_mesa.so.0".into()));
    n.optional.push(group());
    let mut sources = Sources { host: None, repo: Ok(repo.source()) };
    check(&closure::resolve(&n, &mut sources, &mut repo.realiser()).unwrap());
    // Asked for alone, the path is looked up in the index of its own architecture.
    let mut n = Needs { machine: 3, ..Needs::default() };
    n.required.insert(Need::Soname(Class::Elf32, "libc.so.6".into()));
    n.optional.push(group());
    let mut sources = Sources { host: None, repo: Ok(repo.source()) };
    check(&closure::resolve(&n, &mut sources, &mut repo.realiser()).unwrap());
}
