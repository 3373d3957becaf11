//! Reference scanning: which of a set of store paths a tree refers to, found by searching every file, entry name and
//! symlink target for the paths' 32-character hash parts (one Aho-Corasick automaton, files scanned in parallel, each
//! streamed in chunks that overlap by a hash length so matches across chunk borders are found).

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aho_corasick::AhoCorasick;
use rayon::prelude::*;

use crate::error::{Result, StoreError, io_err};
use crate::store_path::{HASH_LEN, StorePath};

const CHUNK: usize = 1 << 20;

/// Returns the candidates whose hash part occurs anywhere in the tree at `root` (file contents, symlink targets).
pub fn scan_tree(root: &Path, candidates: &[StorePath]) -> Result<BTreeSet<StorePath>> {
    if candidates.is_empty() {
        return Ok(BTreeSet::new());
    }
    let patterns: Vec<&str> = candidates.iter().map(StorePath::hash_part).collect();
    let ac = AhoCorasick::new(&patterns)
        .map_err(|e| StoreError::Invalid(format!("cannot build the reference scanner: {e}")))?;
    let mut files = Vec::new();
    let mut found = vec![false; candidates.len()];
    collect(root, &mut files, &ac, &mut found)?;
    let found = Mutex::new(found);
    files.par_iter().try_for_each(|f| -> Result<()> {
        let hits = scan_file(f, &ac)?;
        if !hits.is_empty() {
            let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
            for h in hits {
                found[h] = true;
            }
        }
        Ok(())
    })?;
    let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(candidates.iter().zip(found).filter(|(_, f)| *f).map(|(c, _)| c.clone()).collect())
}

/// Lists the regular files under `path` and scans symlink targets on the way.
fn collect(path: &Path, files: &mut Vec<PathBuf>, ac: &AhoCorasick, found: &mut [bool]) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(io_err("read metadata of", path))?;
    if meta.is_symlink() {
        let target = fs::read_link(path).map_err(io_err("read symlink", path))?;
        for m in ac.find_overlapping_iter(target.as_os_str().as_encoded_bytes()) {
            found[m.pattern().as_usize()] = true;
        }
    } else if meta.is_dir() {
        for e in fs::read_dir(path).map_err(io_err("list directory", path))? {
            let e = e.map_err(io_err("list directory", path))?;
            // Nix scans the NAR serialisation, which holds entry names too.
            for m in ac.find_overlapping_iter(e.file_name().as_encoded_bytes()) {
                found[m.pattern().as_usize()] = true;
            }
            collect(&e.path(), files, ac, found)?;
        }
    } else if meta.is_file() && meta.len() >= HASH_LEN as u64 {
        files.push(path.to_path_buf());
    }
    Ok(())
}

fn scan_file(path: &Path, ac: &AhoCorasick) -> Result<Vec<usize>> {
    let mut f = fs::File::open(path).map_err(io_err("open", path))?;
    let mut buf = vec![0u8; CHUNK + HASH_LEN];
    let mut keep = 0usize;
    let mut hits = Vec::new();
    loop {
        let n = f.read(&mut buf[keep..]).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        let end = keep + n;
        for m in ac.find_overlapping_iter(&buf[..end]) {
            hits.push(m.pattern().as_usize());
        }
        // Keep the last HASH_LEN - 1 bytes so a hash split across reads is still seen whole.
        let tail = (HASH_LEN - 1).min(end);
        buf.copy_within(end - tail..end, 0);
        keep = tail;
    }
    hits.sort_unstable();
    hits.dedup();
    Ok(hits)
}
