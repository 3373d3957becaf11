//! What happens to a builder's outputs (Nix's `registerOutputs`): each must exist and not be group- or
//! world-writable; it is canonicalised (modes 0444/0555, mtime 1, owner, only files, directories and symlinks);
//! its references are found by scanning for the hash parts of the input closure and of the derivation's own
//! outputs; its NAR is hashed. Fixed outputs must hash to what the derivation says (a mismatch registers the
//! output under the path of what it really is, then fails with Nix's message) and refer to nothing. Then the
//! output checks (`allowedReferences`, …, `outputChecks`), and all outputs become valid in one transaction with
//! the derivation as deriver; or, with `--check`, their NAR hashes are compared with the registered ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::{Map, Value};
use store::{BuiltOutput, ContentAddress, Derivation, Hash, OutputHashMode, PathInfo, Store, StorePath, nar};

use crate::env::strings_attr;
use crate::error::{Failure, FailureKind};

/// What `register` needs.
pub(crate) struct Outputs<'a> {
    pub store: &'a Store,
    pub drv_path: &'a StorePath,
    pub drv: &'a Derivation,
    pub structured: Option<&'a Map<String, Value>>,
    pub input_closure: &'a BTreeSet<StorePath>,
    /// Output name → where the builder left it on the host.
    pub locations: BTreeMap<String, PathBuf>,
    /// `--check`: compare with the registered outputs instead of registering.
    pub check: bool,
    /// With `check`: keep a differing output at `<path>.check`.
    pub keep_failed: bool,
}

fn fail(o: &Outputs<'_>, kind: FailureKind, message: String) -> Failure {
    Failure { drv: o.drv_path.clone(), kind, message }
}

fn store_err(o: &Outputs<'_>, e: impl std::fmt::Display) -> Failure {
    fail(o, FailureKind::Builder, format!("cannot register the outputs of '{}': {e}", o.drv_path))
}

/// Registers (or checks) the outputs; returns output name → path.
pub(crate) fn register(o: &Outputs<'_>) -> Result<BTreeMap<String, StorePath>, Failure> {
    let store = o.store;
    let candidates: Vec<StorePath> = o
        .input_closure
        .iter()
        .cloned()
        .chain(o.drv.output_paths().map(|(_, p)| p.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut infos: BTreeMap<String, PathInfo> = BTreeMap::new();
    let mut built: Vec<BuiltOutput> = Vec::new();
    let mut done: BTreeMap<String, StorePath> = BTreeMap::new();
    for (name, out) in &o.drv.outputs {
        let Some(path) = &out.path else {
            return Err(fail(
                o,
                FailureKind::Other,
                format!(
                    "output '{name}' of '{}' has no known path (content-addressed derivations are not supported)",
                    o.drv_path
                ),
            ));
        };
        if !o.check && store.is_valid(path).map_err(|e| store_err(o, e))? {
            done.insert(name.clone(), path.clone());
            continue;
        }
        let location = &o.locations[name];
        let meta = match fs::symlink_metadata(location) {
            Ok(m) => m,
            Err(_) => {
                return Err(fail(
                    o,
                    FailureKind::Builder,
                    format!(
                        "builder for '{}' failed to produce output path for output '{name}' at '{path}'",
                        o.drv_path
                    ),
                ));
            }
        };
        if !meta.file_type().is_symlink() && meta.permissions().mode() & 0o022 != 0 {
            return Err(fail(
                o,
                FailureKind::Builder,
                format!(
                    "suspicious ownership or permission on '{path}' for output '{name}'; rejecting this build output"
                ),
            ));
        }
        store::fsutil::canonicalise(location).map_err(|e| {
            fail(o, FailureKind::Builder, format!("output '{name}' of '{}': {e}", o.drv_path))
        })?;
        // `unsafeDiscardReferences.<output> = true` (structured attributes only): no scan, no references.
        let discard = o
            .structured
            .and_then(|a| a.get("unsafeDiscardReferences"))
            .and_then(|d| d.get(name))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let references = if discard {
            BTreeSet::new()
        } else {
            store.scan_references(location, &candidates).map_err(|e| store_err(o, e))?
        };
        let (nar_hash, nar_size) =
            hash_nar(location, store::HashAlgo::Sha256).map_err(|e| store_err(o, e))?;
        let fixed = out.fixed_hash(name).map_err(|e| fail(o, FailureKind::Builder, e.to_string()))?;
        let mut info = PathInfo {
            path: path.clone(),
            nar_hash: nar_hash.clone(),
            nar_size,
            references,
            deriver: Some(o.drv_path.clone()),
            registration_time: store::now(),
            ultimate: true,
            sigs: Vec::new(),
            ca: None,
        };
        if let Some(fixed) = fixed {
            if !info.references.is_empty() {
                let first = info.references.iter().next().expect("not empty");
                return Err(fail(
                    o,
                    FailureKind::Builder,
                    format!(
                        "fixed-output derivations must not reference store paths: '{}' references {} distinct paths, e.g. '{first}'",
                        o.drv_path,
                        info.references.len()
                    ),
                ));
            }
            if fixed.mode != OutputHashMode::Recursive
                && (!meta.is_file() || meta.permissions().mode() & 0o100 != 0)
            {
                return Err(fail(
                    o,
                    FailureKind::Builder,
                    format!(
                        "output path '{path}' should be a non-executable regular file since recursive hashing is \
                         not enabled (outputHashMode=flat)"
                    ),
                ));
            }
            let got = match fixed.mode {
                OutputHashMode::Recursive if fixed.hash.algo() == store::HashAlgo::Sha256 => nar_hash.clone(),
                OutputHashMode::Recursive => {
                    hash_nar(location, fixed.hash.algo()).map_err(|e| store_err(o, e))?.0
                }
                OutputHashMode::Flat | OutputHashMode::Text => {
                    hash_file(location, fixed.hash.algo()).map_err(|e| store_err(o, e))?
                }
            };
            let ca = match fixed.mode {
                OutputHashMode::Text => ContentAddress::Text(got.clone()),
                m => ContentAddress::Fixed(m.ingestion(), got.clone()),
            };
            info.ca = Some(ca.clone());
            if got != fixed.hash {
                // As Nix: the output is kept under the path of what it is, so fixing the hash needs no refetch.
                info.path = store
                    .store_dir()
                    .make_ca_path(path.name(), &ca, &[], false)
                    .map_err(|e| store_err(o, e))?;
                if !o.check {
                    store
                        .add_built(vec![BuiltOutput { staged: location.clone(), info }])
                        .map_err(|e| store_err(o, e))?;
                }
                return Err(fail(
                    o,
                    FailureKind::HashMismatch,
                    format!(
                        "hash mismatch in fixed-output derivation '{}':\n  specified: {}\n     got:    {}",
                        o.drv_path,
                        fixed.hash.to_sri(),
                        got.to_sri()
                    ),
                ));
            }
        }
        infos.insert(name.clone(), info.clone());
        built.push(BuiltOutput { staged: location.clone(), info });
        done.insert(name.clone(), path.clone());
    }
    check_outputs(o, &infos)?;
    if o.check {
        return compare(o, &infos);
    }
    store.add_built(built).map_err(|e| store_err(o, e))?;
    Ok(done)
}

/// The NAR hash and size of an output. Outputs are mostly small: hashed on this thread (`nar::hash_path` starts
/// a hashing thread with megabyte buffers, which pays off for large trees only).
fn hash_nar(path: &std::path::Path, algo: store::HashAlgo) -> store::Result<(Hash, u64)> {
    const LARGE: u64 = 8 << 20;
    let large = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => tree_larger_than(path, LARGE),
        Ok(m) => m.len() > LARGE,
        Err(_) => false,
    };
    if large {
        return Ok(nar::hash_path(path, algo)?);
    }
    let mut h = store::hash::Hasher::new(algo);
    let n = nar::dump(path, &mut h)?;
    Ok((h.finish(), n))
}

/// Returns true if and only if the regular files under `dir` hold more than `limit` bytes (stops counting early).
fn tree_larger_than(dir: &std::path::Path, limit: u64) -> bool {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
                if total > limit {
                    return true;
                }
            }
        }
    }
    false
}

fn hash_file(path: &std::path::Path, algo: store::HashAlgo) -> store::Result<Hash> {
    let mut f = fs::File::open(path).map_err(|source| store::StoreError::Io {
        action: "open",
        path: path.to_owned(),
        source,
    })?;
    let mut h = store::hash::Hasher::new(algo);
    std::io::copy(&mut f, &mut h).map_err(|source| store::StoreError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    Ok(h.finish())
}

/// `--check`: the rebuilt outputs must have the registered NAR hashes.
fn compare(
    o: &Outputs<'_>,
    infos: &BTreeMap<String, PathInfo>,
) -> Result<BTreeMap<String, StorePath>, Failure> {
    let mut done = BTreeMap::new();
    for (name, new) in infos {
        let old = o.store.path_info(&new.path).map_err(|e| store_err(o, e))?.ok_or_else(|| {
            fail(
                o,
                FailureKind::Other,
                format!("some outputs of '{}' are not valid, so checking is not possible", o.drv_path),
            )
        })?;
        if old.nar_hash != new.nar_hash {
            let real = o.store.physical_path(&new.path);
            if o.keep_failed {
                let dst = PathBuf::from(format!("{}.check", real.display()));
                let _ = store::fsutil::remove_tree(&dst);
                fs::rename(&o.locations[name], &dst).map_err(|e| store_err(o, e))?;
                return Err(fail(
                    o,
                    FailureKind::NotDeterministic,
                    format!(
                        "derivation '{}' may not be deterministic: output '{}' differs from '{}'",
                        o.drv_path,
                        real.display(),
                        dst.display()
                    ),
                ));
            }
            return Err(fail(
                o,
                FailureKind::NotDeterministic,
                format!(
                    "derivation '{}' may not be deterministic: output '{}' differs",
                    o.drv_path,
                    real.display()
                ),
            ));
        }
        done.insert(name.clone(), new.path.clone());
    }
    Ok(done)
}

/// The closure of `path` and its size, where outputs of this build are not valid yet.
fn closure_of(
    o: &Outputs<'_>,
    by_path: &BTreeMap<&StorePath, &PathInfo>,
    path: &StorePath,
) -> Result<(BTreeSet<StorePath>, u64), Failure> {
    let mut seen = BTreeSet::new();
    let mut size = 0;
    let mut todo = vec![path.clone()];
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        let info = match by_path.get(&p) {
            Some(i) => (*i).clone(),
            None => o
                .store
                .path_info(&p)
                .map_err(|e| store_err(o, e))?
                .ok_or_else(|| store_err(o, format!("path '{p}' is not valid")))?,
        };
        size += info.nar_size;
        todo.extend(info.references.iter().cloned());
    }
    Ok((seen, size))
}

#[derive(Default)]
struct Checks {
    ignore_self_refs: bool,
    max_size: Option<u64>,
    max_closure_size: Option<u64>,
    allowed_references: Option<Vec<String>>,
    allowed_requisites: Option<Vec<String>>,
    disallowed_references: Option<Vec<String>>,
    disallowed_requisites: Option<Vec<String>>,
}

/// `allowedReferences`, `allowedRequisites`, `disallowedReferences`, `disallowedRequisites`, and with structured
/// attributes also `maxSize` and `maxClosureSize`, per output under `outputChecks`.
fn check_outputs(o: &Outputs<'_>, infos: &BTreeMap<String, PathInfo>) -> Result<(), Failure> {
    let by_path: BTreeMap<&StorePath, &PathInfo> = infos.values().map(|i| (&i.path, i)).collect();
    for (name, info) in infos {
        let checks = match o.structured {
            Some(attrs) => {
                let Some(Value::Object(spec)) = attrs.get("outputChecks").and_then(|c| c.get(name)) else {
                    continue;
                };
                let list = |k: &str| -> Option<Vec<String>> {
                    spec.get(k)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                };
                Checks {
                    ignore_self_refs: false,
                    max_size: spec.get("maxSize").and_then(Value::as_u64),
                    max_closure_size: spec.get("maxClosureSize").and_then(Value::as_u64),
                    allowed_references: list("allowedReferences"),
                    allowed_requisites: list("allowedRequisites"),
                    disallowed_references: list("disallowedReferences"),
                    disallowed_requisites: list("disallowedRequisites"),
                }
            }
            None => Checks {
                ignore_self_refs: true,
                allowed_references: strings_attr(o.drv, None, "allowedReferences"),
                allowed_requisites: strings_attr(o.drv, None, "allowedRequisites"),
                disallowed_references: strings_attr(o.drv, None, "disallowedReferences"),
                disallowed_requisites: strings_attr(o.drv, None, "disallowedRequisites"),
                ..Checks::default()
            },
        };
        if let Some(max) = checks.max_size
            && info.nar_size > max
        {
            return Err(fail(
                o,
                FailureKind::Builder,
                format!("path '{}' is too large at {} bytes; limit is {max} bytes", info.path, info.nar_size),
            ));
        }
        if let Some(max) = checks.max_closure_size {
            let (_, size) = closure_of(o, &by_path, &info.path)?;
            if size > max {
                return Err(fail(
                    o,
                    FailureKind::Builder,
                    format!(
                        "closure of path '{}' is too large at {size} bytes; limit is {max} bytes",
                        info.path
                    ),
                ));
            }
        }
        let check_refs =
            |spec: &Option<Vec<String>>, allowed: bool, recursive: bool| -> Result<(), Failure> {
                let Some(spec) = spec else { return Ok(()) };
                let mut set = BTreeSet::new();
                for s in spec {
                    if let Ok((p, "")) = o.store.store_dir().parse_path_prefix(s) {
                        set.insert(p);
                    } else if let Some(out) = o.drv.outputs.get(s).and_then(|x| x.path.clone()) {
                        set.insert(out);
                    } else {
                        return Err(fail(
                            o,
                            FailureKind::Builder,
                            format!("derivation contains an illegal reference specifier '{s}'"),
                        ));
                    }
                }
                let mut used =
                    if recursive { closure_of(o, &by_path, &info.path)?.0 } else { info.references.clone() };
                if recursive && checks.ignore_self_refs {
                    used.remove(&info.path);
                }
                let bad: Vec<&StorePath> = used.iter().filter(|u| set.contains(*u) != allowed).collect();
                if bad.is_empty() {
                    return Ok(());
                }
                let list: String = bad.iter().map(|b| format!("\n  {b}")).collect();
                Err(fail(
                    o,
                    FailureKind::Builder,
                    format!("output '{}' is not allowed to refer to the following paths:{list}", info.path),
                ))
            };
        check_refs(&checks.allowed_references, true, false)?;
        check_refs(&checks.allowed_requisites, true, true)?;
        check_refs(&checks.disallowed_references, false, false)?;
        check_refs(&checks.disallowed_requisites, false, true)?;
    }
    Ok(())
}
