//! OpenPGP verification of `InRelease` (clearsigned) and `Release` + `Release.gpg` (detached) against a keyring.
//!
//! Keyrings are binary (`.gpg`, concatenated transferable public keys) or armored (`.asc`) files, or an inline key
//! block from a deb822 `Signed-By`. A release file is accepted when at least one of its signatures verifies with a
//! primary key or a properly bound subkey of the keyring (RSA and EdDSA keys both work: `pgp` is pure Rust). Only
//! the signed text is ever returned, so nothing outside the signature can reach the index parser.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey, StandaloneSignature};
use pgp::types::KeyDetails;

use crate::config::Keys;
use crate::error::{Error, Result, io};

/// The public keys a repository is trusted under.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    /// Where the keys came from, for messages.
    pub origin: String,
}

impl Keyring {
    /// Loads the keys `keys` names; [`Keys::HostTrusted`] reads apt's default trusted keyrings under `host_root`.
    pub fn load(keys: &Keys, host_root: &Path) -> Result<Keyring> {
        let files: Vec<PathBuf> = match keys {
            Keys::Inline(text) => {
                let parsed = parse_keys(text.as_bytes())
                    .map_err(|reason| Error::Keyring { path: "Signed-By (inline)".into(), reason })?;
                return Ok(Keyring { keys: parsed, origin: "inline Signed-By key".into() });
            }
            Keys::Files(files) => files.clone(),
            Keys::HostTrusted => {
                let mut files = vec![host_root.join("etc/apt/trusted.gpg")];
                let dir = host_root.join("etc/apt/trusted.gpg.d");
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    let mut more: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("gpg" | "asc")))
                        .collect();
                    more.sort();
                    files.extend(more);
                }
                files.retain(|f| f.exists());
                if files.is_empty() {
                    return Err(Error::Keyring {
                        path: dir,
                        reason: "no trusted keyring found; name one with signed-by or keyring".into(),
                    });
                }
                files
            }
        };
        let mut all = Vec::new();
        for file in &files {
            let data = std::fs::read(file).map_err(io("read keyring", file))?;
            let parsed = parse_keys(&data).map_err(|reason| Error::Keyring { path: file.clone(), reason })?;
            all.extend(parsed);
        }
        let origin = files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
        Ok(Keyring { keys: all, origin })
    }

    /// A keyring from key material in memory (binary or armored).
    pub fn from_bytes(data: &[u8], origin: &str) -> Result<Keyring> {
        let keys = parse_keys(data).map_err(|reason| Error::Keyring { path: origin.into(), reason })?;
        Ok(Keyring { keys, origin: origin.to_owned() })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies a clearsigned `InRelease` and returns the signed text with `\n` line ends.
    pub fn verify_clearsigned(&self, data: &[u8], url: &str) -> Result<String> {
        let bad = |reason: String| Error::Signature { url: url.to_owned(), reason };
        let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8 text".into()))?;
        let (msg, _) = CleartextSignedMessage::from_string(text)
            .map_err(|e| bad(format!("not a clearsigned message: {e}")))?;
        let signed = msg.signed_text();
        let ok = msg.signatures().iter().any(|sig| self.verifies(sig, signed.as_bytes()));
        if !ok {
            return Err(bad(format!("no valid signature by a key in {}", self.origin)));
        }
        Ok(signed.replace("\r\n", "\n"))
    }

    /// Verifies `Release` against a detached `Release.gpg`.
    pub fn verify_detached(&self, data: &[u8], signature: &[u8], url: &str) -> Result<()> {
        let bad = |reason: String| Error::Signature { url: url.to_owned(), reason };
        let (sigs, _) = StandaloneSignature::from_reader_many(Cursor::new(signature))
            .map_err(|e| bad(format!("cannot parse the signature: {e}")))?;
        let mut any = false;
        for sig in sigs {
            let sig = sig.map_err(|e| bad(format!("cannot parse the signature: {e}")))?;
            if self.verifies(&sig, data) {
                any = true;
                break;
            }
        }
        if any { Ok(()) } else { Err(bad(format!("no valid signature by a key in {}", self.origin))) }
    }

    fn verifies(&self, sig: &StandaloneSignature, data: &[u8]) -> bool {
        for key in &self.keys {
            if sig.verify(key, data).is_ok() {
                tracing::debug!(key = %hex_id(key), "good signature by primary key");
                return true;
            }
            for sub in &key.public_subkeys {
                // A subkey counts only with a valid binding signature from its primary key.
                if sig.verify(sub, data).is_ok() && sub.verify(&key.primary_key).is_ok() {
                    tracing::debug!(key = %hex_id(key), "good signature by subkey");
                    return true;
                }
            }
        }
        false
    }
}

fn hex_id(key: &SignedPublicKey) -> String {
    format!("{:?}", key.key_id())
}

fn parse_keys(data: &[u8]) -> Result<Vec<SignedPublicKey>, String> {
    let (iter, _) = SignedPublicKey::from_reader_many(Cursor::new(data)).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for key in iter {
        match key {
            Ok(k) => keys.push(k),
            // One unreadable key (an algorithm this crate lacks) must not hide the others in the same keyring.
            Err(e) => tracing::warn!("skipping an unreadable key: {e}"),
        }
    }
    if keys.is_empty() {
        return Err("no OpenPGP public key in it".into());
    }
    Ok(keys)
}
