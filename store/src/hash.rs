//! Cryptographic hashes as Nix prints and parses them: `md5`, `sha1`, `sha256`, `sha512` in base-16, nix32, base-64
//! and SRI (`sha256-…`) forms. Pure; the NAR and store-path modules hash through [`Hasher`].

use std::fmt;
use std::io;

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use sha2::Digest;

use crate::nix32;

/// A hash algorithm Nix knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgo {
    /// The digest length in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlgo::Md5 => 16,
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha512 => 64,
        }
    }

    /// The name Nix uses (`sha256`).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// Parses `md5`, `sha1`, `sha256` or `sha512`.
    pub fn parse(name: &str) -> Result<HashAlgo, HashError> {
        match name {
            "md5" => Ok(HashAlgo::Md5),
            "sha1" => Ok(HashAlgo::Sha1),
            "sha256" => Ok(HashAlgo::Sha256),
            "sha512" => Ok(HashAlgo::Sha512),
            other => Err(HashError::UnknownAlgo(other.to_owned())),
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a hash could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("unknown hash algorithm '{0}'")]
    UnknownAlgo(String),
    #[error("hash '{0}' has no algorithm (write it as 'sha256:…' or 'sha256-…')")]
    MissingAlgo(String),
    #[error("hash '{text}' has the wrong length for a {algo} hash in base-16, nix32 or base-64")]
    WrongLength { text: String, algo: HashAlgo },
    #[error("hash '{text}' is not a valid {algo} hash in base-16, nix32 or base-64")]
    BadEncoding { text: String, algo: HashAlgo },
    #[error("hash '{text}' is not a valid {algo} SRI hash")]
    BadSri { text: String, algo: HashAlgo },
    #[error("hash '{text}' names {found} but {expected} was expected")]
    WrongAlgo { text: String, found: HashAlgo, expected: HashAlgo },
}

/// A digest together with its algorithm.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash {
    algo: HashAlgo,
    bytes: Vec<u8>,
}

/// The text forms Nix prints hashes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFormat {
    Base16,
    Nix32,
    Base64,
    Sri,
}

impl Hash {
    /// Wraps a digest; `None` if its length does not match the algorithm.
    pub fn from_bytes(algo: HashAlgo, bytes: &[u8]) -> Option<Hash> {
        (bytes.len() == algo.digest_len()).then(|| Hash { algo, bytes: bytes.to_vec() })
    }

    /// A SHA-256 digest held as an array.
    pub fn from_sha256(bytes: [u8; 32]) -> Hash {
        Hash { algo: HashAlgo::Sha256, bytes: bytes.to_vec() }
    }

    /// The all-zero digest: Nix's placeholder for a hash not known yet (`outputHash = ""`).
    pub fn zero(algo: HashAlgo) -> Hash {
        Hash { algo, bytes: vec![0; algo.digest_len()] }
    }

    /// Hashes a byte slice in one go.
    pub fn digest(algo: HashAlgo, data: &[u8]) -> Hash {
        let mut h = Hasher::new(algo);
        h.update(data);
        h.finish()
    }

    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.bytes)
    }

    pub fn to_nix32(&self) -> String {
        nix32::encode(&self.bytes)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    /// `sha256-<base64>`, the form of `nix path-info --json` and flakes.
    pub fn to_sri(&self) -> String {
        format!("{}-{}", self.algo, self.to_base64())
    }

    /// The digest alone (no algorithm prefix) in the given form; SRI includes its prefix by definition.
    pub fn encode(&self, format: HashFormat) -> String {
        match format {
            HashFormat::Base16 => self.to_hex(),
            HashFormat::Nix32 => self.to_nix32(),
            HashFormat::Base64 => self.to_base64(),
            HashFormat::Sri => self.to_sri(),
        }
    }

    /// `algo:<form>`; SRI is returned as is.
    pub fn to_typed(&self, format: HashFormat) -> String {
        match format {
            HashFormat::Sri => self.to_sri(),
            _ => format!("{}:{}", self.algo, self.encode(format)),
        }
    }

    /// Parses a digest without a prefix, recognising the form by its length (as Nix does).
    pub fn parse_bare(algo: HashAlgo, text: &str) -> Result<Hash, HashError> {
        let bad = || HashError::BadEncoding { text: text.to_owned(), algo };
        let bytes = if text.len() == algo.digest_len() * 2 {
            HEXLOWER_PERMISSIVE.decode(text.as_bytes()).map_err(|_| bad())?
        } else if text.len() == nix32::encoded_len(algo.digest_len()) {
            nix32::decode(text, algo.digest_len()).ok_or_else(bad)?
        } else if text.len() == BASE64.encode_len(algo.digest_len()) {
            BASE64.decode(text.as_bytes()).map_err(|_| bad())?
        } else {
            return Err(HashError::WrongLength { text: text.to_owned(), algo });
        };
        Hash::from_bytes(algo, &bytes).ok_or_else(bad)
    }

    /// Parses `algo:digest` (any form), SRI `algo-base64`, or a bare digest when `default` is given.
    pub fn parse(text: &str, default: Option<HashAlgo>) -> Result<Hash, HashError> {
        let hash = if let Some((algo, rest)) = text.split_once(':') {
            Hash::parse_bare(HashAlgo::parse(algo)?, rest)?
        } else if let Some((algo, rest)) = text.split_once('-').filter(|(a, _)| HashAlgo::parse(a).is_ok()) {
            let algo = HashAlgo::parse(algo)?;
            let bad = || HashError::BadSri { text: text.to_owned(), algo };
            let bytes = BASE64.decode(rest.as_bytes()).map_err(|_| bad())?;
            Hash::from_bytes(algo, &bytes).ok_or_else(bad)?
        } else {
            let algo = default.ok_or_else(|| HashError::MissingAlgo(text.to_owned()))?;
            Hash::parse_bare(algo, text)?
        };
        match default {
            Some(expected) if expected != hash.algo => {
                Err(HashError::WrongAlgo { text: text.to_owned(), found: hash.algo, expected })
            }
            _ => Ok(hash),
        }
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo, self.to_nix32())
    }
}

/// `sha256:<nix32>`, the form Nix prints most.
impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo, self.to_nix32())
    }
}

/// An incremental hasher for any [`HashAlgo`]; also an `io::Write` sink so NARs can be hashed as they stream.
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algo())
    }
}

impl Hasher {
    pub fn new(algo: HashAlgo) -> Hasher {
        match algo {
            HashAlgo::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn algo(&self) -> HashAlgo {
        match self {
            Hasher::Md5(_) => HashAlgo::Md5,
            Hasher::Sha1(_) => HashAlgo::Sha1,
            Hasher::Sha256(_) => HashAlgo::Sha256,
            Hasher::Sha512(_) => HashAlgo::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Hash {
        let algo = self.algo();
        let bytes = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        Hash { algo, bytes }
    }
}

impl io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lower-case base-16 of any bytes (fingerprints spell inner hashes this way).
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// The SHA-256 of `data` as a plain array (the inner hash of store path fingerprints and derivation hashes).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Nix's `compressHash`: folds a digest into `len` bytes by XOR (store paths use 20).
pub fn compress(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (i, b) in bytes.iter().enumerate() {
        out[i % len] ^= b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let h = Hash::digest(HashAlgo::Sha256, b"hello\n");
        for text in [
            h.to_typed(HashFormat::Base16),
            h.to_typed(HashFormat::Nix32),
            h.to_typed(HashFormat::Base64),
            h.to_sri(),
        ] {
            assert_eq!(Hash::parse(&text, None).unwrap(), h, "{text}");
        }
        assert_eq!(Hash::parse(&h.to_nix32(), Some(HashAlgo::Sha256)).unwrap(), h);
        assert!(matches!(Hash::parse(&h.to_hex(), None), Err(HashError::MissingAlgo(_))));
        assert!(matches!(
            Hash::parse(&h.to_typed(HashFormat::Base16), Some(HashAlgo::Sha1)),
            Err(HashError::WrongAlgo { .. })
        ));
        assert!(matches!(Hash::parse("sha256:xyz", None), Err(HashError::WrongLength { .. })));
        let bad_nix32 = format!("sha256:{}", "e".repeat(52));
        assert!(matches!(Hash::parse(&bad_nix32, None), Err(HashError::BadEncoding { .. })));
        assert!(matches!(Hash::parse("sha256-AAAA", None), Err(HashError::BadSri { .. })));
        assert_eq!(h.to_hex(), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    }

    #[test]
    fn all_algorithms_have_their_lengths() {
        for algo in [HashAlgo::Md5, HashAlgo::Sha1, HashAlgo::Sha256, HashAlgo::Sha512] {
            let h = Hash::digest(algo, b"x");
            assert_eq!(h.as_bytes().len(), algo.digest_len());
            assert_eq!(Hash::parse(&h.to_string(), None).unwrap(), h);
        }
    }
}
