//! `<hash>.ls`: the JSON listing of a NAR (`write-nar-listing=true`), with each regular file's size, executable
//! bit and `narOffset` (where its contents start in the uncompressed NAR), printed as Nix 2.8 prints it (no
//! spaces, `executable` only when true). Offsets follow the NAR layout that `store::nar::dump` writes.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Result, io_err};

/// Bytes a NAR string of `len` bytes takes: length word plus padded contents.
fn str_len(len: u64) -> u64 {
    8 + len.div_ceil(8) * 8
}

fn json_str(s: &[u8]) -> String {
    serde_json::to_string(&String::from_utf8_lossy(s)).expect("a string serialises")
}

/// The listing of the tree at `path` (a store path's files).
pub fn listing(path: &Path) -> Result<String> {
    let mut out = String::from("{\"version\":1,\"root\":");
    let mut offset = str_len(13); // "nix-archive-1"
    node(path, &mut offset, &mut out)?;
    out.push('}');
    Ok(out)
}

fn node(path: &Path, offset: &mut u64, out: &mut String) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(io_err("read metadata of", path.display()))?;
    *offset += str_len(1) + str_len(4); // "(" "type"
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).map_err(io_err("read symlink", path.display()))?;
        let t = target.as_os_str().as_bytes();
        *offset += str_len(7) + str_len(6) + str_len(t.len() as u64);
        out.push_str(&format!("{{\"type\":\"symlink\",\"target\":{}}}", json_str(t)));
    } else if meta.is_file() {
        let exec = meta.permissions().mode() & 0o100 != 0;
        *offset += str_len(7) + if exec { str_len(10) + str_len(0) } else { 0 } + str_len(8) + 8;
        let size = meta.len();
        out.push_str(&format!(
            "{{\"type\":\"regular\",\"size\":{size}{},\"narOffset\":{offset}}}",
            if exec { ",\"executable\":true" } else { "" }
        ));
        *offset += size.div_ceil(8) * 8;
    } else {
        *offset += str_len(9);
        let mut names: Vec<Vec<u8>> = fs::read_dir(path)
            .map_err(io_err("list directory", path.display()))?
            .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
            .collect::<std::io::Result<_>>()
            .map_err(io_err("list directory", path.display()))?;
        names.sort_unstable();
        out.push_str("{\"type\":\"directory\",\"entries\":{");
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_str(name));
            out.push(':');
            *offset += str_len(5) + str_len(1) + str_len(4) + str_len(name.len() as u64) + str_len(4);
            node(&path.join(std::ffi::OsStr::from_bytes(name)), offset, out)?;
            *offset += str_len(1);
        }
        out.push_str("}}");
    }
    *offset += str_len(1); // ")"
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_the_nar() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("d");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("a.txt"), "hello\n").unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        // Nix 2.8's listing of this tree (binary-caches reference, measured).
        assert_eq!(
            listing(&root).unwrap(),
            r#"{"version":1,"root":{"type":"directory","entries":{"a.txt":{"type":"regular","size":6,"narOffset":232},"link":{"type":"symlink","target":"a.txt"},"run.sh":{"type":"regular","size":18,"executable":true,"narOffset":648}}}}"#
        );
        let mut nar = Vec::new();
        store::nar::dump(&root, &mut nar).unwrap();
        assert_eq!(&nar[232..238], b"hello\n");
        assert_eq!(&nar[648..666], b"#!/bin/sh\necho hi\n");
    }
}
