//! `nix-store --export` / `--import` framing: for each path `1`, its NAR, `"NIXE"` (as a u64), the path, its
//! references, its deriver (empty if none) and `0` (no signature); then `0`. Numbers are little-endian u64 and
//! strings length-prefixed and zero-padded to 8 bytes, as inside NARs.

use std::io::{Read, Write};

use crate::error::{Result, StoreError};
use crate::local::{NarMetadata, Store};
use crate::nar;
use crate::store_path::StorePath;

const EXPORT_MAGIC: u64 = 0x4558_494e;
/// Longest string accepted in export metadata (a store path is far shorter).
const MAX_STRING: u64 = 4096;

fn write_err(e: std::io::Error) -> StoreError {
    StoreError::Nar(nar::NarError::Write(e))
}

fn put_u64(out: &mut impl Write, n: u64) -> Result<()> {
    out.write_all(&n.to_le_bytes()).map_err(write_err)
}

fn put_str(out: &mut impl Write, s: &str) -> Result<()> {
    put_u64(out, s.len() as u64)?;
    out.write_all(s.as_bytes()).map_err(write_err)?;
    let pad = (8 - s.len() % 8) % 8;
    out.write_all(&[0u8; 8][..pad]).map_err(write_err)
}

fn malformed(reason: impl Into<String>) -> StoreError {
    StoreError::Invalid(format!("malformed export stream: {}", reason.into()))
}

fn get_u64(input: &mut dyn Read) -> Result<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b).map_err(|e| malformed(format!("cannot read a number: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

fn get_str(input: &mut dyn Read) -> Result<String> {
    let len = get_u64(input)?;
    if len > MAX_STRING {
        return Err(malformed(format!("string of {len} bytes")));
    }
    let padded = len.div_ceil(8) * 8;
    let mut b = vec![0u8; padded as usize];
    input.read_exact(&mut b).map_err(|e| malformed(format!("cannot read a string: {e}")))?;
    if b[len as usize..].iter().any(|&x| x != 0) {
        return Err(malformed("non-zero padding"));
    }
    b.truncate(len as usize);
    String::from_utf8(b).map_err(|_| malformed("a path is not UTF-8"))
}

impl Store {
    /// Writes `paths` in `nix-store --export` format, in the order given (give a closure, references first, to
    /// make the stream importable on its own).
    pub fn export(&self, paths: &[StorePath], out: &mut impl Write) -> Result<()> {
        for p in paths {
            let info = self.path_info(p)?.ok_or_else(|| StoreError::NotValid(p.to_string()))?;
            put_u64(out, 1)?;
            nar::dump(&self.physical_path(p), &mut *out)?;
            put_u64(out, EXPORT_MAGIC)?;
            put_str(out, &p.to_string())?;
            put_u64(out, info.references.len() as u64)?;
            for r in &info.references {
                put_str(out, &r.to_string())?;
            }
            put_str(out, &info.deriver.map(|d| d.to_string()).unwrap_or_default())?;
            put_u64(out, 0)?;
        }
        put_u64(out, 0)?;
        out.flush().map_err(write_err)
    }

    /// Imports a `nix-store --export` stream as a whole: every NAR is restored and checked in a staging directory
    /// first, then all of them are moved into place and registered in one transaction, so a failing stream (a
    /// truncated or malformed entry, a reference that is neither valid nor in the stream) imports nothing. Symlinks
    /// may point anywhere, as in Nix's stores. Returns the paths in stream order (those valid already included).
    pub fn import(&self, input: &mut impl Read) -> Result<Vec<StorePath>> {
        let _lock = self.lock_writers()?;
        let tmp = self.physical_store_dir().join(crate::fsutil::unique_name(".tmp"));
        std::fs::create_dir(&tmp).map_err(crate::error::io_err("create directory", &tmp))?;
        let result = (|| {
            let mut imported = Vec::new();
            let mut staged = Vec::new();
            loop {
                match get_u64(input)? {
                    0 => break,
                    1 => {}
                    n => return Err(malformed(format!("expected 0 or 1 before an entry, found {n}"))),
                }
                let store_dir = self.store_dir().clone();
                let at = tmp.join(staged.len().to_string());
                let info = self.restore_checked(input, &at, None, false, move |r| {
                    if get_u64(r)? != EXPORT_MAGIC {
                        return Err(malformed("missing the NIXE marker after a NAR"));
                    }
                    let path = store_dir.parse_path(&get_str(r)?)?;
                    let n = get_u64(r)?;
                    if n > 1_000_000 {
                        return Err(malformed(format!("{n} references")));
                    }
                    let mut references = std::collections::BTreeSet::new();
                    for _ in 0..n {
                        references.insert(store_dir.parse_path(&get_str(r)?)?);
                    }
                    let deriver = get_str(r)?;
                    let deriver =
                        if deriver.is_empty() { None } else { Some(store_dir.parse_path(&deriver)?) };
                    if get_u64(r)? != 0 {
                        return Err(malformed("signed exports are not supported"));
                    }
                    Ok(Some(NarMetadata {
                        path,
                        nar_hash: None,
                        references,
                        deriver,
                        ca: None,
                        sigs: Vec::new(),
                    }))
                })?;
                imported.push(info.path.clone());
                if !staged
                    .iter()
                    .any(|(_, i): &(std::path::PathBuf, crate::db::PathInfo)| i.path == info.path)
                {
                    staged.push((at, info));
                }
            }
            self.install_all(staged)?;
            Ok(imported)
        })();
        let _ = crate::fsutil::remove_tree(&tmp);
        result
    }
}
