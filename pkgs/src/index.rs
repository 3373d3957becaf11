//! Updating and opening a suite's verified indexes.
//!
//! `update` fetches `InRelease` (conditionally, with the cached validators; `Release` + `Release.gpg` when there
//! is no `InRelease`), verifies its signature against the repository's keyring and its `Valid-Until`, then fetches
//! `Packages.{xz,gz}` for each component and architecture and `Contents-<arch>.gz`, each checked against the size
//! and SHA-256 the release file lists; on a mismatch it tries the `by-hash/SHA256/<hash>` copy, then the next
//! compression. Everything is written into a staging directory that replaces the suite's cache directory only when
//! all of it verified, so a failed update leaves the previous cache exactly as it was. Files whose hash has not
//! changed since the last update are reused without downloading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::cache::{Cache, write_atomic};
use crate::compression::decompress;
use crate::config::Repository;
use crate::error::{Error, Result, io};
use crate::http::{Conditional, Http, Validators};
use crate::release::{FileEntry, Release};
use crate::signature::Keyring;
use crate::soname;

/// Largest release file accepted (real ones are ~150 kB).
const MAX_RELEASE: u64 = 64 << 20;

/// What a suite's cache directory holds, recorded in `state.json`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SuiteState {
    pub url: String,
    pub suite: String,
    /// Validators of the cached `InRelease` for conditional requests.
    pub validators: Validators,
    /// Whether the release came as `InRelease` (else `Release` + `Release.gpg`).
    pub inline_signed: bool,
    /// Decompressed `Packages` files: local file name → (component, architecture, SHA-256 of the fetched file).
    pub packages: BTreeMap<String, IndexFile>,
    /// Soname indexes: architecture → SHA-256s of the `Contents` files they were built from.
    pub soname: BTreeMap<String, Vec<String>>,
}

/// One cached index file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IndexFile {
    pub component: String,
    pub architecture: String,
    /// SHA-256 of the file as downloaded (compressed), as the release file lists it.
    pub sha256: String,
}

/// The outcome of updating one suite.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpdateSummary {
    pub repository: String,
    /// False when the server answered 304 and every index was already current.
    pub changed: bool,
    pub downloaded_bytes: u64,
    pub packages_files: usize,
    pub soname_entries: u64,
    pub warnings: Vec<String>,
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Hex SHA-256 of a byte slice.
pub fn sha256(data: &[u8]) -> String {
    sha256_hex(data)
}

fn packages_file_name(component: &str, arch: &str) -> String {
    format!("Packages_{}_{}", component.replace('/', "_"), arch)
}

/// The soname index file of an architecture inside a suite directory.
pub fn soname_file(dir: &Path, arch: &str) -> PathBuf {
    dir.join(format!("soname-{arch}.idx"))
}

/// Downloads `rel` (relative to `dists/<suite>/`) and checks it against `entry`; on a mismatch tries the by-hash
/// copy. Returns the verified bytes.
fn fetch_verified(
    http: &Http,
    repo: &Repository,
    rel: &str,
    entry: &FileEntry,
    downloaded: &mut u64,
) -> Result<Vec<u8>> {
    let url = repo.dist_url(rel);
    let check = |data: &[u8]| -> Result<(), String> {
        if data.len() as u64 != entry.size {
            return Err(format!("size {} instead of {}", data.len(), entry.size));
        }
        let got = sha256_hex(data);
        if got != entry.sha256 {
            return Err(format!("SHA256 {got} instead of {}", entry.sha256));
        }
        Ok(())
    };
    // Allow a little slack over the listed size so an oversized answer is reported as a mismatch, not a cut.
    let first = match http.get_optional(&url, entry.size + 1) {
        Ok(Some(data)) => {
            *downloaded += data.len() as u64;
            match check(&data) {
                Ok(()) => return Ok(data),
                Err(reason) => reason,
            }
        }
        Ok(None) => "server answered 404 Not Found".to_owned(),
        Err(Error::Http { reason, .. }) => reason,
        Err(e) => return Err(e),
    };
    let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
    let by_hash = if dir.is_empty() {
        format!("by-hash/SHA256/{}", entry.sha256)
    } else {
        format!("{dir}/by-hash/SHA256/{}", entry.sha256)
    };
    let by_hash_url = repo.dist_url(&by_hash);
    tracing::info!(url, reason = %first, "index does not match the release file; trying by-hash");
    let second = match http.get_optional(&by_hash_url, entry.size + 1) {
        Ok(Some(data)) => {
            *downloaded += data.len() as u64;
            match check(&data) {
                Ok(()) => return Ok(data),
                Err(reason) => reason,
            }
        }
        Ok(None) => "not found".to_owned(),
        Err(Error::Http { reason, .. }) => reason,
        Err(e) => return Err(e),
    };
    Err(Error::Mismatch { what: "index", url, reason: format!("{first}; by-hash copy: {second}") })
}

/// Fetches and verifies the release file, returning its parsed form, the raw bytes to cache, and the new state
/// fields. `Ok(None)` for the body means "not modified": the cached copy is still current.
struct FetchedRelease {
    release: Release,
    raw: Vec<u8>,
    detached_sig: Option<Vec<u8>>,
    validators: Validators,
    inline_signed: bool,
    not_modified: bool,
}

fn fetch_release(
    http: &Http,
    repo: &Repository,
    keyring: &Keyring,
    old: Option<&SuiteState>,
    old_dir: &Path,
    now: i64,
    downloaded: &mut u64,
) -> Result<FetchedRelease> {
    let inrelease_url = repo.dist_url("InRelease");
    let cached_inrelease =
        old.filter(|s| s.inline_signed).and_then(|_| std::fs::read(old_dir.join("InRelease")).ok());
    let have = if cached_inrelease.is_some() {
        old.map(|s| s.validators.clone()).unwrap_or_default()
    } else {
        Validators::default()
    };
    let (raw, validators, not_modified) = match http.get_conditional(&inrelease_url, &have, MAX_RELEASE)? {
        Some(Conditional::NotModified) => match cached_inrelease {
            Some(raw) => (Some(raw), have, true),
            None => {
                return Err(Error::Http {
                    url: inrelease_url,
                    reason: "304 Not Modified without a cached copy".into(),
                });
            }
        },
        Some(Conditional::Fetched { body, validators }) => {
            *downloaded += body.len() as u64;
            (Some(body), validators, false)
        }
        None => (None, Validators::default(), false),
    };
    if let Some(raw) = raw {
        let text = keyring.verify_clearsigned(&raw, &inrelease_url)?;
        let release = Release::parse(&text, &inrelease_url)?;
        release.check_valid_until(now, &inrelease_url)?;
        return Ok(FetchedRelease {
            release,
            raw,
            detached_sig: None,
            validators,
            inline_signed: true,
            not_modified,
        });
    }
    let release_url = repo.dist_url("Release");
    let sig_url = repo.dist_url("Release.gpg");
    let raw = http.get(&release_url, MAX_RELEASE)?;
    let sig = http.get(&sig_url, 1 << 20)?;
    *downloaded += (raw.len() + sig.len()) as u64;
    keyring.verify_detached(&raw, &sig, &sig_url)?;
    let text = String::from_utf8(raw.clone())
        .map_err(|_| Error::Release { url: release_url.clone(), reason: "not UTF-8 text".into() })?;
    let release = Release::parse(&text, &release_url)?;
    release.check_valid_until(now, &release_url)?;
    Ok(FetchedRelease {
        release,
        raw,
        detached_sig: Some(sig),
        validators: Validators::default(),
        inline_signed: false,
        not_modified: false,
    })
}

/// Updates one suite's indexes in the cache. The caller holds the cache lock.
pub fn update(
    http: &Http,
    cache: &Cache,
    repo: &Repository,
    keyring: &Keyring,
    now: i64,
) -> Result<UpdateSummary> {
    let dir = cache.suite_dir(repo);
    let old = read_state(&dir).ok();
    let mut downloaded = 0u64;
    let mut warnings = Vec::new();
    let fetched = fetch_release(http, repo, keyring, old.as_ref(), &dir, now, &mut downloaded)?;
    let release = &fetched.release;

    let staging = dir.with_extension("new");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io("remove stale staging directory", &staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io("create staging directory", &staging))?;
    let result = (|| -> Result<(SuiteState, u64)> {
        let mut state = SuiteState {
            url: repo.url.clone(),
            suite: repo.suite.clone(),
            validators: fetched.validators.clone(),
            inline_signed: fetched.inline_signed,
            ..SuiteState::default()
        };
        let mut soname_entries = 0u64;
        for arch in &repo.architectures {
            for comp in &repo.components {
                let base = format!("{comp}/binary-{arch}/Packages");
                let candidates = [format!("{base}.xz"), format!("{base}.gz"), base.clone()];
                let listed: Vec<&String> =
                    candidates.iter().filter(|c| release.files.contains_key(*c)).collect();
                if listed.is_empty() {
                    warnings.push(format!("{} lists no {base} index", repo.label()));
                    continue;
                }
                let local = packages_file_name(comp, arch);
                let reuse = old.as_ref().and_then(|o| o.packages.get(&local)).filter(|f| {
                    listed.iter().any(|c| release.files[*c].sha256 == f.sha256) && dir.join(&local).exists()
                });
                if let Some(f) = reuse {
                    link_or_copy(&dir.join(&local), &staging.join(&local))?;
                    state.packages.insert(local, f.clone());
                    continue;
                }
                let mut last_err = None;
                for rel in listed {
                    let entry = &release.files[rel];
                    match fetch_verified(http, repo, rel, entry, &mut downloaded) {
                        Ok(data) => {
                            let plain = decompress(&repo.dist_url(rel), &data)?;
                            write_atomic(&staging.join(&local), &plain)?;
                            state.packages.insert(
                                local.clone(),
                                IndexFile {
                                    component: comp.clone(),
                                    architecture: arch.clone(),
                                    sha256: entry.sha256.clone(),
                                },
                            );
                            last_err = None;
                            break;
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                if let Some(e) = last_err {
                    return Err(e);
                }
            }
            // Contents: per component (Debian) or per suite (some derivatives).
            let mut contents: Vec<(String, FileEntry)> = Vec::new();
            for comp in &repo.components {
                for name in [
                    format!("{comp}/Contents-{arch}.gz"),
                    format!("{comp}/Contents-{arch}.xz"),
                    format!("{comp}/Contents-{arch}"),
                ] {
                    if let Some(e) = release.files.get(&name) {
                        contents.push((name, e.clone()));
                        break;
                    }
                }
            }
            if contents.is_empty() {
                for name in
                    [format!("Contents-{arch}.gz"), format!("Contents-{arch}.xz"), format!("Contents-{arch}")]
                {
                    if let Some(e) = release.files.get(&name) {
                        contents.push((name, e.clone()));
                        break;
                    }
                }
            }
            let hashes: Vec<String> = contents.iter().map(|(_, e)| e.sha256.clone()).collect();
            let idx = soname_file(&staging, arch);
            let old_idx = soname_file(&dir, arch);
            if old.as_ref().and_then(|o| o.soname.get(arch)) == Some(&hashes) && old_idx.exists() {
                link_or_copy(&old_idx, &idx)?;
                soname_entries += soname::SonameIndex::open(&idx).map(|i| i.len() as u64).unwrap_or(0);
            } else if contents.is_empty() {
                warnings.push(format!(
                    "{} lists no Contents-{arch} index; locate finds nothing there",
                    repo.label()
                ));
                soname::write_empty(&idx)?;
            } else {
                let mut verified = Vec::new();
                for (rel, entry) in &contents {
                    let data = fetch_verified(http, repo, rel, entry, &mut downloaded)?;
                    verified.push((repo.dist_url(rel), data));
                }
                let stats = soname::build_from_compressed(&verified, &idx)?;
                soname_entries += stats.entries;
            }
            state.soname.insert(arch.clone(), hashes);
        }
        if state.packages.is_empty() {
            return Err(Error::Release {
                url: repo.dist_url(if fetched.inline_signed { "InRelease" } else { "Release" }),
                reason: format!(
                    "lists no Packages index for components {} and architectures {}",
                    repo.components.join(" "),
                    repo.architectures.join(" ")
                ),
            });
        }
        if fetched.inline_signed {
            write_atomic(&staging.join("InRelease"), &fetched.raw)?;
        } else {
            write_atomic(&staging.join("Release"), &fetched.raw)?;
            if let Some(sig) = &fetched.detached_sig {
                write_atomic(&staging.join("Release.gpg"), sig)?;
            }
        }
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| io("encode", staging.join("state.json"))(e.into()))?;
        write_atomic(&staging.join("state.json"), &json)?;
        Ok((state, soname_entries))
    })();
    let (state, soname_entries) = match result {
        Ok(r) => r,
        Err(e) => {
            std::fs::remove_dir_all(&staging).ok();
            return Err(e);
        }
    };
    // Swap the verified staging directory in; the old one is removed only after the new one is in place.
    let retired = dir.with_extension("old");
    if retired.exists() {
        std::fs::remove_dir_all(&retired).map_err(io("remove", &retired))?;
    }
    if dir.exists() {
        std::fs::rename(&dir, &retired).map_err(io("replace index directory", &dir))?;
    }
    std::fs::rename(&staging, &dir).map_err(io("replace index directory", &dir))?;
    std::fs::remove_dir_all(&retired).ok();
    Ok(UpdateSummary {
        repository: repo.label(),
        changed: !(fetched.not_modified && downloaded == 0),
        downloaded_bytes: downloaded,
        packages_files: state.packages.len(),
        soname_entries,
        warnings,
    })
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(io("copy", from))?;
    }
    Ok(())
}

/// Reads a suite directory's `state.json`.
pub fn read_state(dir: &Path) -> Result<SuiteState> {
    let path = dir.join("state.json");
    let data = std::fs::read(&path).map_err(io("read index state", &path))?;
    serde_json::from_slice(&data).map_err(|e| Error::Parse {
        what: "index state",
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A suite's verified indexes as cached by the last successful `update`.
#[derive(Debug, Clone)]
pub struct SuiteIndex {
    pub dir: PathBuf,
    pub state: SuiteState,
}

impl SuiteIndex {
    /// Opens the cached indexes of `repo`, or fails with a hint to run `update`.
    pub fn open(cache: &Cache, repo: &Repository) -> Result<SuiteIndex> {
        let dir = cache.suite_dir(repo);
        if !dir.join("state.json").exists() {
            return Err(Error::NoIndex { repo: repo.label() });
        }
        let state = read_state(&dir)?;
        Ok(SuiteIndex { dir, state })
    }

    /// The decompressed `Packages` files with their component and architecture.
    pub fn packages_files(&self) -> impl Iterator<Item = (PathBuf, &IndexFile)> {
        self.state.packages.iter().map(|(name, f)| (self.dir.join(name), f))
    }

    /// The soname index for `arch`, if the suite has one.
    pub fn soname_index(&self, arch: &str) -> Result<Option<soname::SonameIndex>> {
        let path = soname_file(&self.dir, arch);
        if !path.exists() {
            return Ok(None);
        }
        soname::SonameIndex::open(&path).map(Some)
    }
}
