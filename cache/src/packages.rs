//! Package mappings: the binary-cache side of the store's package map ([`store::packages`]). A cache holds, beside
//! the narinfos, one small text file per package at `fhskit-packages/<key>`, saying which store path the package
//! (a `.deb` with its dependencies' store paths, hashed into the key by the caller) unpacks to:
//!
//! ```text
//! Package: <key>
//! StorePath: /nix/store/…-zlib1g-1.3
//! Sig: cache.example.org-1:…
//! ```
//!
//! so that `fhskit run` on another machine asks the cache for the path instead of downloading and unpacking the
//! `.deb`. The signature is an ed25519 signature, by a key of `trusted-public-keys`, of the fingerprint
//! `fhskit-package;<key>;<store path>`; without it (and with `require-sigs`) the mapping is not used. Nix does not
//! read these files and is not disturbed by them; the path itself arrives through its narinfo as always.

use std::collections::BTreeSet;

use store::{StoreDir, StorePath};

use crate::error::{CacheError, Result};
use crate::keys::{SecretKey, TrustedKeys};

/// The directory of the mappings in a cache.
pub const DIR: &str = "fhskit-packages";

/// One mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageMapping {
    pub key: String,
    pub path: StorePath,
    pub sigs: BTreeSet<String>,
}

impl PackageMapping {
    pub fn new(key: &str, path: StorePath) -> PackageMapping {
        PackageMapping { key: key.to_owned(), path, sigs: BTreeSet::new() }
    }

    /// Where it lives in a cache.
    pub fn file_name(key: &str) -> String {
        format!("{DIR}/{key}")
    }

    /// What the signatures sign.
    pub fn fingerprint(&self) -> String {
        format!("fhskit-package;{};{}", self.key, self.path)
    }

    pub fn sign(&mut self, key: &SecretKey) {
        self.sigs.insert(key.sign(&self.fingerprint()));
    }

    /// How many signatures verify with `keys`.
    pub fn valid_signatures(&self, keys: &TrustedKeys) -> usize {
        keys.count_valid(&self.fingerprint(), &self.sigs)
    }

    /// Parses a mapping file (`file` names it in errors); it must be about `key`.
    pub fn parse(store_dir: &StoreDir, key: &str, text: &str, file: &str) -> Result<PackageMapping> {
        let bad = |reason: String| CacheError::CorruptNarInfo { file: file.to_owned(), reason };
        let (mut got_key, mut path, mut sigs) = (None, None, BTreeSet::new());
        for line in text.lines() {
            let Some((name, value)) = line.split_once(": ") else { continue };
            match name {
                "Package" => got_key = Some(value.to_owned()),
                "StorePath" => {
                    path = Some(store_dir.parse_path(value).map_err(|e| bad(format!("StorePath: {e}")))?)
                }
                "Sig" => {
                    sigs.insert(value.to_owned());
                }
                _ => {}
            }
        }
        if got_key.as_deref() != Some(key) {
            return Err(bad(format!("it is not about package '{key}'")));
        }
        let path = path.ok_or_else(|| bad("no StorePath".into()))?;
        Ok(PackageMapping { key: key.to_owned(), path, sigs })
    }
}

impl std::fmt::Display for PackageMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Package: {}", self.key)?;
        writeln!(f, "StorePath: {}", self.path)?;
        for s in &self.sigs {
            writeln!(f, "Sig: {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_signatures() {
        let dir = StoreDir::new("/nix/store").unwrap();
        let key = "a".repeat(64);
        let path = dir.parse_path("/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-zlib1g-1.3").unwrap();
        let sk = SecretKey::generate("test-1").unwrap();
        let mut m = PackageMapping::new(&key, path.clone());
        m.sign(&sk);
        let text = m.to_string();
        let back = PackageMapping::parse(&dir, &key, &text, "f").unwrap();
        assert_eq!(back, m);
        let trusted = TrustedKeys::new([sk.public()]);
        assert_eq!(back.valid_signatures(&trusted), 1);
        // Another path under the same signature does not verify; nor does the mapping under another key.
        let other = dir.parse_path("/nix/store/00000000000000000000000000000000-zlib1g-1.3").unwrap();
        let forged = PackageMapping { path: other, ..back.clone() };
        assert_eq!(forged.valid_signatures(&trusted), 0);
        assert!(PackageMapping::parse(&dir, &"b".repeat(64), &text, "f").is_err());
    }
}
