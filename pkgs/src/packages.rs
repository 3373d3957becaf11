//! The package universe: every binary package stanza of the configured suites' cached `Packages` indexes, with
//! the fields the resolver and fetcher need, indexed by name and by provided (virtual) name.

use std::collections::{HashMap, HashSet};

use crate::cache::Cache;
use crate::config::Repository;
use crate::deb822;
use crate::error::{Error, Result, io};
use crate::index::SuiteIndex;
use crate::relation::{self, Clause, Relation};
use crate::version::Version;

/// The `Multi-Arch` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiArch {
    No,
    Same,
    Foreign,
    Allowed,
}

/// One binary package from a `Packages` index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Package {
    pub name: String,
    #[serde(serialize_with = "ser_version")]
    pub version: Version,
    pub architecture: String,
    pub multi_arch: MultiArch,
    #[serde(skip)]
    pub depends: Vec<Clause>,
    #[serde(skip)]
    pub pre_depends: Vec<Clause>,
    #[serde(skip)]
    pub provides: Vec<Relation>,
    /// The relationship fields as written, for display.
    pub depends_text: String,
    pub pre_depends_text: String,
    pub provides_text: String,
    pub section: String,
    pub priority: String,
    pub essential: bool,
    pub description: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Index into [`Universe::repositories`].
    pub repository: usize,
    pub component: String,
}

fn ser_version<S: serde::Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

impl Package {
    /// `name:arch`, the identity used in the lock file and messages.
    pub fn key(&self) -> String {
        format!("{}:{}", self.name, self.architecture)
    }

    /// Parses one stanza; `None` when it lacks a required field (reported by the caller).
    pub fn from_paragraph(
        p: &deb822::Paragraph<'_>,
        repository: usize,
        component: &str,
    ) -> Result<Package, String> {
        let field = |f: &str| p.get(f).ok_or_else(|| format!("missing {f}"));
        let name = field("Package")?.to_owned();
        let rel = |f: &str| -> Result<(Vec<Clause>, String), String> {
            match p.get(f) {
                Some(t) => Ok((
                    relation::parse(t).map_err(|e| format!("{f}: {e}"))?,
                    t.split_whitespace().collect::<Vec<_>>().join(" "),
                )),
                None => Ok((Vec::new(), String::new())),
            }
        };
        let (depends, depends_text) = rel("Depends")?;
        let (pre_depends, pre_depends_text) = rel("Pre-Depends")?;
        let (provides_clauses, provides_text) = rel("Provides")?;
        let provides = provides_clauses.into_iter().flatten().collect();
        let multi_arch = match p.get("Multi-Arch").unwrap_or("no") {
            "same" => MultiArch::Same,
            "foreign" => MultiArch::Foreign,
            "allowed" => MultiArch::Allowed,
            _ => MultiArch::No,
        };
        let sha256 = field("SHA256")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("malformed SHA256 '{sha256}'"));
        }
        Ok(Package {
            version: Version::new(field("Version")?),
            architecture: field("Architecture")?.to_owned(),
            multi_arch,
            depends,
            pre_depends,
            provides,
            depends_text,
            pre_depends_text,
            provides_text,
            section: p.get("Section").unwrap_or("").to_owned(),
            priority: p.get("Priority").unwrap_or("").to_owned(),
            essential: p.get("Essential").is_some_and(|v| v == "yes"),
            description: p.get("Description").and_then(|d| d.lines().next()).unwrap_or("").trim().to_owned(),
            filename: field("Filename")?.to_owned(),
            size: field("Size")?.parse().map_err(|_| "malformed Size".to_owned())?,
            sha256,
            repository,
            component: component.to_owned(),
            name,
        })
    }
}

/// All packages of the configured suites.
#[derive(Debug, Default)]
pub struct Universe {
    pub repositories: Vec<Repository>,
    pub packages: Vec<Package>,
    by_name: HashMap<String, Vec<usize>>,
    /// Provided name → (package index, provided version).
    provided: HashMap<String, Vec<(usize, Option<Version>)>>,
    /// Stanzas skipped because they did not parse, with the reason.
    pub skipped: Vec<String>,
}

impl Universe {
    /// Loads the cached indexes of every repository (run `update` first).
    pub fn load(cache: &Cache, repositories: &[Repository]) -> Result<Universe> {
        let mut u = Universe { repositories: repositories.to_vec(), ..Universe::default() };
        let mut seen: HashSet<(String, String, String)> = HashSet::new();
        for (ri, repo) in repositories.iter().enumerate() {
            let idx = SuiteIndex::open(cache, repo)?;
            for (path, file) in idx.packages_files() {
                let text = std::fs::read_to_string(&path).map_err(io("read package index", &path))?;
                u.add_text(&text, ri, &file.component, &path.display().to_string(), &mut seen);
            }
        }
        u.build_maps();
        Ok(u)
    }

    /// A universe from `Packages` texts (one per repository), for callers that hold the data in memory.
    pub fn from_texts(repositories: Vec<Repository>, texts: &[(usize, &str)]) -> Universe {
        let mut u = Universe { repositories, ..Universe::default() };
        let mut seen = HashSet::new();
        for (ri, text) in texts {
            u.add_text(text, *ri, "main", "memory", &mut seen);
        }
        u.build_maps();
        u
    }

    fn add_text(
        &mut self,
        text: &str,
        repo: usize,
        component: &str,
        origin: &str,
        seen: &mut HashSet<(String, String, String)>,
    ) {
        for para in deb822::paragraphs(text) {
            match Package::from_paragraph(&para, repo, component) {
                Ok(p) => {
                    // Architecture: all stanzas repeat in every binary-<arch> index; the first repository wins.
                    if seen.insert((p.name.clone(), p.version.as_str().to_owned(), p.architecture.clone())) {
                        self.packages.push(p);
                    }
                }
                Err(reason) => {
                    let name = para.get("Package").unwrap_or("?");
                    tracing::warn!(origin, package = name, %reason, "skipping a package stanza");
                    self.skipped.push(format!("{origin}: {name}: {reason}"));
                }
            }
        }
    }

    fn build_maps(&mut self) {
        self.by_name.clear();
        self.provided.clear();
        for (i, p) in self.packages.iter().enumerate() {
            self.by_name.entry(p.name.clone()).or_default().push(i);
            for prov in &p.provides {
                let v = prov.constraint.as_ref().map(|(_, v)| v.clone());
                self.provided.entry(prov.name.clone()).or_default().push((i, v));
            }
        }
    }

    /// Indexes of the packages named `name` (all versions and architectures).
    pub fn named(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Packages providing `name`, with the provided version (`None`: unversioned).
    pub fn providers(&self, name: &str) -> &[(usize, Option<Version>)] {
        self.provided.get(name).map_or(&[], Vec::as_slice)
    }

    /// Package names containing `pattern` (case-insensitive) or whose short description does; sorted, newest
    /// version per name and architecture.
    pub fn search(&self, pattern: &str) -> Vec<&Package> {
        let pat = pattern.to_ascii_lowercase();
        let mut best: HashMap<(&str, &str), &Package> = HashMap::new();
        for p in &self.packages {
            if p.name.contains(&pat) || p.description.to_ascii_lowercase().contains(&pat) {
                let e = best.entry((p.name.as_str(), p.architecture.as_str())).or_insert(p);
                if p.version > e.version {
                    *e = p;
                }
            }
        }
        let mut out: Vec<&Package> = best.into_values().collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.architecture.cmp(&b.architecture)));
        out
    }

    /// The repository a package came from.
    pub fn repository_of(&self, p: &Package) -> &Repository {
        &self.repositories[p.repository]
    }

    /// Fails with a clear message when the universe is empty.
    pub fn require_nonempty(&self) -> Result<()> {
        if self.packages.is_empty() {
            return Err(Error::Resolve {
                package: "(any)".into(),
                reason: "the package indexes are empty".into(),
            });
        }
        Ok(())
    }
}
