//! patchelf 0.19's command line over the engine: option names and aliases, `@file` arguments, several files per
//! call, `--output`, `--debug`/`PATCHELF_DEBUG`, usage on stderr, exit codes and error wording.
//!
//! Shared by the `patchelf-rs` binary (`main.rs`) and `fhskit patchelf`; it writes only to the writers it is given.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::edit::Editor;
use crate::elf::{Elf, default_page_size};
use crate::error::{Error, Result};
use crate::options::{Options, RpathOp};

/// `EISDIR` on Linux, for the error patchelf reports on a directory.
const EISDIR: i32 = 21;

/// The patchelf release whose interface this implements; `--version` prints it the way patchelf does, so scripts
/// that parse `patchelf --version` accept this as that release.
pub const PATCHELF_VERSION: &str = "0.19.3";

/// A parsed command line.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub opts: Options,
    pub files: Vec<PathBuf>,
    pub output: Option<PathBuf>,
    pub debug: bool,
}

enum Parsed {
    Run(Box<Invocation>),
    Help,
    Version,
}

/// Runs patchelf's command line `args` (without argv\[0\]) and returns the exit code. `argv0` is how the program
/// was invoked: usage shows it whole (as patchelf does), error messages are prefixed with its file name
/// (`patchelf-rs`, or `patchelf` through a symlink of that name).
pub fn run(argv0: &str, args: Vec<OsString>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    let prog = Path::new(argv0).file_name().map_or_else(|| argv0.into(), |n| n.to_string_lossy());
    let prog = prog.as_ref();
    if args.is_empty() {
        let _ = stderr.write_all(usage(argv0).as_bytes());
        return 1;
    }
    let inv = match parse(args) {
        Ok(Parsed::Run(inv)) => *inv,
        Ok(Parsed::Help) => {
            let _ = stderr.write_all(usage(argv0).as_bytes());
            return 0;
        }
        Ok(Parsed::Version) => {
            let _ = writeln!(stdout, "patchelf {PATCHELF_VERSION}");
            return 0;
        }
        Err(e) => {
            let _ = writeln!(stderr, "{prog}: {e}");
            return 1;
        }
    };
    for file in &inv.files {
        if let Err(e) = process(file, &inv, stdout, stderr) {
            let _ = stdout.flush();
            if e.names_path() {
                let _ = writeln!(stderr, "{prog}: {e}");
            } else {
                let _ = writeln!(stderr, "{prog}: {}: {e}", file.display());
            }
            return 1;
        }
    }
    if stdout.flush().is_err() {
        return 1;
    }
    0
}

fn arg_error(msg: &str) -> Error {
    Error::Unsupported(msg.to_string())
}

/// Reads `@file` arguments: the value is the file's contents.
fn resolve(arg: OsString) -> Result<Vec<u8>> {
    let bytes = arg.into_vec();
    match bytes.strip_prefix(b"@") {
        Some(path) => {
            let path = Path::new(OsStr::from_bytes(path));
            std::fs::read(path).map_err(|e| Error::io("getting info about", path, e))
        }
        None => Ok(bytes),
    }
}

fn parse(args: Vec<OsString>) -> Result<Parsed> {
    let mut inv = Invocation { debug: std::env::var_os("PATCHELF_DEBUG").is_some(), ..Invocation::default() };
    inv.opts.clobber_old_sections = true;
    let (mut set_rpath, mut add_rpath, mut remove_rpath, mut shrink_rpath) = (None, None, false, false);
    let mut allowed_prefixes = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| arg_error("missing argument"));
        let opts = &mut inv.opts;
        match arg.as_bytes() {
            b"--set-interpreter" | b"--interpreter" => opts.set_interpreter = Some(resolve(value()?)?),
            b"--page-size" => {
                let size = u64::try_from(atoi(value()?.as_bytes())).ok().filter(|&n| n > 0);
                opts.page_size = Some(size.ok_or_else(|| arg_error("invalid argument to --page-size"))?);
            }
            b"--print-interpreter" => opts.print_interpreter = true,
            b"--print-os-abi" => opts.print_os_abi = true,
            b"--set-os-abi" => {
                let name = String::from_utf8_lossy(&resolve(value()?)?).into_owned();
                crate::edit::parse_os_abi(&name).ok_or_else(|| arg_error("unrecognized OS ABI"))?;
                opts.set_os_abi = Some(name);
            }
            b"--print-soname" => opts.print_soname = true,
            b"--set-soname" => opts.set_soname = Some(resolve(value()?)?),
            b"--remove-rpath" => remove_rpath = true,
            b"--shrink-rpath" => shrink_rpath = true,
            b"--allowed-rpath-prefixes" => {
                let v = value()?;
                allowed_prefixes
                    .extend(v.as_bytes().split(|&b| b == b':').filter(|p| !p.is_empty()).map(<[u8]>::to_vec));
            }
            b"--set-rpath" => set_rpath = Some(resolve(value()?)?),
            b"--add-rpath" => add_rpath = Some(resolve(value()?)?),
            b"--print-rpath" => opts.print_rpath = true,
            b"--force-rpath" => opts.force_rpath = true,
            b"--print-needed" => opts.print_needed = true,
            b"--add-needed" => {
                opts.add_needed.insert(resolve(value()?)?);
            }
            b"--remove-needed" => {
                opts.remove_needed.insert(resolve(value()?)?);
            }
            b"--replace-needed" => {
                let missing = || arg_error("missing argument(s)");
                let old = args.next().ok_or_else(missing)?.into_vec();
                let new = args.next().ok_or_else(missing)?.into_vec();
                opts.replace_needed.insert(old, new);
            }
            b"--clear-symbol-version" => {
                opts.clear_symbol_version.insert(resolve(value()?)?);
            }
            b"--rename-dynamic-symbols" => {
                let path = PathBuf::from(value()?);
                let text = std::fs::read(&path).map_err(|e| {
                    arg_error(&format!(
                        "Cannot open map file {}: {}",
                        path.display(),
                        crate::error::strerror(&e)
                    ))
                })?;
                opts.rename_dynamic_symbols = parse_symbol_map(&text)
                    .map_err(|(line, msg)| arg_error(&format!("{}:{line}: {msg}", path.display())))?;
            }
            b"--no-default-lib" => opts.no_default_lib = true,
            b"--add-debug-tag" => opts.add_debug_tag = true,
            b"--build-resolution-cache" => opts.build_resolution_cache = true,
            b"--print-execstack" => opts.print_execstack = true,
            b"--clear-execstack" => opts.clear_execstack = true,
            b"--set-execstack" => opts.set_execstack = true,
            // We never reorder headers, which is what this asks for.
            b"--no-sort" => {}
            b"--no-clobber-old-sections" => opts.clobber_old_sections = false,
            b"--output" => inv.output = Some(PathBuf::from(OsString::from_vec(resolve(value()?)?))),
            b"--debug" => inv.debug = true,
            b"--help" | b"-h" => return Ok(Parsed::Help),
            b"--version" => return Ok(Parsed::Version),
            // Like patchelf, anything else is a file name (an unknown option then fails as a missing file).
            _ => inv.files.push(PathBuf::from(arg)),
        }
    }
    if inv.opts.build_resolution_cache && inv.opts.force_rpath {
        return Err(arg_error("--build-resolution-cache cannot be combined with --force-rpath"));
    }
    if set_rpath.is_some() && add_rpath.is_some() {
        return Err(arg_error("--set-rpath option not allowed with --add-rpath"));
    }
    inv.opts.rpath = if shrink_rpath {
        Some(RpathOp::Shrink { allowed_prefixes })
    } else if remove_rpath {
        Some(RpathOp::Remove)
    } else if let Some(p) = set_rpath {
        Some(RpathOp::Set(p))
    } else {
        add_rpath.map(RpathOp::Add)
    };
    if inv.files.is_empty() {
        return Err(arg_error("missing filename"));
    }
    if inv.output.is_some() && inv.files.len() > 1 {
        return Err(arg_error("--output option only allowed with single input file"));
    }
    Ok(Parsed::Run(Box::new(inv)))
}

/// Runs the options on one file and writes the result if anything changed (always, with `--output`).
fn process(path: &Path, inv: &Invocation, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<()> {
    let mut file = File::open(path).map_err(|e| Error::io("getting info about", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("getting info about", path, e))?;
    if meta.is_dir() {
        // patchelf fails reading it; mapping would report a less telling "No such device".
        return Err(Error::io("reading", path, std::io::Error::from_raw_os_error(EISDIR)));
    }
    let len = meta.len();
    if inv.debug && (inv.opts.modifies() || inv.output.is_some()) {
        let _ = writeln!(stderr, "patching ELF file '{}'", path.display());
    }
    let map;
    let data: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: the map is read-only and private; if another process truncates the file meanwhile, reads may
        // fault, which is the accepted limit of mapping files (patchelf reads them whole instead).
        map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("mapping", path, e))?;
        &map
    };
    let elf = Elf::parse(data)?;
    if inv.opts.modifies() || inv.output.is_some() {
        // A rewrite keeps section headers consistent, so broken ones fail here, before any edit reports anything.
        elf.check_sections(&elf.sections()?)?;
    }
    let mut ed = Editor::new(&elf, inv.debug);
    ed.run(&inv.opts, stdout, stderr)?;
    if !inv.opts.modifies() && inv.output.is_none() {
        return Ok(());
    }
    let page = inv.opts.page_size.unwrap_or_else(|| default_page_size(elf.ehdr.e_machine));
    let rewrite = crate::layout::plan(&ed, page, inv.opts.clobber_old_sections, stderr, inv.debug)?;
    match &inv.output {
        Some(out) => crate::output::write(&mut file, len, out, &rewrite),
        None if rewrite.is_noop(data) => {
            if inv.debug {
                let _ = writeln!(stderr, "not writing '{}': nothing changed", path.display());
            }
            Ok(())
        }
        None => crate::output::write(&mut file, len, path, &rewrite),
    }
}

fn usage(prog: &str) -> String {
    let mut s = format!("syntax: {prog}\n");
    let rows: &[(&str, &str)] = &[
        (
            "--set-interpreter FILENAME",
            "Set the program interpreter (alias --interpreter); an empty name is ignored",
        ),
        ("--page-size SIZE", "Alignment of a new segment (default by machine)"),
        ("--print-interpreter", "Print the program interpreter"),
        ("--print-os-abi", "Print the EI_OSABI field of the ELF header"),
        ("--set-os-abi ABI", "Set the EI_OSABI field (System V, Linux, FreeBSD, ...)"),
        ("--print-soname", "Print DT_SONAME"),
        ("--set-soname SONAME", "Set DT_SONAME (shared libraries only)"),
        ("--set-rpath RPATH", "Set the run path"),
        ("--add-rpath RPATH", "Append to the run path"),
        ("--remove-rpath", "Remove DT_RPATH and DT_RUNPATH"),
        ("--shrink-rpath", "Keep only run-path directories holding a needed library"),
        ("--allowed-rpath-prefixes PREFIXES", "With --shrink-rpath, drop directories outside these prefixes"),
        ("--print-rpath", "Print the run path"),
        ("--force-rpath", "Write DT_RPATH instead of DT_RUNPATH"),
        ("--add-needed LIBRARY", "Add a DT_NEEDED entry"),
        ("--remove-needed LIBRARY", "Remove a DT_NEEDED entry"),
        ("--replace-needed LIBRARY NEW_LIBRARY", "Replace a DT_NEEDED entry (and its symbol-version record)"),
        ("--print-needed", "Print the DT_NEEDED entries"),
        ("--no-default-lib", "Set DF_1_NODEFLIB: do not search the default library directories"),
        ("--no-sort", "Do not reorder program or section headers (never done anyway)"),
        ("--clear-symbol-version SYMBOL", "Make a dynamic symbol unversioned"),
        ("--add-debug-tag", "Add DT_DEBUG"),
        (
            "--build-resolution-cache",
            "Record where each DT_NEEDED resolves along the run path (.note.nixos.ldcache)",
        ),
        ("--print-execstack", "Print whether the stack is executable (X, - or ?)"),
        ("--clear-execstack", "Make the stack non-executable"),
        ("--set-execstack", "Make the stack executable"),
        (
            "--rename-dynamic-symbols NAME_MAP_FILE",
            "Rename dynamic symbols; the file has lines 'old_name new_name'",
        ),
        ("--no-clobber-old-sections", "Leave the old bytes of moved tables as they were"),
        ("--output FILE", "Write the result to FILE (single input only)"),
        ("--debug", "Trace what is done on stderr (also PATCHELF_DEBUG)"),
        ("--version", "Print the patchelf version this is compatible with"),
    ];
    for (opt, help) in rows {
        s.push_str(&format!("  [{opt}]\t\t{help}\n"));
    }
    s.push_str("  FILENAME...\n");
    s
}

/// Parses a `--rename-dynamic-symbols` map file: lines `old new` (further fields are ignored) up to the first
/// blank line. An error is the 1-based line number and patchelf's message for it.
pub fn parse_symbol_map(text: &[u8]) -> std::result::Result<BTreeMap<Vec<u8>, Vec<u8>>, (usize, String)> {
    let mut map = BTreeMap::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut fields = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
        // patchelf stops reading at the first line without a name (blank or only whitespace), so whatever
        // follows is ignored there; a drop-in must rename the same symbols.
        let Some(old) = fields.next() else { break };
        let Some(new) = fields.next() else {
            return Err((i + 1, "Map file line is missing the second element".into()));
        };
        if old.contains(&b'@') || new.contains(&b'@') {
            return Err((i + 1, format!("Name pair contains version tag: {} {}", lossy(old), lossy(new))));
        }
        if map.insert(old.to_vec(), new.to_vec()).is_some() {
            return Err((i + 1, format!("Name '{}' appears twice in the map file", lossy(old))));
        }
    }
    Ok(map)
}

/// C's `atoi` as the reference patchelf 0.19.3 build (static, musl) runs it for `--page-size`: leading blanks, an
/// optional sign, digits up to the first non-digit, all in wrapping `int` arithmetic, so absurdly long numbers wrap
/// the same way there and here. No digits give 0.
fn atoi(s: &[u8]) -> i32 {
    let s = &s[s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len())..];
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    // Accumulated as a negative number, as musl does (so that INT_MIN needs no overflow).
    let mut n: i32 = 0;
    for &d in digits.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.wrapping_mul(10).wrapping_sub(i32::from(d - b'0'));
    }
    if neg { n } else { n.wrapping_neg() }
}
