//! Nix's formats as the evaluator uses them. Every one of them (nix32, hashes, store path computation and name
//! rules, NAR, ATerm) lives in `store`'s pure formats layer, its one home in the workspace; this module adapts it to
//! the evaluator's plain strings, words its errors exactly as Nix does (the evaluator's messages must match Nix's),
//! and walks a tree through [`EvalIo`] into a NAR, since the evaluator reaches files only through that trait.

use store::hash::HashError;
pub use store::hash::{Hash, HashAlgo, hex, sha256};
use store::nar::NarWriter;
use store::store_path::{NameProblem, StoreDir, StorePathError};
use store::{FileIngestion, StorePath};

use crate::io::{EvalIo, FileKind};

/// `md5`, `sha1`, `sha256` or `sha512`.
pub fn parse_algo(name: &str) -> Option<HashAlgo> {
    HashAlgo::parse(name).ok()
}

/// The digest of `data` with `algo`.
pub fn digest(algo: HashAlgo, data: &[u8]) -> Hash {
    Hash::digest(algo, data)
}

/// Parses a hash in any of Nix's forms; an empty string with a known algorithm is the all-zero hash, as Nix
/// accepts for a hash not known yet. Errors are Nix's messages.
pub fn parse_hash(text: &str, algo: Option<HashAlgo>) -> Result<Hash, String> {
    if text.is_empty()
        && let Some(algo) = algo
    {
        return Ok(Hash::zero(algo));
    }
    Hash::parse(text, algo).map_err(|e| match e {
        HashError::UnknownAlgo(a) => format!("unknown hash algorithm '{a}'"),
        HashError::MissingAlgo(_) => {
            format!("hash '{text}' does not include a type, nor is the type otherwise known from context")
        }
        HashError::WrongLength { text: rest, algo } => {
            format!("hash '{rest}' has wrong length for hash algorithm '{algo}'")
        }
        HashError::BadEncoding { algo, .. } => format!("invalid {algo} hash '{text}'"),
        HashError::BadSri { .. } => format!("invalid SRI hash '{text}'"),
        HashError::WrongAlgo { found, expected, .. } => {
            format!("hash '{text}' should have type '{expected}', but has type '{found}'")
        }
    })
}

/// Checks a store path name with the store's rule, in Nix's words.
pub fn check_name(name: &str) -> Result<(), String> {
    store::store_path::validate_name(name).map_err(|e| name_message(&e))
}

fn name_message(e: &StorePathError) -> String {
    match e {
        StorePathError::BadName { name, problem } => match problem {
            NameProblem::Empty => "name must not be empty".to_string(),
            NameProblem::TooLong => format!("name '{name}' must be no longer than 211 characters"),
            NameProblem::Dots => format!("name '{name}' is not valid"),
            NameProblem::BadChar(c) => format!("invalid character '{c}' in name '{name}'"),
        },
        other => other.to_string(),
    }
}

fn store_dir(dir: &str) -> Result<StoreDir, String> {
    StoreDir::new(dir).map_err(|e| e.to_string())
}

/// `storeDir/nix32(compress20(sha256(type:sha256:hex(inner):storeDir:name)))-name`.
pub fn make_store_path(dir: &str, ty: &str, inner: &[u8; 32], name: &str) -> Result<String, String> {
    let path = store_dir(dir)?.make_store_path(ty, &Hash::from_sha256(*inner), name);
    path.map(|p| p.to_string()).map_err(|e| name_message(&e))
}

/// A text object (`toFile`, `.drv`) referring to `refs`, which must be store paths of `dir`.
pub fn text_path(dir: &str, name: &str, contents: &[u8], refs: &[String]) -> Result<String, String> {
    let d = store_dir(dir)?;
    let refs: Vec<StorePath> =
        refs.iter().map(|r| d.parse_path(r)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let path = d.make_text_path(name, &Hash::from_sha256(sha256(contents)), &refs);
    path.map(|p| p.to_string()).map_err(|e| name_message(&e))
}

/// A fixed-output path: recursive sha256 is a `source` path, everything else goes through `fixed:out:`.
pub fn fixed_output_path(dir: &str, name: &str, recursive: bool, hash: &Hash) -> Result<String, String> {
    let method = if recursive { FileIngestion::Recursive } else { FileIngestion::Flat };
    let path = store_dir(dir)?.make_fixed_output_path(name, method, hash, &[], false);
    path.map(|p| p.to_string()).map_err(|e| name_message(&e))
}

/// Serialises the tree at `path` as a NAR into `out`; `include` filters entries below the root by absolute path.
pub fn nar(
    io: &dyn EvalIo,
    path: &str,
    include: Option<&dyn Fn(&str) -> bool>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    fn node(
        io: &dyn EvalIo,
        w: &mut NarWriter<&mut Vec<u8>>,
        path: &str,
        include: Option<&dyn Fn(&str) -> bool>,
    ) -> std::io::Result<()> {
        match io.file_kind(path)? {
            FileKind::Regular { executable } => w.regular(executable, &io.read_file(path)?).map_err(nar_err),
            FileKind::Symlink => w.symlink(io.read_link(path)?.as_bytes()).map_err(nar_err),
            FileKind::Directory => {
                w.begin_directory().map_err(nar_err)?;
                let mut entries = io.read_dir(path)?;
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (name, _) in entries {
                    let child = format!("{}/{name}", path.trim_end_matches('/'));
                    if let Some(f) = include
                        && !f(&child)
                    {
                        continue;
                    }
                    w.begin_entry(name.as_bytes()).map_err(nar_err)?;
                    node(io, w, &child, include)?;
                    w.end_entry().map_err(nar_err)?;
                }
                w.end_directory().map_err(nar_err)
            }
            FileKind::Unknown => Err(std::io::Error::other(format!("file '{path}' has an unsupported type"))),
        }
    }
    let mut w = NarWriter::new(out).map_err(nar_err)?;
    node(io, &mut w, path, include)?;
    w.finish().map_err(nar_err)?;
    Ok(())
}

fn nar_err(e: store::nar::NarError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_messages_match_nix() {
        let h = Hash::parse("sha256:1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13", None)
            .unwrap();
        let mut inner = [0u8; 32];
        inner.copy_from_slice(h.as_bytes());
        assert_eq!(
            make_store_path("/nix/store", "source", &inner, "hello.txt").unwrap(),
            "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"
        );
        assert_eq!(
            text_path("/nix/store", "t.txt", b"hi\n", &[]).unwrap(),
            "/nix/store/rcl5i7k4xwa7zkij8lg4r4yxxgixdwzv-t.txt"
        );
        assert_eq!(parse_hash("", Some(HashAlgo::Sha1)).unwrap(), Hash::zero(HashAlgo::Sha1));
        assert_eq!(
            parse_hash("sha256:xyz", None).unwrap_err(),
            "hash 'xyz' has wrong length for hash algorithm 'sha256'"
        );
        assert_eq!(check_name(".hidden"), Ok(()));
        assert_eq!(check_name(".-x").unwrap_err(), "name '.-x' is not valid");
        assert_eq!(check_name("a b").unwrap_err(), "invalid character ' ' in name 'a b'");
    }
}
