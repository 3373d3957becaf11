//! Store path computation, kept small and local because `eval` may not depend on the `store` crate: Nix32,
//! hash parsing/printing in all of Nix's forms, the `text`/`source`/`output:` fingerprints and NAR serialisation
//! (over `EvalIo`) for hashing source trees. This duplicates a little of `store` on purpose.

use sha2::Digest;

use crate::io::{EvalIo, FileKind};

const NIX32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

pub fn nix32_encode(h: &[u8]) -> String {
    let len = (h.len() * 8).div_ceil(5);
    let mut out = String::with_capacity(len);
    for k in (0..len).rev() {
        let b = k * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = (h[i] as u32) >> j;
        let hi = if i + 1 < h.len() { (h[i + 1] as u32) << (8 - j) } else { 0 };
        out.push(NIX32[((lo | hi) & 31) as usize] as char);
    }
    out
}

pub fn nix32_decode(s: &str, size: usize) -> Option<Vec<u8>> {
    if s.len() != (size * 8).div_ceil(5) {
        return None;
    }
    let mut out = vec![0u8; size];
    for (n, c) in s.bytes().rev().enumerate() {
        let digit = NIX32.iter().position(|&x| x == c)? as u32;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if i + 1 < size {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// A hash algorithm Nix knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    pub fn parse(s: &str) -> Option<Algo> {
        Some(match s {
            "md5" => Algo::Md5,
            "sha1" => Algo::Sha1,
            "sha256" => Algo::Sha256,
            "sha512" => Algo::Sha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }

    pub fn size(self) -> usize {
        match self {
            Algo::Md5 => 16,
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
            Algo::Sha512 => 64,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algo::Md5 => md5::Md5::digest(data).to_vec(),
            Algo::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Algo::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Algo::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// A parsed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hash {
    pub algo: Algo,
    pub bytes: Vec<u8>,
}

impl Hash {
    /// Parses any of Nix's forms: `algo:hex|nix32|base64`, SRI `algo-base64`, or a bare digest when `algo` is
    /// given. An empty string means the all-zero "fake" hash of `algo`.
    pub fn parse(s: &str, algo: Option<Algo>) -> Result<Hash, String> {
        use base64::Engine;
        let (algo, rest, sri) = if let Some((a, r)) = s.split_once(':') {
            (Algo::parse(a).ok_or_else(|| format!("unknown hash algorithm '{a}'"))?, r, false)
        } else if let Some((a, r)) = s.split_once('-').filter(|(a, _)| Algo::parse(a).is_some()) {
            (Algo::parse(a).ok_or_else(|| format!("unknown hash algorithm '{a}'"))?, r, true)
        } else {
            (
                algo.ok_or_else(|| {
                    format!(
                        "hash '{s}' does not include a type, nor is the type otherwise known from context"
                    )
                })?,
                s,
                false,
            )
        };
        let n = algo.size();
        if rest.is_empty() && !sri {
            return Ok(Hash { algo, bytes: vec![0; n] });
        }
        let lengths = [n * 2, (n * 8).div_ceil(5), n.div_ceil(3) * 4];
        if !sri && !lengths.contains(&rest.len()) {
            return Err(format!("hash '{rest}' has wrong length for hash algorithm '{}'", algo.name()));
        }
        let bytes = if sri {
            base64::engine::general_purpose::STANDARD.decode(rest).ok().filter(|b| b.len() == n)
        } else if rest.len() == n * 2 {
            unhex(rest)
        } else if rest.len() == (n * 8).div_ceil(5) {
            nix32_decode(rest, n)
        } else if rest.len() == n.div_ceil(3) * 4 {
            base64::engine::general_purpose::STANDARD.decode(rest).ok().filter(|b| b.len() == n)
        } else {
            None
        };
        bytes
            .map(|bytes| Hash { algo, bytes })
            .ok_or_else(|| format!("invalid {} hash '{s}'", if sri { "SRI" } else { algo.name() }))
    }

    pub fn to_hex(&self) -> String {
        hex(&self.bytes)
    }

    pub fn to_nix32(&self) -> String {
        nix32_encode(&self.bytes)
    }

    pub fn to_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    pub fn to_sri(&self) -> String {
        format!("{}-{}", self.algo.name(), self.to_base64())
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// `storeDir/nix32(compress20(sha256(type:sha256:hex(inner):storeDir:name)))-name`.
pub fn make_store_path(store_dir: &str, ty: &str, inner: &[u8; 32], name: &str) -> String {
    let fp = format!("{ty}:sha256:{}:{store_dir}:{name}", hex(inner));
    let h = sha256(fp.as_bytes());
    let mut c = [0u8; 20];
    for (i, b) in h.iter().enumerate() {
        c[i % 20] ^= b;
    }
    format!("{store_dir}/{}-{name}", nix32_encode(&c))
}

/// A text object (`toFile`, `.drv`) referring to `refs`.
pub fn text_path(store_dir: &str, name: &str, contents: &[u8], refs: &[String]) -> String {
    let mut ty = String::from("text");
    let mut refs: Vec<&String> = refs.iter().collect();
    refs.sort();
    refs.dedup();
    for r in refs {
        ty.push(':');
        ty.push_str(r);
    }
    make_store_path(store_dir, &ty, &sha256(contents), name)
}

/// A fixed-output path: recursive sha256 is a `source` path, everything else goes through `fixed:out:`.
pub fn fixed_output_path(store_dir: &str, name: &str, recursive: bool, hash: &Hash) -> String {
    if recursive && hash.algo == Algo::Sha256 {
        let mut inner = [0u8; 32];
        inner.copy_from_slice(&hash.bytes);
        return make_store_path(store_dir, "source", &inner, name);
    }
    let inner = sha256(
        format!("fixed:out:{}{}:{}:", if recursive { "r:" } else { "" }, hash.algo.name(), hash.to_hex())
            .as_bytes(),
    );
    make_store_path(store_dir, "output:out", &inner, name)
}

/// Serialises the tree at `path` as a NAR into `out`; `include` filters entries below the root by absolute path.
pub fn nar(
    io: &dyn EvalIo,
    path: &str,
    include: Option<&dyn Fn(&str) -> bool>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    fn s(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
        let pad = (8 - b.len() % 8) % 8;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    fn obj(
        io: &dyn EvalIo,
        path: &str,
        include: Option<&dyn Fn(&str) -> bool>,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        s(out, b"(");
        s(out, b"type");
        match io.file_kind(path)? {
            FileKind::Regular { executable } => {
                s(out, b"regular");
                if executable {
                    s(out, b"executable");
                    s(out, b"");
                }
                s(out, b"contents");
                s(out, &io.read_file(path)?);
            }
            FileKind::Symlink => {
                s(out, b"symlink");
                s(out, b"target");
                s(out, io.read_link(path)?.as_bytes());
            }
            FileKind::Directory => {
                s(out, b"directory");
                let mut entries = io.read_dir(path)?;
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (name, _) in entries {
                    let child = format!("{}/{name}", path.trim_end_matches('/'));
                    if let Some(f) = include
                        && !f(&child)
                    {
                        continue;
                    }
                    s(out, b"entry");
                    s(out, b"(");
                    s(out, b"name");
                    s(out, name.as_bytes());
                    s(out, b"node");
                    obj(io, &child, include, out)?;
                    s(out, b")");
                }
            }
            FileKind::Unknown => {
                return Err(std::io::Error::other(format!("file '{path}' has an unsupported type")));
            }
        }
        s(out, b")");
        Ok(())
    }
    s(out, b"nix-archive-1");
    obj(io, path, include, out)
}

/// Checks a store path name as Nix does.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.len() > 211 {
        return Err(format!("name '{name}' must be no longer than 211 characters"));
    }
    if name.starts_with('.')
        && (name == "." || name == ".." || name.starts_with(".-") || name.starts_with("..-"))
    {
        return Err(format!("name '{name}' is not valid"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c))) {
        return Err(format!("invalid character '{c}' in name '{name}'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix32_matches_reference_vectors() {
        let h = Hash::parse("sha256:1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13", None)
            .unwrap();
        assert_eq!(h.to_nix32(), "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw");
        assert_eq!(nix32_decode(&h.to_nix32(), 32).unwrap(), h.bytes);
        let mut inner = [0u8; 32];
        inner.copy_from_slice(&h.bytes);
        assert_eq!(
            make_store_path("/nix/store", "source", &inner, "hello.txt"),
            "/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"
        );
        assert_eq!(
            text_path("/nix/store", "t.txt", b"hi\n", &[]),
            "/nix/store/rcl5i7k4xwa7zkij8lg4r4yxxgixdwzv-t.txt"
        );
    }
}
