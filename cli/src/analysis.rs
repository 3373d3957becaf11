//! What a program needs, as `pkgs::closure` takes it: the target is followed through launcher scripts
//! (`launcher`) to its ELF file, whose bundle `patchelf-rs` analyses (`DT_NEEDED` through the libraries shipped
//! with it, plugins and helpers of an application directory), and the `dlopen` lists (`dlopen`) are added.
//!
//! Required: the program's own needs and those of the libraries it links, its loader, `--dlopen` sonames, a
//! launcher's interpreter. Optional, each its own group: the graphical `dlopen` list, every plugin or helper of the
//! bundle, every command a launcher calls.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use patchelf_rs::dynamic::{self, Bundle, BundleOptions, Class, multiarch_triplet};
use pkgs::closure::{Need, Needs, OptionalGroup};

use crate::dlopen;
use crate::launcher::{self, Launcher};

/// The needs of one program.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// What the user named, absolute.
    pub target: PathBuf,
    /// The scripts between the target and the ELF file.
    pub launchers: Vec<Launcher>,
    pub bundle: Bundle,
    /// The unpacked package tree the target lies in (`ROOT/usr/bin/app`), whose absolute FHS paths a launcher may
    /// name.
    pub package_root: Option<PathBuf>,
    /// Whether the program or its bundle links a graphics or windowing library.
    pub graphical: bool,
}

impl Analysis {
    pub fn program(&self) -> &dynamic::DynamicInfo {
        &self.bundle.program
    }

    pub fn class(&self) -> Class {
        self.bundle.program.class
    }

    pub fn machine(&self) -> u16 {
        self.bundle.program.machine
    }
}

/// Analyses `target` (an ELF executable or a launcher script that starts one). `required` sonames (`--dlopen`)
/// are added to the program's own needs.
pub fn analyse(target: &Path, required: &[String]) -> Result<Analysis> {
    let target =
        std::path::absolute(target).with_context(|| format!("cannot resolve {}", target.display()))?;
    if target.is_dir() {
        return Err(crate::hint::hinted(
            format!("cannot run {}: it is a directory, not a program", target.display()),
            "name the program inside it (`fhskit patch` takes whole directories)",
        ));
    }
    if !target.is_file() {
        bail!("cannot run {}: no such file", target.display());
    }
    let (elf, launchers) = launcher::follow(&target)?;
    let Some(program) = dynamic::DynamicInfo::read(&elf)? else {
        bail!("cannot run {}: not an ELF file or a shell script that starts one", target.display());
    };
    if !program.dynamic || program.interpreter.is_none() {
        bail!(
            "{} is statically linked (no interpreter): it needs no libraries and runs as it is",
            elf.display()
        );
    }
    let options = BundleOptions { extra_needs: required.to_vec(), scan_extras: true };
    let bundle = dynamic::analyse(&elf, &options)?;
    let graphical = dlopen::is_graphical(bundle.external.keys().map(|(_, s)| s.as_str()))
        || bundle.extras.iter().any(|e| dlopen::is_graphical(e.object.needed.iter().map(String::as_str)));
    let package_root = launcher::package_root(&target);
    Ok(Analysis { target, launchers, bundle, package_root, graphical })
}

/// The needs of `analysis` for the resolver; `ignore` patterns are left alone.
pub fn needs(analysis: &Analysis, ignore: &[String]) -> Needs {
    let class = analysis.class();
    let machine = analysis.machine();
    let mut needs = Needs { machine, ignore: ignore.to_vec(), ..Needs::default() };
    for ((c, soname), by) in &analysis.bundle.external {
        let need = Need::Soname(*c, soname.clone());
        needs.required.insert(need.clone());
        needs.needed_by.entry(need).or_default().extend(by.iter().cloned());
    }
    if analysis.graphical {
        for soname in dlopen::GRAPHICAL {
            let need = Need::Soname(class, (*soname).to_owned());
            if !needs.required.contains(&need) {
                needs.optional.push(OptionalGroup {
                    label: format!("{soname} (dlopen list)"),
                    needs: BTreeSet::from([need]),
                });
            }
        }
        if let Some(triplet) = multiarch_triplet(class, machine) {
            let path = format!("/usr/lib/{triplet}/{}", dlopen::DRI_DRIVER);
            needs.optional.push(OptionalGroup {
                label: format!("Mesa's software renderer {path}"),
                needs: BTreeSet::from([Need::Path(path)]),
            });
        }
    }
    for extra in &analysis.bundle.extras {
        if extra.external.is_empty() {
            continue;
        }
        let mut group =
            OptionalGroup { label: extra.object.path.display().to_string(), needs: BTreeSet::new() };
        for (c, soname) in &extra.external {
            let need = Need::Soname(*c, soname.clone());
            needs.needed_by.entry(need.clone()).or_default().insert(extra.object.path.clone());
            group.needs.insert(need);
        }
        needs.optional.push(group);
    }
    for l in &analysis.launchers {
        let (path, command) = l.interpreter_needs();
        if let Some(p) = path {
            let need = Need::Path(p);
            needs.needed_by.entry(need.clone()).or_default().insert(l.script.clone());
            needs.required.insert(need);
        }
        if let Some(c) = command {
            let need = Need::Command(c);
            needs.needed_by.entry(need.clone()).or_default().insert(l.script.clone());
            needs.required.insert(need);
        }
        for c in &l.commands {
            let need = Need::Command(c.clone());
            needs.needed_by.entry(need.clone()).or_default().insert(l.script.clone());
            needs.optional.push(OptionalGroup {
                label: format!("command {c} of {}", l.script.display()),
                needs: BTreeSet::from([need]),
            });
        }
    }
    needs
}
