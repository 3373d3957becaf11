//! Store paths: `<storeDir>/<nix32 hash>-<name>`, how Nix computes them from a fingerprint (`text`, `source`,
//! `output:<out>` and fixed-output), and how they are parsed and validated. Pure; the local store builds on it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::hash::{Hash, HashAlgo, HashFormat, compress};
use crate::nix32;

/// Length of the hash part of a store path's base name.
pub const HASH_LEN: usize = 32;
/// Longest name Nix accepts.
pub const MAX_NAME_LEN: usize = 211;

/// Why a store path or name is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorePathError {
    #[error("'{0}' is not in the store directory {1}")]
    NotInStore(String, String),
    #[error("'{0}' is not a store path: the base name must be a 32-character nix32 hash, '-', and a name")]
    BadBaseName(String),
    #[error("store path name '{name}' is invalid: {problem}")]
    BadName { name: String, problem: NameProblem },
    #[error("store directory '{0}' must be an absolute path without a trailing slash")]
    BadStoreDir(String),
}

/// What is wrong with a store path name (the evaluator words these as Nix does, the store as above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than 211 characters")]
    TooLong,
    /// `.`, `..`, or a name starting with `.-` or `..-` (a hash part followed by such a name reads as a path
    /// component or an option).
    #[error("it is '.' or '..', or starts with '.-' or '..-'")]
    Dots,
    #[error("character '{0}' is not allowed (only letters, digits and '+-._?=')")]
    BadChar(char),
}

/// Checks a store path name as current Nix does: 1 to 211 characters from `[A-Za-z0-9+-._?=]`, neither `.` nor
/// `..`, and not starting with `.-` or `..-`. (Nix 2.8 also refused every name starting with `.`; later versions
/// accept them, and a store must hold what any of them writes.)
pub fn validate_name(name: &str) -> Result<(), StorePathError> {
    let bad = |problem| Err(StorePathError::BadName { name: name.to_owned(), problem });
    if name.is_empty() {
        return bad(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return bad(NameProblem::TooLong);
    }
    if name == "." || name == ".." || name.starts_with(".-") || name.starts_with("..-") {
        return bad(NameProblem::Dots);
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c))) {
        return bad(NameProblem::BadChar(c));
    }
    Ok(())
}

/// The logical store directory, e.g. `/nix/store`; it is part of every store path's hash.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreDir(Arc<str>);

impl fmt::Debug for StoreDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for StoreDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether fixed-output content is hashed as a flat file or as a NAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileIngestion {
    Flat,
    Recursive,
}

/// A content address, as stored in the `ca` column and `CA:` narinfo field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentAddress {
    /// `text:sha256:…`: the sha256 of the file's contents (toFile, `.drv`).
    Text(Hash),
    /// `fixed:[r:]algo:…`: flat or NAR hash.
    Fixed(FileIngestion, Hash),
}

impl fmt::Display for ContentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentAddress::Text(h) => write!(f, "text:{h}"),
            ContentAddress::Fixed(FileIngestion::Recursive, h) => write!(f, "fixed:r:{h}"),
            ContentAddress::Fixed(FileIngestion::Flat, h) => write!(f, "fixed:{h}"),
        }
    }
}

impl ContentAddress {
    /// Parses `text:sha256:…`, `fixed:r:algo:…` or `fixed:algo:…`.
    pub fn parse(text: &str) -> Option<ContentAddress> {
        if let Some(rest) = text.strip_prefix("text:") {
            let h = Hash::parse(rest, None).ok()?;
            return (h.algo() == HashAlgo::Sha256).then_some(ContentAddress::Text(h));
        }
        let rest = text.strip_prefix("fixed:")?;
        match rest.strip_prefix("r:") {
            Some(r) => Some(ContentAddress::Fixed(FileIngestion::Recursive, Hash::parse(r, None).ok()?)),
            None => Some(ContentAddress::Fixed(FileIngestion::Flat, Hash::parse(rest, None).ok()?)),
        }
    }
}

impl StoreDir {
    /// `dir` must be absolute, normalised and without a trailing slash (`/nix/store`).
    pub fn new(dir: impl Into<String>) -> Result<StoreDir, StorePathError> {
        let dir = dir.into();
        let normal = dir.starts_with('/')
            && dir.len() > 1
            && !dir.ends_with('/')
            && !dir.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..");
        if !normal {
            return Err(StorePathError::BadStoreDir(dir));
        }
        Ok(StoreDir(dir.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&*self.0)
    }

    /// Builds a store path from a base name (`<hash>-<name>`), validating it.
    pub fn from_base_name(&self, base: &str) -> Result<StorePath, StorePathError> {
        let bad = || StorePathError::BadBaseName(base.to_owned());
        if base.len() < HASH_LEN + 2 || base.as_bytes()[HASH_LEN] != b'-' {
            return Err(bad());
        }
        let (hash, name) = (&base[..HASH_LEN], &base[HASH_LEN + 1..]);
        if !nix32::is_nix32(hash) {
            return Err(bad());
        }
        validate_name(name)?;
        Ok(StorePath { base: base.into(), dir: self.clone() })
    }

    /// Parses an absolute store path; anything below the top store object (`/nix/store/…-x/bin/y`) is refused.
    pub fn parse_path(&self, path: &str) -> Result<StorePath, StorePathError> {
        let base = path
            .strip_prefix(&*self.0)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(path.to_owned(), self.0.to_string()))?;
        self.from_base_name(base)
    }

    /// Like [`StoreDir::parse_path`] but accepts paths inside a store object, returning the object and the rest.
    pub fn parse_path_prefix<'p>(&self, path: &'p str) -> Result<(StorePath, &'p str), StorePathError> {
        let rest = path
            .strip_prefix(&*self.0)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(path.to_owned(), self.0.to_string()))?;
        let (base, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        Ok((self.from_base_name(base)?, tail))
    }

    /// Nix's `makeStorePath`: `type:sha256:<hex inner>:<storeDir>:<name>`, hashed, folded to 160 bits, nix32.
    pub fn make_store_path(
        &self,
        path_type: &str,
        inner: &Hash,
        name: &str,
    ) -> Result<StorePath, StorePathError> {
        validate_name(name)?;
        let fingerprint = format!("{path_type}:{}:{}:{name}", inner.to_typed(HashFormat::Base16), self.0);
        let digest = Hash::digest(HashAlgo::Sha256, fingerprint.as_bytes());
        let hash = nix32::encode(&compress(digest.as_bytes(), 20));
        Ok(StorePath { base: format!("{hash}-{name}").into(), dir: self.clone() })
    }

    fn make_type(&self, kind: &str, references: &[StorePath], self_ref: bool) -> String {
        let mut refs: Vec<&StorePath> = references.iter().collect();
        refs.sort();
        refs.dedup();
        let mut t = kind.to_owned();
        for r in refs {
            t.push(':');
            t.push_str(&self.0);
            t.push('/');
            t.push_str(&r.base);
        }
        if self_ref {
            t.push_str(":self");
        }
        t
    }

    /// A text path (`builtins.toFile`, `.drv` files): `contents` hashed with sha256, references listed.
    pub fn make_text_path(
        &self,
        name: &str,
        contents_hash: &Hash,
        references: &[StorePath],
    ) -> Result<StorePath, StorePathError> {
        self.make_store_path(&self.make_type("text", references, false), contents_hash, name)
    }

    /// A source path (`nix-store --add`): the sha256 NAR hash, references, and whether it refers to itself.
    pub fn make_source_path(
        &self,
        name: &str,
        nar_hash: &Hash,
        references: &[StorePath],
        self_ref: bool,
    ) -> Result<StorePath, StorePathError> {
        self.make_store_path(&self.make_type("source", references, self_ref), nar_hash, name)
    }

    /// A fixed-output path. Recursive sha256 is a `source` path; every other kind is
    /// `output:out` over `fixed:out:[r:]algo:hex:` and may have no references.
    pub fn make_fixed_output_path(
        &self,
        name: &str,
        method: FileIngestion,
        hash: &Hash,
        references: &[StorePath],
        self_ref: bool,
    ) -> Result<StorePath, StorePathError> {
        if method == FileIngestion::Recursive && hash.algo() == HashAlgo::Sha256 {
            return self.make_source_path(name, hash, references, self_ref);
        }
        let r = if method == FileIngestion::Recursive { "r:" } else { "" };
        let inner = format!("fixed:out:{r}{}:", hash.to_typed(HashFormat::Base16));
        self.make_store_path("output:out", &Hash::digest(HashAlgo::Sha256, inner.as_bytes()), name)
    }

    /// The path of a content-addressed object.
    pub fn make_ca_path(
        &self,
        name: &str,
        ca: &ContentAddress,
        references: &[StorePath],
        self_ref: bool,
    ) -> Result<StorePath, StorePathError> {
        match ca {
            ContentAddress::Text(h) => self.make_text_path(name, h, references),
            ContentAddress::Fixed(m, h) => self.make_fixed_output_path(name, *m, h, references, self_ref),
        }
    }

    /// An input-addressed derivation output: `output:<out>` over the derivation's hash modulo.
    pub fn make_output_path(
        &self,
        output: &str,
        drv_hash: &Hash,
        drv_name: &str,
    ) -> Result<StorePath, StorePathError> {
        let name = if output == "out" { drv_name.to_owned() } else { format!("{drv_name}-{output}") };
        self.make_store_path(&format!("output:{output}"), drv_hash, &name)
    }
}

/// A store object's path: its base name `<hash>-<name>` and the logical store directory it belongs to.
///
/// Ordered by base name (then store dir), as Nix orders path sets.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    base: Box<str>,
    dir: StoreDir,
}

impl StorePath {
    /// The 32-character nix32 hash part.
    pub fn hash_part(&self) -> &str {
        &self.base[..HASH_LEN]
    }

    /// The name after the hash.
    pub fn name(&self) -> &str {
        &self.base[HASH_LEN + 1..]
    }

    /// `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.base
    }

    pub fn store_dir(&self) -> &StoreDir {
        &self.dir
    }

    /// The logical absolute path, e.g. `/nix/store/<hash>-<name>` (with a root prefix, the files live elsewhere:
    /// see `Store::physical_path`).
    pub fn to_absolute(&self) -> PathBuf {
        self.dir.as_path().join(&*self.base)
    }

    /// Returns true if and only if the name ends with `.drv`.
    pub fn is_derivation(&self) -> bool {
        self.name().ends_with(".drv")
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dir, self.base)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nix() -> StoreDir {
        StoreDir::new("/nix/store").unwrap()
    }

    fn h(hex: &str) -> Hash {
        Hash::parse(&format!("sha256:{hex}"), None).unwrap()
    }

    #[test]
    fn reference_examples() {
        let d = nix();
        let dir_nar = h("ab9e600c5a3d4f86783075f9ca16467e51d69a2780c8b8db76a21de48960d4fc");
        let file_nar = h("1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13");
        assert_eq!(
            d.make_source_path("d", &dir_nar, &[], false).unwrap().to_string(),
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-d"
        );
        assert_eq!(
            d.make_source_path("hello.txt", &file_nar, &[], false).unwrap().to_string(),
            "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"
        );
        let flat = Hash::digest(HashAlgo::Sha256, b"hello\n");
        assert_eq!(
            d.make_fixed_output_path("hello.txt", FileIngestion::Flat, &flat, &[], false)
                .unwrap()
                .to_string(),
            "/nix/store/gy454w1cxaq731grqwylhzf4pp9r5izh-hello.txt"
        );
        assert_eq!(
            d.make_source_path("dd", &dir_nar, &[], false).unwrap().base_name(),
            "b653k0kh3cs0h0p3l28hg1b8p6jh4458-dd"
        );
        let t = d.make_text_path("t.txt", &Hash::digest(HashAlgo::Sha256, b"hi\n"), &[]).unwrap();
        assert_eq!(t.to_string(), "/nix/store/rcl5i7k4xwa7zkij8lg4r4yxxgixdwzv-t.txt");
        let a = d.make_text_path("a", &Hash::digest(HashAlgo::Sha256, b"x"), &[]).unwrap();
        assert_eq!(a.to_string(), "/nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a");
        let t2 = format!("ref {a}");
        let t2 = d.make_text_path("t2", &Hash::digest(HashAlgo::Sha256, t2.as_bytes()), &[a]).unwrap();
        assert_eq!(t2.to_string(), "/nix/store/5mbaajqgv6hmmzj56z6myfdim6px32xk-t2");
        let zero = Hash::from_bytes(HashAlgo::Sha1, &[0; 20]).unwrap();
        assert_eq!(
            d.make_fixed_output_path("fod-sha1", FileIngestion::Recursive, &zero, &[], false)
                .unwrap()
                .base_name(),
            "zvbc2hk2nkjis592rdq4zdw0yfg8qdr0-fod-sha1"
        );
    }

    #[test]
    fn validation() {
        let d = nix();
        assert!(d.parse_path("/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-d").is_ok());
        for bad in [
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-",
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiire-d",
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-a/b",
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-.",
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-..",
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-.-x",
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-..-x",
            "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-a b",
            "/other/46h99v2kjhaignz5dm0y8kzhwanpiirv-d",
            "/nix/store46h99v2kjhaignz5dm0y8kzhwanpiirv-d",
        ] {
            assert!(d.parse_path(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(211)).is_ok());
        assert!(validate_name(&"a".repeat(212)).is_err());
        // Current Nix accepts names starting with '.', as long as they are not '.', '..', '.-…' or '..-…'.
        for good in [".x", "..x", ".gitignore", "...", ".a-b"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        assert_eq!(
            validate_name("a b"),
            Err(StorePathError::BadName { name: "a b".into(), problem: NameProblem::BadChar(' ') })
        );
        let (p, rest) = d.parse_path_prefix("/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-d/bin/x").unwrap();
        assert_eq!((p.name(), rest), ("d", "/bin/x"));
        assert!(StoreDir::new("/nix/store/").is_err());
        assert!(StoreDir::new("relative").is_err());
        let ca = ContentAddress::Fixed(
            FileIngestion::Recursive,
            h("ab9e600c5a3d4f86783075f9ca16467e51d69a2780c8b8db76a21de48960d4fc"),
        );
        assert_eq!(ContentAddress::parse(&ca.to_string()), Some(ca));
    }

    proptest! {
        #[test]
        fn parse_print_round_trip(hash in "[0-9a-df-np-sv-z]{32}", name in "[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]{0,210}") {
            let d = nix();
            let text = format!("/nix/store/{hash}-{name}");
            let p = d.parse_path(&text).unwrap();
            prop_assert_eq!(p.hash_part(), hash.as_str());
            prop_assert_eq!(p.name(), name.as_str());
            prop_assert_eq!(p.to_string(), text.clone());
            prop_assert_eq!(p.to_absolute(), PathBuf::from(text));
        }
    }
}
