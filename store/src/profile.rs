//! Profiles and generations as Nix keeps them: `P -> P-N-link` (a relative symlink switched atomically) and
//! `P-N-link -> <store path>`; a new generation only when the target changes; listing in `nix-env
//! --list-generations` format; rollback, switch and deletion (`old`, `+N`, `Nd`, numbers). Each generation is a GC
//! root: found directly under the state's `profiles/`, or through a `gcroots/auto` entry elsewhere.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError, io_err};
use crate::local::Store;
use crate::store_path::StorePath;

/// One generation of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u64,
    /// The `P-N-link` symlink.
    pub link: PathBuf,
    /// Where it points (a logical store path).
    pub target: PathBuf,
    /// Creation time (the link's mtime), seconds since the epoch.
    pub created: i64,
    pub current: bool,
}

/// Which generations `delete_generations` removes (the current one is never removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteSpec {
    /// Every generation except the current one.
    Old,
    /// Keep the current generation and the `N - 1` before it (newer ones stay too).
    KeepLast(u64),
    /// Generations older than this many days, keeping the one that was current then.
    OlderThanDays(u64),
    /// These numbers.
    Numbers(Vec<u64>),
}

impl DeleteSpec {
    /// Parses `old`, `+N`, `Nd` or generation numbers, as `nix-env --delete-generations` takes them.
    pub fn parse(args: &[String]) -> Result<DeleteSpec> {
        let bad = |a: &str| StoreError::Invalid(format!("invalid generation specification '{a}'"));
        match args {
            [one] if one == "old" => Ok(DeleteSpec::Old),
            [one] if one.starts_with('+') => one[1..].parse().map(DeleteSpec::KeepLast).map_err(|_| bad(one)),
            [one] if one.ends_with('d') => {
                one[..one.len() - 1].parse().map(DeleteSpec::OlderThanDays).map_err(|_| bad(one))
            }
            [] => Err(StoreError::Invalid("no generations given to delete".into())),
            many => many
                .iter()
                .map(|a| a.parse().map_err(|_| bad(a)))
                .collect::<Result<_>>()
                .map(DeleteSpec::Numbers),
        }
    }
}

/// A profile: the symlink `P` and its generations beside it.
#[derive(Debug, Clone)]
pub struct Profile {
    path: PathBuf,
}

impl Profile {
    pub fn new(path: impl Into<PathBuf>) -> Profile {
        Profile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Profile { profile: self.path.clone(), reason: reason.into() }
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    fn base(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn link_name(&self, n: u64) -> String {
        format!("{}-{n}-link", self.base())
    }

    /// The current generation's number, if the profile exists.
    pub fn current(&self) -> Result<Option<u64>> {
        match fs::read_link(&self.path) {
            Ok(t) => Ok(self.parse_link_name(&t.file_name().unwrap_or_default().to_string_lossy())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read profile", &self.path)(e)),
        }
    }

    fn parse_link_name(&self, name: &str) -> Option<u64> {
        name.strip_prefix(&format!("{}-", self.base()))?.strip_suffix("-link")?.parse().ok()
    }

    /// Every generation, oldest first.
    pub fn generations(&self) -> Result<Vec<Generation>> {
        let current = self.current()?;
        let mut out = Vec::new();
        let rd = match fs::read_dir(self.dir()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("list", self.dir())(e)),
        };
        for e in rd.flatten() {
            let Some(number) = self.parse_link_name(&e.file_name().to_string_lossy()) else { continue };
            let link = e.path();
            let Ok(meta) = fs::symlink_metadata(&link) else { continue };
            let target = fs::read_link(&link).map_err(io_err("read generation link", &link))?;
            out.push(Generation {
                number,
                link,
                target,
                created: meta.mtime(),
                current: Some(number) == current,
            });
        }
        out.sort_by_key(|g| g.number);
        Ok(out)
    }

    /// Points the profile at generation `n` (atomically); returns the previous current generation.
    pub fn switch(&self, n: u64) -> Result<Option<u64>> {
        let from = self.current()?;
        if fs::symlink_metadata(self.dir().join(self.link_name(n))).is_err() {
            return Err(self.err(format!("profile version {n} does not exist")));
        }
        let tmp = self.dir().join(crate::fsutil::unique_name(".tmp-profile"));
        std::os::unix::fs::symlink(self.link_name(n), &tmp).map_err(io_err("create symlink", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err("switch profile", &self.path)(e)
        })?;
        Ok(from)
    }

    /// Switches to the highest generation below the current one; returns (from, to).
    pub fn rollback(&self) -> Result<(u64, u64)> {
        let current = self.current()?.ok_or_else(|| self.err("the profile has no current generation"))?;
        let previous = self
            .generations()?
            .into_iter()
            .filter(|g| g.number < current)
            .map(|g| g.number)
            .max()
            .ok_or_else(|| self.err(format!("no generation older than the current ({current}) exists")))?;
        self.switch(previous)?;
        Ok((current, previous))
    }

    /// Removes generations as `spec` says (never the current one); returns the removed numbers.
    pub fn delete_generations(&self, spec: &DeleteSpec, now: i64) -> Result<Vec<u64>> {
        let current = self.current()?;
        let gens = self.generations()?;
        let mut doomed = Vec::new();
        match spec {
            DeleteSpec::Old => doomed.extend(gens.iter().filter(|g| !g.current).map(|g| g.number)),
            DeleteSpec::Numbers(ns) => {
                for n in ns {
                    if Some(*n) == current {
                        return Err(
                            self.err(format!("cannot delete the current version ({n}) of the profile"))
                        );
                    }
                    if !gens.iter().any(|g| g.number == *n) {
                        return Err(self.err(format!("profile version {n} does not exist")));
                    }
                    doomed.push(*n);
                }
            }
            DeleteSpec::KeepLast(keep) => {
                let mut keep = *keep;
                let mut below_current = false;
                for g in gens.iter().rev() {
                    if g.current {
                        below_current = true;
                        keep = keep.saturating_sub(1);
                    } else if below_current {
                        if keep > 0 {
                            keep -= 1;
                        } else {
                            doomed.push(g.number);
                        }
                    }
                }
            }
            DeleteSpec::OlderThanDays(days) => {
                let cutoff = now - (*days as i64) * 86_400;
                let mut can_delete = false;
                for g in gens.iter().rev() {
                    if can_delete {
                        if !g.current {
                            doomed.push(g.number);
                        }
                    } else if g.created < cutoff {
                        // This one was current at the cutoff: it stays, older ones go.
                        can_delete = true;
                    }
                }
            }
        }
        doomed.sort_unstable();
        for n in &doomed {
            let link = self.dir().join(self.link_name(*n));
            fs::remove_file(&link).map_err(io_err("remove generation", &link))?;
        }
        Ok(doomed)
    }
}

/// Formats generations as `nix-env --list-generations` does: `%4u   YYYY-MM-DD HH:MM:SS   (current)`, in local
/// time when `local` is true, else UTC.
pub fn format_generations(gens: &[Generation], local: bool) -> String {
    let mut out = String::new();
    for g in gens {
        let (y, mo, d, h, mi, s) = if local { local_time(g.created) } else { utc_time(g.created) };
        out.push_str(&format!(
            "{:4}   {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}   {}\n",
            g.number,
            if g.current { "(current)" } else { "" }
        ));
    }
    out
}

type Civil = (i64, u32, u32, u32, u32, u32);

fn utc_time(t: i64) -> Civil {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400) as u32;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

fn local_time(t: i64) -> Civil {
    let time: libc::time_t = t as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live, properly aligned locals; localtime_r is the thread-safe variant.
    let ok = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    if !ok {
        return utc_time(t);
    }
    (
        i64::from(tm.tm_year) + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    )
}

impl Store {
    /// The default profile, `<state>/profiles/default`.
    pub fn default_profile(&self) -> Profile {
        Profile::new(self.state_dir().join("profiles/default"))
    }

    /// Makes `target` the profile's new current generation, unless it already is; returns the generation number
    /// and whether it is new. The generation is kept alive by the collector.
    pub fn create_generation(&self, profile: &Profile, target: &StorePath) -> Result<(u64, bool)> {
        let gens = profile.generations()?;
        if let Some(cur) = gens.iter().find(|g| g.current)
            && cur.target == target.to_absolute()
        {
            return Ok((cur.number, false));
        }
        fs::create_dir_all(profile.dir()).map_err(io_err("create directory", profile.dir()))?;
        let n = gens.iter().map(|g| g.number).max().unwrap_or(0) + 1;
        let link = profile.dir().join(profile.link_name(n));
        self.add_root(&link, target)?;
        profile.switch(n)?;
        Ok((n, true))
    }
}

/// The file in a user environment that lists the packages it was built from.
pub const MANIFEST: &str = "manifest.json";

impl Store {
    /// Builds a user environment: a tree of symlinks merging the packages' top-level directories (as Nix's
    /// `buildenv` does; two packages providing the same file is a collision) plus `manifest.json` listing the
    /// packages; adds it to the store as `user-environment` referring to them.
    pub fn build_user_environment(&self, packages: &[StorePath]) -> Result<StorePath> {
        let tmp = tempdir_in(self.state_dir())?;
        let result = (|| {
            let root = tmp.join("env");
            fs::create_dir(&root).map_err(io_err("create directory", &root))?;
            for p in packages {
                if !self.is_valid(p)? {
                    return Err(StoreError::NotValid(p.to_string()));
                }
                let phys = self.physical_path(p);
                if fs::symlink_metadata(&phys).map(|m| m.is_dir()).unwrap_or(false) {
                    self.merge_into(&root, &p.to_absolute(), p)?;
                }
            }
            let mut json = String::from("{\"version\":1,\"packages\":[");
            for (i, p) in packages.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                json.push_str(&format!("\"{p}\""));
            }
            json.push_str("]}\n");
            let manifest = root.join(MANIFEST);
            if fs::symlink_metadata(&manifest).is_ok() {
                crate::fsutil::remove_tree(&manifest)?;
            }
            fs::write(&manifest, json).map_err(io_err("write", &manifest))?;
            self.add_tree("user-environment", &root, packages)
        })();
        let _ = crate::fsutil::remove_tree(&tmp);
        result
    }

    fn is_dir_logical(&self, logical: &Path) -> bool {
        let phys = self.config().physical(logical);
        fs::metadata(phys).map(|m| m.is_dir()).unwrap_or(false)
    }

    /// Merges the directory at logical path `src` (inside package `owner`) into the real directory `dst`.
    fn merge_into(&self, dst: &Path, src: &Path, owner: &StorePath) -> Result<()> {
        let phys = self.config().physical(src);
        let mut names: Vec<_> = fs::read_dir(&phys)
            .map_err(io_err("list", &phys))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io_err("list", &phys))?;
        names.sort();
        for name in names {
            if name == MANIFEST && src.parent() == Some(self.store_dir().as_path()) {
                continue;
            }
            let here = dst.join(&name);
            let from = src.join(&name);
            match fs::symlink_metadata(&here) {
                Err(_) => {
                    std::os::unix::fs::symlink(&from, &here).map_err(io_err("create symlink", &here))?
                }
                Ok(m) if m.is_dir() && self.is_dir_logical(&from) => self.merge_into(&here, &from, owner)?,
                Ok(m) if m.is_symlink() => {
                    let earlier = fs::read_link(&here).map_err(io_err("read symlink", &here))?;
                    if self.is_dir_logical(&earlier) && self.is_dir_logical(&from) {
                        fs::remove_file(&here).map_err(io_err("remove", &here))?;
                        fs::create_dir(&here).map_err(io_err("create directory", &here))?;
                        self.merge_into(&here, &earlier, owner)?;
                        self.merge_into(&here, &from, owner)?;
                    } else {
                        return Err(StoreError::Invalid(format!(
                            "collision between '{}' and '{}'",
                            earlier.display(),
                            from.display()
                        )));
                    }
                }
                Ok(_) => {
                    return Err(StoreError::Invalid(format!(
                        "collision at '{}' while adding '{owner}'",
                        here.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The packages of the profile's current user environment (empty without one).
    pub fn profile_packages(&self, profile: &Profile) -> Result<Vec<StorePath>> {
        let Some(current) = profile.generations()?.into_iter().find(|g| g.current) else {
            return Ok(Vec::new());
        };
        let manifest = self.config().physical(&current.target).join(MANIFEST);
        let text = match fs::read_to_string(&manifest) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &manifest)(e)),
        };
        let list = text.split_once("\"packages\":[").map(|(_, r)| r).unwrap_or("");
        let list = list.split(']').next().unwrap_or("");
        list.split(',')
            .map(|s| s.trim().trim_matches('"'))
            .filter(|s| !s.is_empty())
            .map(|s| self.parse_path(s))
            .collect()
    }
}

fn tempdir_in(dir: &Path) -> Result<PathBuf> {
    let t = dir.join(crate::fsutil::unique_name(".tmp-env"));
    fs::create_dir(&t).map_err(io_err("create directory", &t))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        assert_eq!(utc_time(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(utc_time(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_time(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn specs() {
        let s = |v: &[&str]| DeleteSpec::parse(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["old"]).unwrap(), DeleteSpec::Old);
        assert_eq!(s(&["+3"]).unwrap(), DeleteSpec::KeepLast(3));
        assert_eq!(s(&["30d"]).unwrap(), DeleteSpec::OlderThanDays(30));
        assert_eq!(s(&["1", "2"]).unwrap(), DeleteSpec::Numbers(vec![1, 2]));
        assert!(s(&["x"]).is_err());
    }
}
