//! Dependency resolution: from requested packages to a closure over `Pre-Depends` and `Depends`, honouring
//! version relations, alternatives, `Provides` (virtual and versioned) and `Multi-Arch`, with a deterministic
//! choice at every step so the same universe and request always give the same closure.
//!
//! The choice rule, in order: a version pinned by the existing lock file; an alternative already chosen; then, for
//! the first alternative that has candidates, real packages before providers, the dependent's architecture before
//! `all` before a foreign (`Multi-Arch: foreign`) one, the highest version, the earliest repository, and among
//! providers the alphabetically first name. Conflicts and Breaks are not evaluated: every package becomes its own
//! store path, so packages never overwrite each other.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::error::{Error, Result};
use crate::lock::{LOCK_VERSION, Lock, LockedPackage};
use crate::packages::{MultiArch, Package, Universe};
use crate::relation::Relation;
use crate::version::Version;

/// A requested package: `name[:arch][=version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub arch: Option<String>,
    pub version: Option<Version>,
}

impl Request {
    pub fn parse(text: &str) -> Result<Request> {
        let bad = |reason: &str| Error::Resolve { package: text.to_owned(), reason: reason.to_owned() };
        let (rest, version) = match text.split_once('=') {
            Some((r, v)) if !v.is_empty() => (r, Some(Version::new(v))),
            Some(_) => return Err(bad("empty version after '='")),
            None => (text, None),
        };
        let (name, arch) = match rest.split_once(':') {
            Some((n, a)) if !a.is_empty() => (n, Some(a.to_owned())),
            Some(_) => return Err(bad("empty architecture after ':'")),
            None => (rest, None),
        };
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(bad("not a package name"));
        }
        Ok(Request { name: name.to_owned(), arch, version })
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some(v) = &self.version {
            write!(f, "={v}")?;
        }
        Ok(())
    }
}

/// The closure: chosen package indexes into the universe and, per package, the chosen dependencies.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Sorted by name then architecture.
    pub packages: Vec<usize>,
    pub depends: BTreeMap<usize, BTreeSet<usize>>,
    pub requested: Vec<usize>,
}

struct Resolver<'a> {
    u: &'a Universe,
    native: &'a str,
    pins: HashMap<String, Version>,
    chosen: BTreeMap<(String, String), usize>,
    depends: BTreeMap<usize, BTreeSet<usize>>,
    queue: VecDeque<usize>,
    /// Why a package was chosen (its first dependent), for error messages.
    parent: HashMap<usize, usize>,
}

/// The architecture a package's dependencies are resolved for: `all` packages take the native one.
fn context_arch<'a>(p: &'a Package, native: &'a str) -> &'a str {
    if p.architecture == "all" { native } else { &p.architecture }
}

/// Whether package `p` can satisfy a dependency with this qualifier from a package of architecture `ctx`, and how
/// well (lower is better): 0 same architecture, 1 `all`, 2 foreign.
fn arch_fit(p: &Package, qualifier: Option<&str>, ctx: &str, native: &str) -> Option<u8> {
    let same = p.architecture == ctx;
    let all = p.architecture == "all";
    match qualifier {
        None => {
            if same {
                Some(0)
            } else if all {
                Some(1)
            } else if p.multi_arch == MultiArch::Foreign {
                Some(2)
            } else {
                None
            }
        }
        Some("any") => {
            if same {
                Some(0)
            } else if all {
                Some(1)
            } else if matches!(p.multi_arch, MultiArch::Allowed | MultiArch::Foreign) {
                Some(2)
            } else {
                None
            }
        }
        Some("native") => {
            if p.architecture == native {
                Some(0)
            } else if all {
                Some(1)
            } else {
                None
            }
        }
        Some(a) => {
            if p.architecture == a {
                Some(0)
            } else if all {
                Some(1)
            } else {
                None
            }
        }
    }
}

impl Resolver<'_> {
    fn chosen_key(p: &Package) -> (String, String) {
        (p.name.clone(), p.architecture.clone())
    }

    /// Candidates for one relation, best first: (package index, is provider).
    fn candidates(&self, rel: &Relation, ctx: &str) -> Vec<usize> {
        let mut real: Vec<(u8, usize)> = Vec::new();
        for &i in self.u.named(&rel.name) {
            let p = &self.u.packages[i];
            if !rel.version_ok(Some(&p.version)) {
                continue;
            }
            if let Some(fit) = arch_fit(p, rel.arch_qualifier.as_deref(), ctx, self.native) {
                real.push((fit, i));
            }
        }
        let key = |&(fit, i): &(u8, usize)| {
            let p = &self.u.packages[i];
            let pinned = self.pins.get(&p.key()).is_some_and(|v| *v == p.version);
            (!pinned, fit, std::cmp::Reverse(p.version.clone()), p.repository)
        };
        real.sort_by_key(key);
        let mut providers: Vec<(u8, usize)> = Vec::new();
        for (i, provided_version) in self.u.providers(&rel.name) {
            let p = &self.u.packages[*i];
            if !rel.version_ok(provided_version.as_ref()) {
                continue;
            }
            if let Some(fit) = arch_fit(p, rel.arch_qualifier.as_deref(), ctx, self.native) {
                providers.push((fit, *i));
            }
        }
        providers.sort_by(|a, b| {
            let (pa, pb) = (&self.u.packages[a.1], &self.u.packages[b.1]);
            pa.name.cmp(&pb.name).then_with(|| key(a).cmp(&key(b)))
        });
        providers.dedup_by_key(|x| x.1);
        real.into_iter().chain(providers).map(|(_, i)| i).collect()
    }

    /// Whether `i` may join the closure: no other version of the same name and architecture is chosen.
    fn admissible(&self, i: usize) -> bool {
        let p = &self.u.packages[i];
        self.chosen.get(&Self::chosen_key(p)).is_none_or(|&c| c == i)
    }

    fn choose(&mut self, i: usize, parent: Option<usize>) {
        let key = Self::chosen_key(&self.u.packages[i]);
        if self.chosen.insert(key, i).is_none() {
            if let Some(par) = parent {
                self.parent.insert(i, par);
            }
            self.queue.push_back(i);
        }
    }

    fn chain(&self, mut i: usize) -> String {
        let mut names = vec![self.u.packages[i].key()];
        while let Some(&p) = self.parent.get(&i) {
            names.push(self.u.packages[p].key());
            i = p;
            if names.len() > 50 {
                break;
            }
        }
        names.reverse();
        names.join(" -> ")
    }

    fn process(&mut self, i: usize) -> Result<()> {
        let p = &self.u.packages[i];
        let ctx = context_arch(p, self.native).to_owned();
        for clause in p.pre_depends.iter().chain(&p.depends) {
            let alts: Vec<&Relation> = clause.iter().filter(|r| r.applies_to(&ctx)).collect();
            if alts.is_empty() {
                continue;
            }
            let mut done = None;
            'outer: for rel in &alts {
                for c in self.candidates(rel, &ctx) {
                    let cp = &self.u.packages[c];
                    if self.chosen.get(&Self::chosen_key(cp)) == Some(&c) {
                        done = Some(c);
                        break 'outer;
                    }
                }
            }
            if done.is_none() {
                'pick: for rel in &alts {
                    for c in self.candidates(rel, &ctx) {
                        if self.admissible(c) {
                            done = Some(c);
                            break 'pick;
                        }
                    }
                }
            }
            match done {
                Some(c) => {
                    if c != i {
                        self.depends.entry(i).or_default().insert(c);
                    }
                    self.choose(c, Some(i));
                }
                None => {
                    let text = alts.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | ");
                    let p = &self.u.packages[i];
                    return Err(Error::Resolve {
                        package: format!("{} {}", p.key(), p.version),
                        reason: format!(
                            "no installable candidate for dependency '{text}' (via {})",
                            self.chain(i)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Resolves `requests` against `universe`. `pins` (usually the previous lock) keeps earlier choices when they
/// still satisfy the dependencies; `native` is the architecture for unqualified requests and `all` packages.
pub fn resolve(
    universe: &Universe,
    requests: &[Request],
    native: &str,
    pins: Option<&Lock>,
) -> Result<Resolution> {
    let mut r = Resolver {
        u: universe,
        native,
        pins: pins
            .map(|l| l.packages.iter().map(|p| (p.key(), Version::new(p.version.clone()))).collect())
            .unwrap_or_default(),
        chosen: BTreeMap::new(),
        depends: BTreeMap::new(),
        queue: VecDeque::new(),
        parent: HashMap::new(),
    };
    let mut requested = Vec::new();
    for req in requests {
        let arch = req.arch.clone().unwrap_or_else(|| native.to_owned());
        let rel = Relation {
            name: req.name.clone(),
            arch_qualifier: Some(arch.clone()),
            constraint: req.version.clone().map(|v| (crate::relation::Op::Eq, v)),
            arch_restrictions: Vec::new(),
        };
        let pick = r.candidates(&rel, &arch).into_iter().find(|&c| r.admissible(c));
        let Some(c) = pick else {
            let reason = if universe.named(&req.name).is_empty() && universe.providers(&req.name).is_empty() {
                "no such package in the configured repositories".to_owned()
            } else {
                format!(
                    "no version for architecture {arch}{}",
                    req.version.as_ref().map(|v| format!(" equal to {v}")).unwrap_or_default()
                )
            };
            return Err(Error::Resolve { package: req.to_string(), reason });
        };
        requested.push(c);
        r.choose(c, None);
    }
    while let Some(i) = r.queue.pop_front() {
        r.process(i)?;
    }
    let mut packages: Vec<usize> = r.chosen.values().copied().collect();
    packages.sort_by(|&a, &b| {
        let (pa, pb) = (&universe.packages[a], &universe.packages[b]);
        pa.name.cmp(&pb.name).then_with(|| pa.architecture.cmp(&pb.architecture))
    });
    Ok(Resolution { packages, depends: r.depends, requested })
}

impl Resolution {
    /// The lock file recording this closure.
    pub fn to_lock(&self, universe: &Universe, requests: &[Request]) -> Lock {
        let mut request: Vec<String> = requests.iter().map(ToString::to_string).collect();
        request.sort();
        let packages = self
            .packages
            .iter()
            .map(|&i| {
                let p = &universe.packages[i];
                let repo = universe.repository_of(p);
                let mut depends: Vec<String> =
                    self.depends.get(&i).into_iter().flatten().map(|&d| universe.packages[d].key()).collect();
                depends.sort();
                LockedPackage {
                    name: p.name.clone(),
                    version: p.version.to_string(),
                    architecture: p.architecture.clone(),
                    repository: repo.url.clone(),
                    suite: repo.suite.clone(),
                    filename: p.filename.clone(),
                    size: p.size,
                    sha256: p.sha256.clone(),
                    depends,
                    component: p.component.clone(),
                }
            })
            .collect();
        Lock { version: LOCK_VERSION, request, packages }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Keys, Repository};

    fn repo() -> Repository {
        Repository {
            url: "http://127.0.0.1:1/debian".into(),
            suite: "testing".into(),
            components: vec!["main".into()],
            architectures: vec!["amd64".into(), "i386".into()],
            keys: Keys::HostTrusted,
            origin: "test".into(),
        }
    }

    fn stanza(name: &str, version: &str, arch: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n{extra}Filename: pool/{name}_{version}_{arch}.deb\nSize: 1\nSHA256: {}\n\n",
            "0".repeat(64)
        )
    }

    fn universe() -> Universe {
        let mut t = String::new();
        t += &stanza("libc6", "2.36-9", "amd64", "Multi-Arch: same\n");
        t += &stanza("libc6", "2.37-1", "amd64", "Multi-Arch: same\n");
        t += &stanza("libc6", "2.37-1", "i386", "Multi-Arch: same\n");
        t += &stanza("libfoo1", "1.0-1", "amd64", "Depends: libc6 (>= 2.36)\nMulti-Arch: same\n");
        t += &stanza("libfoo1", "1.0-1", "i386", "Depends: libc6 (>= 2.36)\nMulti-Arch: same\n");
        t += &stanza(
            "hello",
            "1.0",
            "amd64",
            "Depends: libfoo1 (>= 1.0), mail-transport-agent, tzdata, python3:any\n",
        );
        t += &stanza("exim", "4", "amd64", "Provides: mail-transport-agent\n");
        t += &stanza("aaa-mta", "1", "amd64", "Provides: mail-transport-agent\n");
        t += &stanza("tzdata", "2024a", "all", "Multi-Arch: foreign\n");
        t += &stanza("python3", "3.11", "amd64", "Multi-Arch: allowed\n");
        t += &stanza("game", "1", "i386", "Depends: libfoo1, tzdata, libgl | libgl-virtual (>= 2)\n");
        t += &stanza("mesa", "1", "i386", "Provides: libgl-virtual (= 3)\n");
        t += &stanza("old", "1", "amd64", "Depends: libc6 (<< 2.30)\n");
        Universe::from_texts(vec![repo()], &[(0, &t)])
    }

    fn keys(u: &Universe, r: &Resolution) -> Vec<String> {
        r.packages.iter().map(|&i| format!("{}={}", u.packages[i].key(), u.packages[i].version)).collect()
    }

    #[test]
    fn closure_with_versions_providers_and_multiarch() {
        let u = universe();
        let r = resolve(&u, &[Request::parse("hello").unwrap()], "amd64", None).unwrap();
        assert_eq!(
            keys(&u, &r),
            [
                "aaa-mta:amd64=1",
                "hello:amd64=1.0",
                "libc6:amd64=2.37-1",
                "libfoo1:amd64=1.0-1",
                "python3:amd64=3.11",
                "tzdata:all=2024a"
            ]
        );
        let r32 = resolve(&u, &[Request::parse("game:i386").unwrap()], "amd64", None).unwrap();
        assert_eq!(
            keys(&u, &r32),
            ["game:i386=1", "libc6:i386=2.37-1", "libfoo1:i386=1.0-1", "mesa:i386=1", "tzdata:all=2024a"]
        );
    }

    #[test]
    fn deterministic_and_pinned_by_lock() {
        let u = universe();
        let req = [Request::parse("libfoo1").unwrap()];
        let a = resolve(&u, &req, "amd64", None).unwrap();
        let b = resolve(&u, &req, "amd64", None).unwrap();
        assert_eq!(a.to_lock(&u, &req), b.to_lock(&u, &req));
        let mut lock = a.to_lock(&u, &req);
        for p in &mut lock.packages {
            if p.name == "libc6" {
                p.version = "2.36-9".into();
            }
        }
        let pinned = resolve(&u, &req, "amd64", Some(&lock)).unwrap();
        assert!(keys(&u, &pinned).contains(&"libc6:amd64=2.36-9".to_owned()));
        let lock = pinned.to_lock(&u, &req);
        assert_eq!(lock.get("libfoo1:amd64").unwrap().depends, ["libc6:amd64"]);
    }

    #[test]
    fn clear_errors() {
        let u = universe();
        let e = resolve(&u, &[Request::parse("nope").unwrap()], "amd64", None).unwrap_err().to_string();
        assert!(e.contains("no such package"), "{e}");
        let e = resolve(&u, &[Request::parse("old").unwrap()], "amd64", None).unwrap_err().to_string();
        assert!(e.contains("libc6 (<< 2.30)"), "{e}");
        let e = resolve(&u, &[Request::parse("hello:i386").unwrap()], "amd64", None).unwrap_err().to_string();
        assert!(e.contains("no version for architecture i386"), "{e}");
        assert!(Request::parse("a:").is_err());
        assert_eq!(Request::parse("a:i386=1.0").unwrap().to_string(), "a:i386=1.0");
    }
}
