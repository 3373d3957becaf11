//! Starting a program through another loader at the program's own interpreter path, without touching the file.
//!
//! A prebuilt program names `/lib64/ld-linux-x86-64.so.2` as its `PT_INTERP`; a NixOS-like host has no such file
//! (or a stub). Executing the loader by hand (`ld.so PROGRAM`) would make the loader the process's executable, and
//! programs that re-execute `/proc/self/exe` (node's `child_process`, Chromium's zygote, JVM launchers) would start
//! the loader with their own arguments. Instead the calling process enters a private mount namespace (and a user
//! namespace when unprivileged, see [`crate::userns`]), makes the loader appear at the interpreter path, and
//! executes the program itself: the kernel loads it through that loader, so `/proc/self/exe`, `argv[0]` and
//! `AT_EXECFN` are the program's, and children that re-execute it go the same way. Nothing is mounted outside the
//! namespace; it ends with the last process in it.
//!
//! How the loader appears ([`Provision`]): bound over the file when the interpreter path exists (following its
//! symlinks); otherwise a read-only overlay on the nearest existing directory adds the missing entries from a small
//! layer directory holding the loader. A path with nothing above it but `/` cannot be provided this way (an overlay
//! on `/` would hide every other mount).

use std::convert::Infallible;
use std::ffi::CString;
use std::path::{Component, Path, PathBuf};

use nix::mount::{MsFlags, mount};

use crate::error::{Error, Result};
use crate::spec::UnshareSpec;
use crate::userns;

/// How the loader is made to appear at the interpreter path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provision {
    /// The path exists (this is the file it resolves to): bind the loader over it.
    Bind(PathBuf),
    /// `dir` exists and `missing` (relative) does not: overlay `dir` with a layer adding `missing`.
    Overlay { dir: PathBuf, missing: PathBuf },
}

/// Works out how `interp` (absolute) can be provided on this host, following symlinks as the kernel would.
pub fn provision(interp: &Path) -> Result<Provision> {
    let unusable = |reason: &str| Error::Plan { path: interp.to_owned(), reason: reason.to_owned() };
    if !interp.is_absolute() {
        return Err(unusable("the interpreter path is not absolute"));
    }
    let mut base = PathBuf::from("/");
    let mut rest: Vec<PathBuf> = components(interp);
    let mut hops = 0;
    while !rest.is_empty() {
        let next = base.join(&rest[0]);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(unusable("too many levels of symbolic links"));
                }
                let target = std::fs::read_link(&next).map_err(Error::io("read link", &next))?;
                let resolved = if target.is_absolute() { target } else { base.join(target) };
                let mut more = components(&resolved);
                more.extend(rest.drain(1..));
                rest = more;
                base = PathBuf::from("/");
            }
            Ok(m) => {
                if rest.len() > 1 && !m.is_dir() {
                    return Err(unusable(&format!("{} is not a directory", next.display())));
                }
                base = next;
                rest.remove(0);
            }
            Err(_) => {
                if base == Path::new("/") {
                    return Err(unusable(
                        "nothing of its directories exists, and a loader cannot be added to / without hiding the \
                         host's other mounts",
                    ));
                }
                return Ok(Provision::Overlay { dir: base, missing: rest.iter().collect() });
            }
        }
    }
    Ok(Provision::Bind(base))
}

/// Normal components of an absolute path, `..` applied.
fn components(p: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(PathBuf::from(s)),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The layer directory for an overlay that adds `missing` (holding `loader`), created once under `layers`.
fn layer(layers: &Path, loader: &Path, missing: &Path) -> Result<PathBuf> {
    let key: String = format!("{}|{}", loader.display(), missing.display())
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
        .to_string();
    let dir = layers.join(key);
    if dir.join(missing).is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(layers).map_err(Error::io("create directory", layers))?;
    let tmp = layers.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let file = tmp.join(missing);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
    }
    if std::fs::hard_link(loader, &file).is_err() {
        std::fs::copy(loader, &file).map_err(Error::io("copy the loader to", &file))?;
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process made it meanwhile.
        Err(_) if dir.join(missing).is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(Error::io("create layer", &dir)(e)),
    }
}

/// Enters the namespaces, makes `loader` appear at `interp` and executes `argv[0]` with `envp`. Must be called
/// from a single-threaded process; returns only on failure. `layers` is a writable directory for overlay layers
/// (kept between runs).
pub fn exec(
    interp: &Path,
    loader: &Path,
    layers: &Path,
    argv: &[CString],
    envp: &[CString],
) -> Result<Infallible> {
    let program =
        argv.first().ok_or_else(|| Error::Plan { path: interp.into(), reason: "no program".into() })?;
    let how = provision(interp)?;
    let layer_dir = match &how {
        Provision::Overlay { missing, .. } => Some(layer(layers, loader, missing)?),
        Provision::Bind(_) => None,
    };
    userns::enter(&UnshareSpec::default(), false)?;
    // mount(2): nothing done here may propagate back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(Error::sys("make mounts private under", "/"))?;
    match (&how, layer_dir) {
        (Provision::Bind(file), _) => {
            mount(Some(loader), file, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(Error::sys("bind the loader over", file))?;
        }
        (Provision::Overlay { dir, .. }, Some(layer)) => {
            let text = |p: &Path| {
                let s = p.to_str().filter(|s| !s.contains([':', ',', '\\']));
                s.map(str::to_owned).ok_or_else(|| Error::Plan {
                    path: p.into(),
                    reason: "overlay layers cannot contain ':' ',' or '\\' or non-UTF-8 bytes".into(),
                })
            };
            let data = format!("lowerdir={}:{}", text(&layer)?, text(dir)?);
            mount(Some("overlay"), dir, Some("overlay"), MsFlags::MS_RDONLY, Some(data.as_str())).map_err(
                Error::sys("mount overlayfs (needs Linux 5.11 or later without privileges) on", dir),
            )?;
        }
        (Provision::Overlay { dir, .. }, None) => {
            return Err(Error::Plan { path: dir.clone(), reason: "no layer".into() });
        }
    }
    let err = nix::unistd::execve(program, argv, envp).unwrap_err();
    Err(Error::Sys {
        action: "execute",
        path: PathBuf::from(program.to_string_lossy().into_owned()),
        source: err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_missing_and_impossible_paths() {
        // /proc/self/exe exists on every Linux.
        assert!(matches!(provision(Path::new("/proc/self/exe")), Ok(Provision::Bind(_))));
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("lib64/ld-test.so.2");
        assert_eq!(
            provision(&missing).unwrap(),
            Provision::Overlay { dir: dir.path().to_owned(), missing: "lib64/ld-test.so.2".into() }
        );
        // A link to a missing directory is followed to where it points.
        std::os::unix::fs::symlink(dir.path().join("usr/lib64"), dir.path().join("lib64")).unwrap();
        std::fs::create_dir(dir.path().join("usr")).unwrap();
        assert_eq!(
            provision(&missing).unwrap(),
            Provision::Overlay { dir: dir.path().join("usr"), missing: "lib64/ld-test.so.2".into() }
        );
        let e = provision(Path::new("/fhskit-no-such-dir/ld.so")).unwrap_err().to_string();
        assert!(e.contains("/fhskit-no-such-dir/ld.so"), "{e}");
        // The layer holds the loader under the missing path, and is reused.
        let loader = dir.path().join("loader");
        std::fs::write(&loader, b"x").unwrap();
        let layers = dir.path().join("layers");
        let l = layer(&layers, &loader, Path::new("lib64/ld-test.so.2")).unwrap();
        assert_eq!(std::fs::read(l.join("lib64/ld-test.so.2")).unwrap(), b"x");
        assert_eq!(layer(&layers, &loader, Path::new("lib64/ld-test.so.2")).unwrap(), l);
    }
}
