//! Signing keys in Nix's `name:base64` format and ed25519 signatures over a path's fingerprint
//! (`nix-store --generate-binary-cache-key`, `nix store sign`, `require-sigs`). A secret key is the 32-byte seed
//! followed by the 32-byte public key (libsodium's layout); a signature is `name:base64(64 bytes)`. ed25519 is
//! deterministic, so signing the same fingerprint with the same key gives Nix's `Sig` byte for byte.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::error::{CacheError, Result};

fn corrupt(what: &str, reason: impl Into<String>) -> CacheError {
    CacheError::BadKey { what: what.to_owned(), reason: reason.into() }
}

/// Splits `name:data` and decodes the base64 data as Nix does: newlines are skipped and decoding stops at the
/// first `=`, so a trailing newline in a key file is harmless.
fn split_decode(text: &str, what: &str) -> Result<(String, Vec<u8>)> {
    let text = text.trim_end_matches(['\n', '\r']);
    let (name, data) = text.split_once(':').ok_or_else(|| corrupt(what, "it has no ':' after the name"))?;
    if name.is_empty() || data.is_empty() {
        return Err(corrupt(what, "the name or the data is empty"));
    }
    let mut clean = String::with_capacity(data.len());
    for c in data.chars() {
        match c {
            '\n' => {}
            '=' => break,
            c if c.is_ascii_alphanumeric() || c == '+' || c == '/' => clean.push(c),
            c => return Err(corrupt(what, format!("invalid character in Base64 string: '{c}'"))),
        }
    }
    let bytes = data_encoding::BASE64_NOPAD
        .decode(clean.as_bytes())
        .map_err(|e| corrupt(what, format!("bad base64 ({e})")))?;
    Ok((name.to_owned(), bytes))
}

/// A secret signing key (`name:base64(seed ‖ public)`).
#[derive(Clone)]
pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.name)
    }
}

impl SecretKey {
    /// A fresh key with a seed from the kernel's random source.
    pub fn generate(name: &str) -> Result<SecretKey> {
        if name.is_empty() || name.contains(':') {
            return Err(corrupt("key name", format!("'{name}' must be non-empty and contain no ':'")));
        }
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(crate::error::io_err("read random bytes from", "/dev/urandom"))?;
        Ok(SecretKey { name: name.to_owned(), key: SigningKey::from_bytes(&seed) })
    }

    pub fn parse(text: &str) -> Result<SecretKey> {
        let (name, bytes) = split_decode(text, "secret key")?;
        let bytes: [u8; 64] =
            bytes.try_into().map_err(|_| corrupt("secret key", "secret key is not valid (not 64 bytes)"))?;
        let seed: [u8; 32] = bytes[..32].try_into().expect("32 bytes");
        let key = SigningKey::from_bytes(&seed);
        if key.verifying_key().as_bytes()[..] != bytes[32..] {
            return Err(corrupt("secret key", "its public half does not belong to its seed"));
        }
        Ok(SecretKey { name, key })
    }

    /// Reads a key file (as written by Nix or [`SecretKey::to_string`]).
    pub fn read_file(path: &std::path::Path) -> Result<SecretKey> {
        let text =
            std::fs::read_to_string(path).map_err(crate::error::io_err("read secret key", path.display()))?;
        SecretKey::parse(&text).map_err(|e| match e {
            CacheError::BadKey { reason, .. } => {
                CacheError::BadKey { what: format!("secret key {}", path.display()), reason }
            }
            e => e,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { name: self.name.clone(), key: self.key.verifying_key() }
    }

    /// `name:base64(signature)` of `fingerprint`.
    pub fn sign(&self, fingerprint: &str) -> String {
        let sig = self.key.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, data_encoding::BASE64.encode(&sig.to_bytes()))
    }
}

/// `name:base64(seed ‖ public)`, the secret key file's contents (Nix writes no newline).
impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = self.key.to_bytes().to_vec();
        bytes.extend_from_slice(self.key.verifying_key().as_bytes());
        write!(f, "{}:{}", self.name, data_encoding::BASE64.encode(&bytes))
    }
}

/// A public key (`name:base64(32 bytes)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey> {
        let (name, bytes) = split_decode(text, "public key")?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| corrupt("public key", "public key is not valid (not 32 bytes)"))?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| corrupt("public key", "public key is not valid"))?;
        Ok(PublicKey { name, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, data_encoding::BASE64.encode(self.key.as_bytes()))
    }
}

/// The keys signatures are checked against, by name (on duplicate names the first wins, as in Nix).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, PublicKey>,
}

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> TrustedKeys {
        let mut t = TrustedKeys::default();
        for k in keys {
            t.add(k);
        }
        t
    }

    pub fn add(&mut self, key: PublicKey) {
        self.keys.entry(key.name.clone()).or_insert(key);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True if and only if `sig` (`name:base64`) is a valid signature of `fingerprint` by the trusted key of that
    /// name. A signature that is not 64 bytes of base64 counts as not valid.
    pub fn verify(&self, fingerprint: &str, sig: &str) -> bool {
        let Some((name, data)) = sig.split_once(':') else { return false };
        let Some(key) = self.keys.get(name) else { return false };
        let Ok(bytes) = data_encoding::BASE64.decode(data.as_bytes()) else { return false };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes) else { return false };
        key.key.verify(fingerprint.as_bytes(), &Signature::from_bytes(&bytes)).is_ok()
    }

    /// How many of `sigs` verify.
    pub fn count_valid<'a>(&self, fingerprint: &str, sigs: impl IntoIterator<Item = &'a String>) -> usize {
        sigs.into_iter().filter(|s| self.verify(fingerprint, s)).count()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Made by Nix 2.8: `nix-store --generate-binary-cache-key test-cache-1 sk pk`, then `nix copy --to
    // 'file://c?secret-key=sk'` of `nix-store --add hello.txt` ("hello\n") wrote this `Sig`.
    pub(crate) const SK: &str = "test-cache-1:vzyRLIxlG5fAS6lCxInPImY2KzxId2tuOJVFCJk8+kPwlzW4qS4lSsH3q66MFsR86X6oifmkQJamCuWFNhIDXQ==";
    pub(crate) const PK: &str = "test-cache-1:8Jc1uKkuJUrB96uujBbEfOl+qIn5pECWpgrlhTYSA10=";
    pub(crate) const FINGERPRINT: &str = "1;/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt;sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw;120;";
    pub(crate) const SIG: &str = "test-cache-1:BND5iY3JE5r/xBPfWJzXVmiNDBJtFp3cv57OS0GF40MydkzLxkF3BOwteAjU/oF1P+MDkYBPx70hMX8bKSLPCQ==";

    #[test]
    fn key_round_trip_and_signature() {
        let sk = SecretKey::parse(SK).unwrap();
        assert_eq!(sk.to_string(), SK);
        let pk = sk.public();
        assert_eq!(pk.to_string(), PK);
        assert_eq!(PublicKey::parse(&format!("{PK}\n")).unwrap(), pk);
        assert_eq!(sk.sign(FINGERPRINT), SIG);
        let trusted = TrustedKeys::new([pk]);
        assert!(trusted.verify(FINGERPRINT, SIG));
        assert!(!trusted.verify(&FINGERPRINT.replace("120", "121"), SIG));
        assert!(!trusted.verify(FINGERPRINT, &SIG.replace("test-cache-1", "other")));
        assert!(!trusted.verify(FINGERPRINT, "test-cache-1:AAAA"));
        let generated = SecretKey::generate("k").unwrap();
        assert_eq!(SecretKey::parse(&generated.to_string()).unwrap().to_string(), generated.to_string());
    }

    #[test]
    fn corrupt_keys() {
        assert!(SecretKey::parse("nocolon").is_err());
        assert!(SecretKey::parse(":abc").is_err());
        assert!(PublicKey::parse("k:ab*c").is_err());
        assert!(PublicKey::parse("k:AAAA").is_err());
        assert!(SecretKey::generate("a:b").is_err());
    }
}
