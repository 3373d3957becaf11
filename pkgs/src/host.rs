//! Host packages: when the host's dpkg database (`var/lib/dpkg/status` under the host root) has exactly the chosen
//! package version and architecture installed, its files can be copied from the host instead of downloaded.
//!
//! The package's `postinst` goes to `DEBIAN/postinst` of the copy, as unpacking a `.deb` keeps it. Every regular
//! file is checked against the MD5 the package shipped (`info/<pkg>.md5sums`, or the `Conffiles`
//! hashes in `status`); anything missing, changed or unhashed makes the copy fail, and the caller downloads the
//! package instead. Nothing is read from the network, so this works offline.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::deb822;
use crate::error::{Error, Result, io};

/// One installed package.
#[derive(Debug, Clone)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub multi_arch_same: bool,
    /// Conffile path → MD5.
    pub conffiles: HashMap<String, String>,
}

/// The host's dpkg database.
#[derive(Debug, Clone)]
pub struct HostDb {
    root: PathBuf,
    installed: HashMap<(String, String), Installed>,
}

impl HostDb {
    /// Reads `var/lib/dpkg/status` under `root`; `Ok(None)` when there is no dpkg database.
    pub fn load(root: &Path) -> Result<Option<HostDb>> {
        let status = root.join("var/lib/dpkg/status");
        let text = match fs::read_to_string(&status) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read dpkg status", &status)(e)),
        };
        let mut installed = HashMap::new();
        for p in deb822::paragraphs(&text) {
            let (Some(name), Some(version), Some(arch), Some(state)) =
                (p.get("Package"), p.get("Version"), p.get("Architecture"), p.get("Status"))
            else {
                continue;
            };
            if !state.ends_with(" installed") {
                continue;
            }
            let conffiles = p
                .get("Conffiles")
                .map(|c| {
                    deb822::lines(c)
                        .filter_map(|l| {
                            let mut w = l.split_whitespace();
                            Some((w.next()?.trim_start_matches('/').to_owned(), w.next()?.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            installed.insert(
                (name.to_owned(), arch.to_owned()),
                Installed {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    architecture: arch.to_owned(),
                    multi_arch_same: p.get("Multi-Arch") == Some("same"),
                    conffiles,
                },
            );
        }
        Ok(Some(HostDb { root: root.to_owned(), installed }))
    }

    /// The installed package with this name, architecture and version (compared as dpkg does).
    pub fn find(&self, name: &str, arch: &str, version: &str) -> Option<&Installed> {
        self.installed.get(&(name.to_owned(), arch.to_owned())).filter(|i| {
            crate::version::Version::new(i.version.as_str()) == crate::version::Version::new(version)
        })
    }

    fn info_file(&self, pkg: &Installed, ext: &str) -> Option<PathBuf> {
        let info = self.root.join("var/lib/dpkg/info");
        [format!("{}:{}.{ext}", pkg.name, pkg.architecture), format!("{}.{ext}", pkg.name)]
            .into_iter()
            .map(|n| info.join(n))
            .find(|p| p.exists())
    }

    /// Every installed package.
    pub fn packages(&self) -> impl Iterator<Item = &Installed> {
        self.installed.values()
    }

    /// The installed package with this name and architecture, whatever its version.
    pub fn get(&self, name: &str, arch: &str) -> Option<&Installed> {
        self.installed.get(&(name.to_owned(), arch.to_owned()))
    }

    /// Copies the files of `pkg` from the host into `dest` (an existing empty directory), verifying each regular
    /// file's MD5. Fails on the first missing, changed or unhashed file that is not configuration: conffiles
    /// the admin removed or edited are left out (they are the host's, not the package's), and a listed directory
    /// that is a symlink on the host (merged `/usr`: `/lib -> usr/lib`) becomes a real directory, so the copy keeps
    /// the package's own layout.
    pub fn copy_package(&self, pkg: &Installed, dest: &Path) -> Result<usize> {
        let fail = |reason: String| Error::Realise {
            package: format!("{}:{} from the host", pkg.name, pkg.architecture),
            reason,
        };
        let list =
            self.info_file(pkg, "list").ok_or_else(|| fail("the dpkg database has no file list".into()))?;
        let list_text = fs::read_to_string(&list).map_err(io("read", &list))?;
        let mut sums: HashMap<String, String> = HashMap::new();
        if let Some(md5s) = self.info_file(pkg, "md5sums") {
            let text = fs::read_to_string(&md5s).map_err(io("read", &md5s))?;
            for line in text.lines() {
                if let Some((sum, path)) = line.split_once(char::is_whitespace) {
                    sums.insert(path.trim().trim_start_matches('/').to_owned(), sum.trim().to_owned());
                }
            }
        }
        let mut copied = 0;
        // The maintainer script says which alternatives the package registers (as `deb::unpack` keeps it).
        if let Some(postinst) = self.info_file(pkg, "postinst") {
            let meta = dest.join("DEBIAN");
            fs::create_dir_all(&meta).map_err(io("create directory", &meta))?;
            fs::copy(&postinst, meta.join("postinst")).map_err(io("copy", &postinst))?;
        }
        for line in list_text.lines() {
            let rel = line.trim().trim_start_matches('/');
            if rel.is_empty() || rel == "." {
                continue;
            }
            if rel.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(fail(format!("unsafe path '{line}' in {}", list.display())));
            }
            let conffile = pkg.conffiles.get(rel);
            let src = self.root.join(rel);
            let dst = dest.join(rel);
            let meta = match fs::symlink_metadata(&src) {
                Ok(meta) => meta,
                Err(_) if conffile.is_some() || !sums.contains_key(rel) => continue,
                Err(e) => return Err(fail(format!("{}: {e}", src.display()))),
            };
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent).map_err(io("create directory", parent))?;
            }
            let is_dir = meta.is_dir() || (meta.is_symlink() && fs::metadata(&src).is_ok_and(|m| m.is_dir()));
            if is_dir {
                if !dst.exists() {
                    fs::create_dir(&dst).map_err(io("create directory", &dst))?;
                }
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&src).map_err(io("read symlink", &src))?;
                std::os::unix::fs::symlink(&target, &dst).map_err(io("create symlink", &dst))?;
            } else if meta.is_file() {
                let data = read_all(&src)?;
                let got: String = Md5::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
                match (sums.get(rel), conffile) {
                    (Some(want), _) if &got != want => {
                        return Err(fail(format!("/{rel} was modified (MD5 {got}, package says {want})")));
                    }
                    (None, Some(want)) if &got != want => {
                        tracing::debug!("leaving out /{rel}: a conffile the admin changed");
                        continue;
                    }
                    (None, None) => return Err(fail(format!("/{rel} has no recorded MD5"))),
                    _ => {}
                }
                fs::write(&dst, &data).map_err(io("write", &dst))?;
                let mode = meta.permissions().mode() & 0o777;
                fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
                    .map_err(io("set permissions of", &dst))?;
                copied += 1;
            }
        }
        Ok(copied)
    }
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut f = fs::File::open(path).map_err(io("open", path))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v).map_err(io("read", path))?;
    Ok(v)
}
