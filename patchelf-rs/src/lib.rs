//! patchelf-rs: ELF reading and minimal-change rewriting, and a drop-in replacement for patchelf 0.19.
//!
//! The file is mapped, and only the headers an operation needs are parsed, through segments (`PT_DYNAMIC`,
//! `PT_INTERP`), so files without section headers work and `--print-*` never reads a large file whole. Edits of one
//! call are collected first (`edit`) and laid out once (`layout`): tables that still fit are rewritten in place,
//! the rest move into new space (a segment after the image; pages below the headers of a non-PIE executable).
//! Output is written beside the target and renamed, or into it when it is a device (`output`). `cli` implements patchelf's command line over this engine for the `patchelf-rs` binary and
//! `fhskit patchelf`. It depends on no other crate of the workspace; `fhsenv`, `pkgs` and `cli` use it.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod cli;
pub mod dynamic;
pub mod edit;
pub mod elf;
pub mod error;
pub mod layout;
pub mod ldcache;
pub mod options;
pub mod output;
pub mod raw;
pub mod symbols;
#[cfg(test)]
mod testelf;

pub use edit::Editor;
pub use elf::Elf;
pub use error::{Error, Malformed, Result};
pub use layout::Rewrite;
pub use options::{Options, RpathOp};

/// Applies `opts` to an in-memory ELF image: print output goes to `out`. Returns the rewrite, or `None` when the
/// image stays byte-identical. Used by tests and the fuzz targets; files go through [`cli::run`].
pub fn rewrite_bytes(data: &[u8], opts: &Options, out: &mut dyn std::io::Write) -> Result<Option<Rewrite>> {
    let elf = Elf::parse(data)?;
    let mut ed = Editor::new(&elf, false);
    ed.run(opts, out, &mut std::io::sink())?;
    if !opts.modifies() {
        return Ok(None);
    }
    let page = opts.page_size.unwrap_or_else(|| elf::default_page_size(elf.ehdr.e_machine));
    let rw = layout::plan(&ed, page, opts.clobber_old_sections, &mut std::io::sink(), false)?;
    Ok((!rw.is_noop(data)).then_some(rw))
}
