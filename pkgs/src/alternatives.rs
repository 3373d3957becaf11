//! Debian alternatives a package registers when it is installed: the `update-alternatives --install LINK NAME
//! PATH PRIORITY` calls of its `postinst` script. Some libraries exist at their soname only through them
//! (`libblas.so.3` is `/usr/lib/x86_64-linux-gnu/blas/libblas.so.3` of libblas3, or the OpenBLAS copy, whichever
//! has the higher priority), so a resolver that follows what an installed system offers the loader must read them.
//!
//! Only literal calls are understood (Debian's library packages write them so); a call whose words use shell
//! variables or substitutions is skipped, as are `--slave` links (not used by library alternatives).

use std::path::{Path, PathBuf};

/// One `--install` of an alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// The generic link, absolute (`/usr/lib/x86_64-linux-gnu/libblas.so.3`).
    pub link: PathBuf,
    /// The alternative's name (`libblas.so.3-x86_64-linux-gnu`).
    pub name: String,
    /// What the link points to when this alternative is chosen, absolute.
    pub path: PathBuf,
    /// Higher wins in automatic mode.
    pub priority: i64,
}

/// The alternatives installed by a maintainer script's text.
pub fn parse(script: &str) -> Vec<Alternative> {
    // Join continuation lines, then look at each command separately.
    let joined = script.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        for command in line.split([';', '&', '|']) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(at) = words.iter().position(|w| *w == "update-alternatives") else { continue };
            let rest = &words[at + 1..];
            let Some(install) = rest.iter().position(|w| *w == "--install") else { continue };
            let args = &rest[install + 1..];
            if args.len() < 4 {
                continue;
            }
            let (link, name, path, priority) = (args[0], args[1], args[2], args[3]);
            let literal = |w: &str| !w.contains(['$', '`', '"', '\'']);
            if ![link, name, path, priority].into_iter().all(literal)
                || !link.starts_with('/')
                || !path.starts_with('/')
            {
                continue;
            }
            let Ok(priority) = priority.parse::<i64>() else { continue };
            out.push(Alternative { link: link.into(), name: name.into(), path: path.into(), priority });
        }
    }
    out
}

/// The alternatives of an unpacked package tree, read from its `DEBIAN/postinst` (kept there by unpacking and by
/// copying a host package); none when it has no such script.
pub fn of_package(root: &Path) -> Vec<Alternative> {
    std::fs::read_to_string(root.join("DEBIAN/postinst")).map(|s| parse(&s)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_library_postinsts() {
        let blas = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n\
            update-alternatives --install /usr/lib/x86_64-linux-gnu/libblas.so.3 \\\n\
            \t\tlibblas.so.3-x86_64-linux-gnu \\\n\
            \t    /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 100\nfi\n\
            update-alternatives --install /usr/bin/x x \"$DIR/x\" 5\n\
            [ -x /usr/bin/y ] && update-alternatives --install /usr/lib/liby.so.1 liby /usr/lib/y/liby.so.1 7\n\
            update-alternatives --remove libfoo /usr/lib/libfoo.so\n";
        let alts = parse(blas);
        assert_eq!(alts.len(), 2, "{alts:?}");
        assert_eq!(alts[0].link, Path::new("/usr/lib/x86_64-linux-gnu/libblas.so.3"));
        assert_eq!(alts[0].name, "libblas.so.3-x86_64-linux-gnu");
        assert_eq!(alts[0].path, Path::new("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"));
        assert_eq!(alts[0].priority, 100);
        assert_eq!(alts[1].priority, 7);
        assert!(parse("update-alternatives --install /a b /c notanumber").is_empty());
    }
}
