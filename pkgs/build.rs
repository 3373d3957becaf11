//! Embeds the package set's Nix files (`nixpkgs/`) in the crate: `FILES` lists every file under it (relative path,
//! bytes), sorted, so that `<nixpkgs>` needs nothing installed beside the binary. New files are picked up without
//! listing them anywhere.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read nixpkgs/").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        if path.is_dir() {
            walk(&path, &rel, out);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
            out.push((rel, path));
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nixpkgs");
    let mut files = Vec::new();
    walk(&root, "", &mut files);
    let mut code =
        String::from("/// The package set's files: (path below `nixpkgs/`, contents), sorted by path.\n");
    code.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (rel, path) in &files {
        code.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("nixpkgs_files.rs");
    std::fs::write(out, code).expect("write nixpkgs_files.rs");
}
