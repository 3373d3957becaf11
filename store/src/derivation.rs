//! Derivations as stored in `.drv` files: Nix's ATerm text (`Derive([outputs],[inputDrvs],[inputSrcs],system,
//! builder,[args],[env])`), parsed into [`Derivation`] and printed back byte for byte, plus what a builder asks of
//! one: its name, its kind of outputs (input-addressed or fixed-output with their expected hash) and the path name
//! of each output. Pure: reading the file and registering its outputs is the local store's job, evaluating into one
//! is `eval`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::hash::{Hash, HashAlgo};
use crate::store_path::{FileIngestion, StoreDir, StorePath};

/// Why a `.drv` text could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DerivationError {
    #[error("malformed derivation at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    #[error("derivation output '{output}' has an invalid path '{path}': {reason}")]
    BadOutputPath { output: String, path: String, reason: String },
    #[error("derivation output '{output}' has an invalid hash '{hash_algo}:{hash}'")]
    BadOutputHash { output: String, hash_algo: String, hash: String },
}

/// One output of a derivation: its path (absent for floating content-addressed outputs) and, for fixed-output
/// derivations, the expected hash (`hash_algo` is `sha256`, `r:sha256`, `text:sha256`, …; `hash` is base-16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivationOutput {
    pub path: Option<StorePath>,
    pub hash_algo: String,
    pub hash: String,
}

/// How a fixed output is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputHashMode {
    /// The file's contents (`outputHashMode = "flat"`).
    Flat,
    /// The NAR serialisation (`outputHashMode = "recursive"`).
    Recursive,
    /// The file's contents, as a text object (`outputHashMode = "text"`).
    Text,
}

impl OutputHashMode {
    /// The matching way of adding a file, for content addresses (text is flat).
    pub fn ingestion(self) -> FileIngestion {
        match self {
            OutputHashMode::Recursive => FileIngestion::Recursive,
            OutputHashMode::Flat | OutputHashMode::Text => FileIngestion::Flat,
        }
    }
}

/// What a fixed output must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedOutputHash {
    pub mode: OutputHashMode,
    pub hash: Hash,
}

impl DerivationOutput {
    /// The expected hash of a fixed output; `None` for input-addressed and floating outputs.
    pub fn fixed_hash(&self, name: &str) -> Result<Option<FixedOutputHash>, DerivationError> {
        if self.hash.is_empty() {
            return Ok(None);
        }
        let bad = || DerivationError::BadOutputHash {
            output: name.to_owned(),
            hash_algo: self.hash_algo.clone(),
            hash: self.hash.clone(),
        };
        let (mode, algo) = if let Some(a) = self.hash_algo.strip_prefix("r:") {
            (OutputHashMode::Recursive, a)
        } else if let Some(a) = self.hash_algo.strip_prefix("text:") {
            (OutputHashMode::Text, a)
        } else {
            (OutputHashMode::Flat, self.hash_algo.as_str())
        };
        let algo = HashAlgo::parse(algo).map_err(|_| bad())?;
        let hash = Hash::parse_bare(algo, &self.hash).map_err(|_| bad())?;
        Ok(Some(FixedOutputHash { mode, hash }))
    }
}

/// A parsed `.drv` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// Output name → output, sorted by name.
    pub outputs: BTreeMap<String, DerivationOutput>,
    /// Derivations whose outputs this one uses, with the output names it uses.
    pub input_drvs: BTreeMap<StorePath, BTreeSet<String>>,
    /// Store paths (sources) this one uses.
    pub input_srcs: BTreeSet<StorePath>,
    /// The system it builds on (`x86_64-linux`, or `builtin` for builtin builders).
    pub platform: String,
    /// The program run, or `builtin:<name>`.
    pub builder: String,
    pub args: Vec<String>,
    /// The builder's environment as the evaluator wrote it (before structured attrs and passAsFile).
    pub env: BTreeMap<String, String>,
}

impl Derivation {
    /// Parses `.drv` text whose paths belong to `store_dir`.
    pub fn parse(text: &str, store_dir: &StoreDir) -> Result<Derivation, DerivationError> {
        let mut p = Parser { text: text.as_bytes(), pos: 0 };
        p.expect("Derive(")?;
        let mut outputs = BTreeMap::new();
        p.list(|p| {
            p.expect("(")?;
            let name = p.string()?;
            p.expect(",")?;
            let path = p.string()?;
            p.expect(",")?;
            let hash_algo = p.string()?;
            p.expect(",")?;
            let hash = p.string()?;
            p.expect(")")?;
            let path = if path.is_empty() {
                None
            } else {
                Some(store_dir.parse_path(&path).map_err(|e| DerivationError::BadOutputPath {
                    output: name.clone(),
                    path: path.clone(),
                    reason: e.to_string(),
                })?)
            };
            outputs.insert(name, DerivationOutput { path, hash_algo, hash });
            Ok(())
        })?;
        p.expect(",")?;
        let mut input_drvs = BTreeMap::new();
        p.list(|p| {
            p.expect("(")?;
            let at = p.pos;
            let path = p.path(store_dir, at)?;
            p.expect(",")?;
            let mut outs = BTreeSet::new();
            p.list(|p| {
                outs.insert(p.string()?);
                Ok(())
            })?;
            p.expect(")")?;
            input_drvs.insert(path, outs);
            Ok(())
        })?;
        p.expect(",")?;
        let mut input_srcs = BTreeSet::new();
        p.list(|p| {
            let at = p.pos;
            input_srcs.insert(p.path(store_dir, at)?);
            Ok(())
        })?;
        p.expect(",")?;
        let platform = p.string()?;
        p.expect(",")?;
        let builder = p.string()?;
        p.expect(",")?;
        let mut args = Vec::new();
        p.list(|p| {
            args.push(p.string()?);
            Ok(())
        })?;
        p.expect(",")?;
        let mut env = BTreeMap::new();
        p.list(|p| {
            p.expect("(")?;
            let k = p.string()?;
            p.expect(",")?;
            let v = p.string()?;
            p.expect(")")?;
            env.insert(k, v);
            Ok(())
        })?;
        p.expect(")")?;
        if p.pos != p.text.len() {
            return Err(p.err("trailing data after the derivation"));
        }
        Ok(Derivation { outputs, input_drvs, input_srcs, platform, builder, args, env })
    }

    /// The ATerm text, exactly as Nix writes it.
    pub fn to_aterm(&self) -> String {
        let out_paths: Vec<String> = self
            .outputs
            .values()
            .map(|o| o.path.as_ref().map(ToString::to_string).unwrap_or_default())
            .collect();
        let drv_paths: Vec<String> = self.input_drvs.keys().map(ToString::to_string).collect();
        let srcs: Vec<String> = self.input_srcs.iter().map(ToString::to_string).collect();
        AtermParts {
            outputs: self
                .outputs
                .iter()
                .zip(&out_paths)
                .map(|((name, o), path)| {
                    (name.as_str(), path.as_str(), o.hash_algo.as_str(), o.hash.as_str())
                })
                .collect(),
            input_drvs: drv_paths.iter().map(String::as_str).zip(self.input_drvs.values()).collect(),
            input_srcs: srcs.iter().map(String::as_str).collect(),
            platform: &self.platform,
            builder: &self.builder,
            args: &self.args,
            env: &self.env,
        }
        .to_aterm()
    }

    /// The derivation's `name` attribute (empty if missing).
    pub fn name(&self) -> &str {
        self.env.get("name").map(String::as_str).unwrap_or("")
    }

    /// Returns true if and only if this is a fixed-output derivation: one output, `out`, with a hash.
    pub fn is_fixed_output(&self) -> bool {
        self.outputs.len() == 1 && self.outputs.get("out").is_some_and(|o| !o.hash.is_empty())
    }

    /// The output paths known statically (every output of input-addressed and fixed-output derivations).
    pub fn output_paths(&self) -> impl Iterator<Item = (&str, &StorePath)> {
        self.outputs.iter().filter_map(|(n, o)| o.path.as_ref().map(|p| (n.as_str(), p)))
    }

    /// Returns true if and only if the derivation passes its attributes as JSON (`__structuredAttrs`).
    pub fn has_structured_attrs(&self) -> bool {
        self.env.contains_key("__json")
    }
}

/// The name of an output's store path: the derivation's name for `out`, `<name>-<output>` otherwise.
pub fn output_path_name(drv_name: &str, output: &str) -> String {
    if output == "out" { drv_name.to_owned() } else { format!("{drv_name}-{output}") }
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_aterm())
    }
}

/// A derivation as the strings its ATerm holds, for writers whose derivations are not (yet) made of store paths:
/// the evaluator prints one with empty output paths, and one with derivation hashes in place of input paths
/// (hashDerivationModulo). Every list must already be in the order Nix writes (outputs, input derivations and
/// sources sorted, as `BTreeMap`/`BTreeSet` keep them).
#[derive(Debug)]
pub struct AtermParts<'a> {
    /// (output name, path or "", hash algorithm or "", hash or "").
    pub outputs: Vec<(&'a str, &'a str, &'a str, &'a str)>,
    /// (input derivation or its hash, the outputs used).
    pub input_drvs: Vec<(&'a str, &'a BTreeSet<String>)>,
    pub input_srcs: Vec<&'a str>,
    pub platform: &'a str,
    pub builder: &'a str,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
}

impl AtermParts<'_> {
    /// `Derive([outputs],[inputDrvs],[inputSrcs],system,builder,[args],[env])`, byte for byte as Nix writes it.
    pub fn to_aterm(&self) -> String {
        let mut o = String::from("Derive(");
        list(&mut o, &self.outputs, |o, (name, path, algo, hash)| {
            o.push('(');
            aterm_str(o, name);
            o.push(',');
            aterm_str(o, path);
            o.push(',');
            aterm_str(o, algo);
            o.push(',');
            aterm_str(o, hash);
            o.push(')');
        });
        o.push(',');
        list(&mut o, &self.input_drvs, |o, (p, outs)| {
            o.push('(');
            aterm_str(o, p);
            o.push(',');
            list(o, *outs, |o, x| aterm_str(o, x));
            o.push(')');
        });
        o.push(',');
        list(&mut o, &self.input_srcs, |o, x| aterm_str(o, x));
        o.push(',');
        aterm_str(&mut o, self.platform);
        o.push(',');
        aterm_str(&mut o, self.builder);
        o.push(',');
        list(&mut o, self.args, |o, x| aterm_str(o, x));
        o.push(',');
        list(&mut o, self.env, |o, (k, v)| {
            o.push('(');
            aterm_str(o, k);
            o.push(',');
            aterm_str(o, v);
            o.push(')');
        });
        o.push(')');
        o
    }
}

fn aterm_str(out: &mut String, s: &str) {
    // Runs without a character to escape are copied whole: a derivation's environment is mostly long plain strings
    // (scripts, flags), and pushing them a character at a time was a twentieth of instantiating nixpkgs. The
    // escaped characters are ASCII, so every cut falls on a character boundary.
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(escaped);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn list<T>(out: &mut String, items: impl IntoIterator<Item = T>, mut f: impl FnMut(&mut String, T)) {
    out.push('[');
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, x);
    }
    out.push(']');
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &str) -> DerivationError {
        DerivationError::Malformed { offset: self.pos, reason: reason.to_owned() }
    }

    fn expect(&mut self, lit: &str) -> Result<(), DerivationError> {
        if self.text[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.err(&format!("expected '{lit}'")))
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    /// `[item,item,…]`
    fn list(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), DerivationError>,
    ) -> Result<(), DerivationError> {
        self.expect("[")?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn string(&mut self) -> Result<String, DerivationError> {
        self.expect("\"")?;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else { return Err(self.err("unterminated string")) };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else { return Err(self.err("unterminated string")) };
                    self.pos += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not valid UTF-8"))
    }

    fn path(&mut self, store_dir: &StoreDir, at: usize) -> Result<StorePath, DerivationError> {
        let s = self.string()?;
        store_dir.parse_path(&s).map_err(|e| DerivationError::Malformed { offset: at, reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIV: &str = r#"Derive([("out","/nix/store/hxcnl7nh8wbfiwfzkfnac84cgnf766kc-triv","","")],[],[],"x86_64-linux","/bin/sh",["-c","echo hello > $out"],[("builder","/bin/sh"),("name","triv"),("out","/nix/store/hxcnl7nh8wbfiwfzkfnac84cgnf766kc-triv"),("system","x86_64-linux")])"#;

    fn dir() -> StoreDir {
        StoreDir::new("/nix/store").unwrap()
    }

    #[test]
    fn round_trip() {
        let d = Derivation::parse(TRIV, &dir()).unwrap();
        assert_eq!(d.name(), "triv");
        assert_eq!(d.builder, "/bin/sh");
        assert_eq!(d.args, ["-c", "echo hello > $out"]);
        assert!(!d.is_fixed_output());
        assert_eq!(d.to_aterm(), TRIV);
    }

    #[test]
    fn escapes_and_inputs() {
        let text = r#"Derive([("dev","/nix/store/nnksgdm1w8qp70nh4ivl49w93cxr3yxb-b-dev","",""),("out","/nix/store/ggbqg8lqjwj75wznkv03h0x2bjr2in0j-b","","")],[("/nix/store/h0qbcsrbkqal9nx8hv3gcvz3bcv3gq6s-a.drv",["dev","out"])],["/nix/store/i9pmrzmpshapij2kin22pff6fc2adavx-hello.txt"],"x86_64-linux","/bin/sh",["-c","a\"b\\c\nd\te\r"],[("name","b")])"#;
        let d = Derivation::parse(text, &dir()).unwrap();
        assert_eq!(d.args[1], "a\"b\\c\nd\te\r");
        assert_eq!(d.input_drvs.values().next().unwrap().len(), 2);
        assert_eq!(d.to_aterm(), text);
        assert_eq!(output_path_name("b", "dev"), "b-dev");
    }

    #[test]
    fn strings_escape_around_multibyte_text() {
        let mut o = String::new();
        aterm_str(&mut o, "ü\"€\\x\n");
        assert_eq!(o, "\"ü\\\"€\\\\x\\n\"");
        o.clear();
        aterm_str(&mut o, "");
        assert_eq!(o, "\"\"");
    }

    #[test]
    fn fixed_output() {
        let text = r#"Derive([("out","/nix/store/gy454w1cxaq731grqwylhzf4pp9r5izh-hello.txt","sha256","5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")],[],[],"builtin","builtin:fetchurl",[],[("name","hello.txt")])"#;
        let d = Derivation::parse(text, &dir()).unwrap();
        assert!(d.is_fixed_output());
        let f = d.outputs["out"].fixed_hash("out").unwrap().unwrap();
        assert_eq!(f.mode, OutputHashMode::Flat);
        assert_eq!(f.hash.algo(), HashAlgo::Sha256);
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "Derive(",
            "Derive([],[],[],\"x\",\"b\",[],[])x",
            "Derive([(\"out\",\"/tmp/x\",\"\",\"\")],[],[],\"\",\"\",[],[])",
        ] {
            assert!(Derivation::parse(bad, &dir()).is_err(), "{bad}");
        }
    }
}
