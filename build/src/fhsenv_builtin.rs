//! `builtin:fhsenv`, fhskit's own builder for FHS environments (what `buildFHSEnv` builds its root tree with): the
//! output is an fhsenv tree (`usr/…`, `bin`/`lib*` links, `etc/` with our `ld.so.cache`, `fhsenv.toml`) made by
//! `fhsenv::build` from the derivation's package directories, so `fhskit env run <out>` enters it. Nix does not know
//! this builder: the `.drv` stays valid for Nix, which would refuse to build it.
//!
//! Attributes: `packages` and `multiPackages` (store paths, space-separated as Nix passes lists; earlier wins),
//! `runScript` (the command `env run` starts without one, split on spaces), `profile` (shell text for
//! `/etc/profile`), `envName` (default: the derivation's name without `-fhs`), `privateTmp`, `dieWithParent` and
//! `unshareUser`/`unshareIpc`/`unsharePid`/`unshareNet`/`unshareUts`/`unshareCgroup` (`1` or empty, as Nix passes
//! booleans). Every package must be in the derivation's input closure: the builder runs outside the sandbox, so
//! that check is what keeps it from reading paths the derivation does not depend on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use store::{Derivation, Store, StorePath};

/// Builds the env tree of `drv` at `dest` (which must not exist). Errors are log text.
pub(crate) fn build(
    store: &Store,
    drv: &Derivation,
    input_closure: &BTreeSet<StorePath>,
    dest: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let env = &drv.env;
    let flag = |name: &str, default: bool| env.get(name).map_or(default, |v| v == "1");
    let paths = |name: &str| -> Result<Vec<PathBuf>, String> {
        let mut out = Vec::new();
        for word in env.get(name).map(String::as_str).unwrap_or("").split_whitespace() {
            let path = store
                .parse_path(word)
                .map_err(|e| format!("attribute '{name}': '{word}' is not a store path: {e}"))?;
            if !input_closure.contains(&path) {
                return Err(format!(
                    "attribute '{name}': '{word}' is not an input of the derivation (add it to its inputs)"
                ));
            }
            let dir = store.physical_path(&path);
            if !dir.is_dir() {
                return Err(format!("attribute '{name}': '{word}' is not a directory"));
            }
            out.push(dir);
        }
        Ok(out)
    };
    let drv_name = env.get("name").map(String::as_str).unwrap_or("fhsenv");
    let name = match env.get("envName") {
        Some(n) if !n.is_empty() => n.clone(),
        _ => drv_name.strip_suffix("-fhs").unwrap_or(drv_name).to_owned(),
    };
    let mut spec = fhsenv::EnvSpec { name, ..Default::default() };
    spec.packages = paths("packages")?;
    spec.multi_packages = paths("multiPackages")?;
    if let Some(run) = env.get("runScript").filter(|r| !r.trim().is_empty()) {
        spec.run = run.split_whitespace().map(str::to_owned).collect();
    }
    spec.profile = env.get("profile").cloned().unwrap_or_default();
    spec.private_tmp = flag("privateTmp", false);
    spec.die_with_parent = flag("dieWithParent", true);
    spec.unshare.pid = flag("unsharePid", false);
    spec.unshare.net = flag("unshareNet", false);
    spec.unshare.ipc = flag("unshareIpc", false);
    spec.unshare.uts = flag("unshareUts", false);
    spec.unshare.cgroup = flag("unshareCgroup", false);
    spec.store_dir = Some(store.physical_store_dir().to_path_buf());
    if spec.packages.is_empty() && spec.multi_packages.is_empty() {
        return Err("attribute 'packages': the env declares no packages".into());
    }
    log(&format!(
        "building the FHS env '{}' from {} packages ({} with 32-bit halves)",
        spec.name,
        spec.packages.len() + spec.multi_packages.len(),
        spec.multi_packages.len()
    ));
    let report = fhsenv::build(&spec, dest).map_err(|e| format!("cannot build the FHS env: {e}"))?;
    log(&format!(
        "{} links, {} ld.so.cache entries, {} paths provided by more than one package (the first listed wins)",
        report.links,
        report.cache_entries,
        report.conflicts.len()
    ));
    Ok(())
}
