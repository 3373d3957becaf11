//! `<hash>.narinfo`: what a binary cache says about one store path. The printer writes Nix's field order byte for
//! byte; the parser follows Nix's rules (a value starts two bytes after the colon, unknown keys are ignored, an
//! absent `Compression` means bzip2), so narinfos written by Nix, nix-serve, harmonia and fhskit all read. The
//! fingerprint is what `Sig` lines sign.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use store::{ContentAddress, Hash, HashAlgo, PathInfo, StoreDir, StorePath};

use crate::compression::Compression;
use crate::error::{CacheError, Result};
use crate::keys::{SecretKey, TrustedKeys};

/// One narinfo file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    pub path: StorePath,
    /// Where the (compressed) NAR is, relative to the cache URL (or absolute).
    pub url: String,
    pub compression: Compression,
    pub file_hash: Option<Hash>,
    /// 0 when unknown.
    pub file_size: u64,
    pub nar_hash: Hash,
    pub nar_size: u64,
    pub references: BTreeSet<StorePath>,
    pub deriver: Option<StorePath>,
    pub sigs: BTreeSet<String>,
    pub ca: Option<ContentAddress>,
}

/// `1;<path>;sha256:<nix32>;<size>;<refs>`: the string a signature signs (`ValidPathInfo::fingerprint`).
pub fn fingerprint(path: &StorePath, nar_hash: &Hash, nar_size: u64, refs: &BTreeSet<StorePath>) -> String {
    let refs: Vec<String> = refs.iter().map(ToString::to_string).collect();
    format!("1;{path};{};{nar_size};{}", nar_hash.to_typed(store::HashFormat::Nix32), refs.join(","))
}

impl NarInfo {
    /// The narinfo for a local path, before its NAR is known (URL and file fields are filled in by the writer).
    pub fn from_path_info(info: &PathInfo) -> NarInfo {
        NarInfo {
            path: info.path.clone(),
            url: String::new(),
            compression: Compression::None,
            file_hash: None,
            file_size: 0,
            nar_hash: info.nar_hash.clone(),
            nar_size: info.nar_size,
            references: info.references.clone(),
            deriver: info.deriver.clone(),
            sigs: info.sigs.iter().cloned().collect(),
            ca: info.ca.clone(),
        }
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.path, &self.nar_hash, self.nar_size, &self.references)
    }

    /// Adds this key's signature (replacing an older one by the same key name).
    pub fn sign(&mut self, key: &SecretKey) {
        let prefix = format!("{}:", key.name());
        self.sigs.retain(|s| !s.starts_with(&prefix));
        self.sigs.insert(key.sign(&self.fingerprint()));
    }

    /// How many signatures verify with `keys`.
    pub fn valid_signatures(&self, keys: &TrustedKeys) -> usize {
        keys.count_valid(&self.fingerprint(), &self.sigs)
    }

    /// Parses `text` (read from `whence`, named in errors) for a client whose store directory is `store_dir`.
    pub fn parse(store_dir: &StoreDir, text: &str, whence: &str) -> Result<NarInfo> {
        let corrupt = |reason: String| CacheError::CorruptNarInfo { file: whence.to_owned(), reason };
        let bytes = text.as_bytes();
        let mut pos = 0;
        let mut line_no = 0;
        let mut path = None;
        let mut url = None;
        let mut compression = None;
        let mut file_hash = None;
        let mut file_size = 0;
        let mut nar_hash = None;
        let mut nar_size = 0;
        let mut references = None;
        let mut deriver = None;
        let mut sigs = BTreeSet::new();
        let mut ca = None;
        while pos < bytes.len() {
            line_no += 1;
            let at = |what: &str| corrupt(format!("{what} at line {line_no}"));
            let colon = text[pos..].find(':').map(|c| pos + c).ok_or_else(|| at("expecting ':'"))?;
            let name = &text[pos..colon];
            let start = (colon + 2).min(bytes.len());
            let end = text[start..].find('\n').map(|e| start + e).ok_or_else(|| at("expecting '\\n'"))?;
            let value = &text[start..end];
            pos = end + 1;
            let parse_path = |base: &str| {
                store_dir.from_base_name(base).map_err(|e| at(&format!("bad store path '{base}' ({e})")))
            };
            match name {
                "StorePath" => {
                    let p = store_dir.parse_path(value).map_err(|e| at(&format!("bad StorePath ({e})")))?;
                    path = Some(p);
                }
                "URL" => url = Some(value.to_owned()),
                "Compression" => {
                    compression = Some(Compression::parse(value).ok_or_else(|| at("invalid Compression"))?)
                }
                "FileHash" => file_hash = Some(Hash::parse(value, None).map_err(|_| at("bad hash"))?),
                "FileSize" => file_size = value.parse().map_err(|_| at("invalid FileSize"))?,
                "NarHash" => nar_hash = Some(Hash::parse(value, None).map_err(|_| at("bad hash"))?),
                "NarSize" => nar_size = value.parse().map_err(|_| at("invalid NarSize"))?,
                "References" => {
                    let refs: BTreeSet<StorePath> =
                        value.split(' ').filter(|s| !s.is_empty()).map(parse_path).collect::<Result<_>>()?;
                    if references.as_ref().is_some_and(|r: &BTreeSet<StorePath>| !r.is_empty()) {
                        return Err(at("extra References"));
                    }
                    references = Some(refs);
                }
                "Deriver" if value != "unknown-deriver" => deriver = Some(parse_path(value)?),
                "Sig" => {
                    sigs.insert(value.to_owned());
                }
                "CA" => {
                    if ca.is_some() {
                        return Err(at("extra CA"));
                    }
                    ca = Some(ContentAddress::parse(value).ok_or_else(|| at("bad CA"))?);
                }
                _ => {}
            }
        }
        let path = path.ok_or_else(|| corrupt("StorePath missing".into()))?;
        let nar_hash = nar_hash.ok_or_else(|| corrupt("NarHash missing".into()))?;
        let url = url.ok_or_else(|| corrupt("URL missing".into()))?;
        if nar_size == 0 {
            return Err(corrupt("NarSize missing or zero".into()));
        }
        if nar_hash.algo() != HashAlgo::Sha256 {
            return Err(corrupt(format!("NarHash {nar_hash} is not sha256")));
        }
        Ok(NarInfo {
            path,
            url,
            compression: compression.unwrap_or(Compression::Bzip2),
            file_hash,
            file_size,
            nar_hash,
            nar_size,
            references: references.unwrap_or_default(),
            deriver,
            sigs,
            ca,
        })
    }

    /// What a reader sees as this path's `PathInfo` fields (for registration after a download).
    pub fn to_metadata(&self) -> store::NarMetadata {
        store::NarMetadata {
            path: self.path.clone(),
            nar_hash: Some(self.nar_hash.clone()),
            references: self.references.clone(),
            deriver: self.deriver.clone(),
            ca: self.ca.clone(),
            sigs: self.sigs.iter().cloned().collect(),
        }
    }
}

/// The narinfo text, in Nix's order (`NarInfo::to_string`).
impl std::fmt::Display for NarInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        let _ = writeln!(s, "StorePath: {}", self.path);
        let _ = writeln!(s, "URL: {}", self.url);
        let _ = writeln!(s, "Compression: {}", self.compression);
        if let Some(h) = &self.file_hash {
            let _ = writeln!(s, "FileHash: {}", h.to_typed(store::HashFormat::Nix32));
        }
        if self.file_size != 0 {
            let _ = writeln!(s, "FileSize: {}", self.file_size);
        }
        let _ = writeln!(s, "NarHash: {}", self.nar_hash.to_typed(store::HashFormat::Nix32));
        let _ = writeln!(s, "NarSize: {}", self.nar_size);
        let refs: Vec<&str> = self.references.iter().map(StorePath::base_name).collect();
        let _ = writeln!(s, "References: {}", refs.join(" "));
        if let Some(d) = &self.deriver {
            let _ = writeln!(s, "Deriver: {}", d.base_name());
        }
        for sig in &self.sigs {
            let _ = writeln!(s, "Sig: {sig}");
        }
        if let Some(ca) = &self.ca {
            let _ = writeln!(s, "CA: {ca}");
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;
    use crate::keys::tests::{FINGERPRINT, PK, SIG, SK};

    // Written by Nix 2.8's `nix copy --to 'file://c?secret-key=sk&compression=xz'` (see keys::tests).
    const NIX_NARINFO: &str = "StorePath: /nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt
URL: nar/17gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a.nar.xz
Compression: xz
FileHash: sha256:17gd6zzlkx90irc6qawagdkgh1d7qvlnq46yjf7xiqw9ycz7zq4a
FileSize: 128
NarHash: sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw
NarSize: 120
References: 
Sig: test-cache-1:BND5iY3JE5r/xBPfWJzXVmiNDBJtFp3cv57OS0GF40MydkzLxkF3BOwteAjU/oF1P+MDkYBPx70hMX8bKSLPCQ==
CA: fixed:r:sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw
";

    fn dir() -> StoreDir {
        StoreDir::new("/nix/store").unwrap()
    }

    #[test]
    fn nix_narinfo_round_trips_and_verifies() {
        let n = NarInfo::parse(&dir(), NIX_NARINFO, "x.narinfo").unwrap();
        assert_eq!(n.to_string(), NIX_NARINFO);
        assert_eq!(n.fingerprint(), FINGERPRINT);
        assert_eq!(n.compression, Compression::Xz);
        let keys = TrustedKeys::new([PublicKey::parse(PK).unwrap()]);
        assert_eq!(n.valid_signatures(&keys), 1);
        let mut m = n.clone();
        m.sigs.clear();
        m.sign(&SecretKey::parse(SK).unwrap());
        assert_eq!(m.sigs.iter().next().unwrap(), SIG);
        m.nar_size = 121;
        assert_eq!(m.valid_signatures(&keys), 0);
    }

    #[test]
    fn nix_parser_rules() {
        // nix-serve style: no FileHash/FileSize/References, no Compression means bzip2.
        let t = "StorePath: /nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt\nURL: nar/x.nar\nNarHash: sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw\nNarSize: 120\nFoo: bar\nDeriver: unknown-deriver\n";
        let n = NarInfo::parse(&dir(), t, "y").unwrap();
        assert_eq!(n.compression, Compression::Bzip2);
        assert!(n.references.is_empty() && n.deriver.is_none());
        let err = |t: &str| NarInfo::parse(&dir(), t, "f.narinfo").unwrap_err().to_string();
        assert_eq!(err("StorePath /x\n"), "NAR info file 'f.narinfo' is corrupt: expecting ':' at line 1");
        assert!(err(&t[..t.len() - 1]).ends_with("expecting '\\n' at line 6"));
        assert!(err(&t.replace("NarSize: 120", "NarSize: x")).ends_with("invalid NarSize at line 4"));
        assert!(err(&t.replace("NarSize: 120\n", "")).ends_with("NarSize missing or zero"));
        assert!(err(&t.replace("URL: nar/x.nar\n", "")).ends_with("URL missing"));
        assert!(err(&format!("{t}Compression: rar\n")).ends_with("invalid Compression at line 7"));
        // A bare `References:` swallows the next line, as in Nix.
        assert!(NarInfo::parse(&dir(), &t.replace("Foo: bar\n", "References:\nFoo: bar\n"), "z").is_err());
        // Another store directory's path is refused.
        assert!(err(&t.replace("/nix/store/", "/other/store/")).contains("bad StorePath"));
    }
}
