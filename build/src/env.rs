//! The builder's environment and the files it finds in its build directory, as Nix makes them (`initEnv`,
//! passAsFile, `__structuredAttrs` with `.attrs.json`/`.attrs.sh`, exportReferencesGraph): computed here as data,
//! written by the caller into the build directory.
//!
//! Order of the environment: `PATH=/path-not-set`, `HOME=/homeless-shelter`, `NIX_STORE`, `NIX_BUILD_CORES`, the
//! derivation's attributes (unless structured), `NIX_BUILD_TOP`, `TMPDIR`/`TEMPDIR`/`TMP`/`TEMP`, `PWD`,
//! `NIX_OUTPUT_CHECKED` (fixed outputs), the `impureEnvVars` (fixed outputs), `NIX_LOG_FD=2`,
//! `TERM=xterm-256color`, and with structured attributes `NIX_ATTRS_JSON_FILE`/`NIX_ATTRS_SH_FILE`. Output
//! placeholders (`/<nix32 of sha256("nix-output:<name>")>`) are replaced by the output paths everywhere.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use store::{Derivation, HashAlgo, HashFormat, Store, StorePath};

use crate::error::{BuildError, Result};

/// What the builder gets besides its program.
#[derive(Debug, Default)]
pub(crate) struct BuilderEnv {
    pub vars: BTreeMap<String, String>,
    pub args: Vec<String>,
    /// Files to create in the build directory: name and contents.
    pub files: Vec<(String, Vec<u8>)>,
    pub warnings: Vec<String>,
}

/// What the environment depends on besides the derivation.
pub(crate) struct EnvContext<'a> {
    pub store: &'a Store,
    pub drv: &'a Derivation,
    /// The closure of the derivation's inputs.
    pub input_closure: &'a BTreeSet<StorePath>,
    /// The build directory as the builder sees it.
    pub build_top: &'a str,
    pub cores: usize,
    pub fixed_output: bool,
}

/// `/<nix32(sha256("nix-output:<output>"))>`: what `placeholder "out"` evaluates to.
pub fn hash_placeholder(output: &str) -> String {
    format!(
        "/{}",
        store::Hash::digest(HashAlgo::Sha256, format!("nix-output:{output}").as_bytes()).to_nix32()
    )
}

/// Replaces each output's placeholder by its path.
struct Rewrites(Vec<(String, String)>);

impl Rewrites {
    fn apply(&self, s: &str) -> String {
        let mut s = s.to_owned();
        for (from, to) in &self.0 {
            if s.contains(from.as_str()) {
                s = s.replace(from.as_str(), to);
            }
        }
        s
    }
}

/// A Boolean attribute: `"1"` in the environment, or a JSON `true` with structured attributes.
pub(crate) fn bool_attr(
    drv: &Derivation,
    structured: Option<&Map<String, Value>>,
    name: &str,
    default: bool,
) -> bool {
    match structured {
        Some(j) => j.get(name).and_then(Value::as_bool).unwrap_or(default),
        None => drv.env.get(name).map(|v| v == "1").unwrap_or(default),
    }
}

/// A list-of-strings attribute: whitespace-separated in the environment, a JSON array with structured attributes.
pub(crate) fn strings_attr(
    drv: &Derivation,
    structured: Option<&Map<String, Value>>,
    name: &str,
) -> Option<Vec<String>> {
    match structured {
        Some(j) => j
            .get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()),
        None => drv.env.get(name).map(|v| v.split_whitespace().map(str::to_owned).collect()),
    }
}

/// The attributes of a derivation with `__structuredAttrs`, parsed; `None` without.
pub(crate) fn structured_attrs(drv_path: &StorePath, drv: &Derivation) -> Result<Option<Map<String, Value>>> {
    let Some(text) = drv.env.get("__json") else { return Ok(None) };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        _ => Err(BuildError::Unsupported(format!(
            "derivation '{drv_path}' has a '__json' attribute that is not a JSON object"
        ))),
    }
}

fn shell_escape(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn is_shell_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A JSON value as a bash word, when it is a simple one.
fn simple_sh(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(shell_escape(s)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i.to_string()),
            (None, Some(f)) if f.ceil() == f => Some(format!("{}", f as i64)),
            _ => None,
        },
        Value::Null => Some("''".into()),
        Value::Bool(b) => Some(if *b { "1".into() } else { String::new() }),
        _ => None,
    }
}

/// `.attrs.sh`: one `declare` per top-level attribute that bash can hold (Nix's `writeStructuredAttrsShell`).
pub(crate) fn attrs_sh(json: &Map<String, Value>) -> String {
    let mut out = String::new();
    let mut keys: Vec<&String> = json.keys().collect();
    keys.sort();
    for key in keys {
        if !is_shell_name(key) {
            continue;
        }
        let value = &json[key];
        if let Some(s) = simple_sh(value) {
            out.push_str(&format!("declare {key}={s}\n"));
        } else if let Value::Array(items) = value {
            let words: Option<Vec<String>> = items.iter().map(simple_sh).collect();
            if let Some(words) = words {
                let body: String = words.iter().map(|w| format!("{w} ")).collect();
                out.push_str(&format!("declare -a {key}=({body})\n"));
            }
        } else if let Value::Object(m) = value {
            let mut inner: Vec<(&String, &Value)> = m.iter().collect();
            inner.sort_by(|a, b| a.0.cmp(b.0));
            let words: Option<Vec<String>> = inner
                .iter()
                .map(|(k, v)| simple_sh(v).map(|s| format!("[{}]={s} ", shell_escape(k))))
                .collect();
            if let Some(words) = words {
                out.push_str(&format!("declare -A {key}=({})\n", words.concat()));
            }
        }
    }
    out
}

/// The closure of `roots` plus the closures of the outputs of every derivation in it (Nix's `exportReferences`);
/// each root must be in the input closure.
fn export_references(cx: &EnvContext<'_>, roots: &[StorePath]) -> Result<BTreeSet<StorePath>> {
    for r in roots {
        if !cx.input_closure.contains(r) {
            return Err(BuildError::Unsupported(format!(
                "cannot export references of path '{r}' because it is not in the input closure of the derivation"
            )));
        }
    }
    let mut paths: BTreeSet<StorePath> = cx.store.closure(roots)?.into_iter().collect();
    let drvs: Vec<StorePath> = paths.iter().filter(|p| p.is_derivation()).cloned().collect();
    for d in drvs {
        let drv = cx.store.read_derivation(&d)?;
        let outs: Vec<StorePath> = drv.output_paths().map(|(_, p)| p.clone()).collect();
        let valid: Vec<StorePath> =
            outs.into_iter().filter(|p| cx.store.is_valid(p).unwrap_or(false)).collect();
        paths.extend(cx.store.closure(&valid)?);
    }
    Ok(paths)
}

/// `nix-store --register-validity` format without hashes or derivers: per path its line, an empty deriver line,
/// the number of references and each reference.
fn validity_registration(store: &Store, paths: &BTreeSet<StorePath>) -> Result<String> {
    let mut s = String::new();
    for p in paths {
        let info = store.path_info(p)?.ok_or_else(|| store::StoreError::NotValid(p.to_string()))?;
        s.push_str(&format!("{p}\n\n{}\n", info.references.len()));
        for r in &info.references {
            s.push_str(&format!("{r}\n"));
        }
    }
    Ok(s)
}

/// Path information as `nix path-info --json --closure-size` gives it, for structured exportReferencesGraph.
fn path_infos_json(store: &Store, paths: &BTreeSet<StorePath>) -> Result<Value> {
    let mut list = Vec::new();
    for p in paths {
        let info = store.path_info(p)?.ok_or_else(|| store::StoreError::NotValid(p.to_string()))?;
        let closure = store.closure(std::slice::from_ref(p))?;
        let mut closure_size = 0u64;
        for c in &closure {
            closure_size += store.path_info(c)?.map(|i| i.nar_size).unwrap_or(0);
        }
        let mut o = Map::new();
        o.insert("path".into(), json!(p.to_string()));
        o.insert("narHash".into(), json!(info.nar_hash.to_typed(HashFormat::Nix32)));
        o.insert("narSize".into(), json!(info.nar_size));
        o.insert(
            "references".into(),
            json!(info.references.iter().map(ToString::to_string).collect::<Vec<_>>()),
        );
        if let Some(ca) = &info.ca {
            o.insert("ca".into(), json!(ca.to_string()));
        }
        o.insert("closureSize".into(), json!(closure_size));
        list.push(Value::Object(o));
    }
    Ok(Value::Array(list))
}

fn parse_store_path(store: &Store, text: &str, what: &str) -> Result<StorePath> {
    store
        .store_dir()
        .parse_path_prefix(text)
        .map(|(p, _)| p)
        .map_err(|_| BuildError::Unsupported(format!("'{what}' contains a non-store path '{text}'")))
}

/// Computes the builder's environment, arguments and build-directory files.
pub(crate) fn builder_env(cx: &EnvContext<'_>, drv_path: &StorePath) -> Result<BuilderEnv> {
    let drv = cx.drv;
    let rewrites =
        Rewrites(drv.output_paths().map(|(name, path)| (hash_placeholder(name), path.to_string())).collect());
    let mut out = BuilderEnv::default();
    let vars = &mut out.vars;
    vars.insert("PATH".into(), "/path-not-set".into());
    vars.insert("HOME".into(), "/homeless-shelter".into());
    vars.insert("NIX_STORE".into(), cx.store.store_dir().to_string());
    vars.insert("NIX_BUILD_CORES".into(), cx.cores.to_string());
    let structured = structured_attrs(drv_path, drv)?;
    let top = cx.build_top;
    match &structured {
        None => {
            let pass_as_file: BTreeSet<&str> =
                drv.env.get("passAsFile").map(|v| v.split_whitespace().collect()).unwrap_or_default();
            for (k, v) in &drv.env {
                if pass_as_file.contains(k.as_str()) {
                    let name =
                        format!(".attr-{}", store::Hash::digest(HashAlgo::Sha256, k.as_bytes()).to_nix32());
                    vars.insert(format!("{k}Path"), format!("{top}/{name}"));
                    out.files.push((name, rewrites.apply(v).into_bytes()));
                } else {
                    vars.insert(k.clone(), rewrites.apply(v));
                }
            }
        }
        Some(attrs) => {
            if attrs.contains_key("passAsFile") {
                out.warnings.push(
                    "'structuredAttrs' disables the effect of the top-level attribute 'passAsFile'; because all \
                     JSON is always passed via file"
                        .into(),
                );
            }
        }
    }
    for k in ["NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"] {
        vars.insert(k.into(), top.into());
    }
    if cx.fixed_output {
        vars.insert("NIX_OUTPUT_CHECKED".into(), "1".into());
        for name in strings_attr(drv, structured.as_ref(), "impureEnvVars").unwrap_or_default() {
            let value = std::env::var(&name).unwrap_or_default();
            vars.insert(name, value);
        }
    }
    vars.insert("NIX_LOG_FD".into(), "2".into());
    vars.insert("TERM".into(), "xterm-256color".into());

    match structured {
        Some(mut attrs) => {
            let outputs: Map<String, Value> = drv
                .outputs
                .iter()
                .map(|(name, o)| {
                    let p =
                        o.path.as_ref().map(ToString::to_string).unwrap_or_else(|| hash_placeholder(name));
                    (name.clone(), Value::String(p))
                })
                .collect();
            attrs.insert("outputs".into(), Value::Object(outputs));
            if let Some(Value::Object(graphs)) = attrs.get("exportReferencesGraph").cloned() {
                for (name, value) in graphs {
                    let roots: Vec<&str> = match &value {
                        Value::String(s) => vec![s.as_str()],
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        _ => Vec::new(),
                    };
                    let roots: Vec<StorePath> = roots
                        .iter()
                        .map(|r| parse_store_path(cx.store, r, "exportReferencesGraph"))
                        .collect::<Result<_>>()?;
                    let paths = export_references(cx, &roots)?;
                    attrs.insert(name, path_infos_json(cx.store, &paths)?);
                }
            }
            let json_text = rewrites.apply(&Value::Object(attrs.clone()).to_string());
            let sh_text = rewrites.apply(&attrs_sh(&attrs));
            out.files.push((".attrs.json".into(), json_text.into_bytes()));
            out.files.push((".attrs.sh".into(), sh_text.into_bytes()));
            vars.insert("NIX_ATTRS_JSON_FILE".into(), format!("{top}/.attrs.json"));
            vars.insert("NIX_ATTRS_SH_FILE".into(), format!("{top}/.attrs.sh"));
        }
        None => {
            if let Some(spec) = drv.env.get("exportReferencesGraph") {
                let tokens: Vec<&str> = spec.split_whitespace().collect();
                if !tokens.len().is_multiple_of(2) {
                    return Err(BuildError::Unsupported(format!(
                        "odd number of tokens in 'exportReferencesGraph': '{spec}'"
                    )));
                }
                for pair in tokens.chunks(2) {
                    let (file, path) = (pair[0], pair[1]);
                    let valid_name = file.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && file.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                    if !valid_name {
                        return Err(BuildError::Unsupported(format!(
                            "invalid file name '{file}' in 'exportReferencesGraph'"
                        )));
                    }
                    let root = parse_store_path(cx.store, path, "exportReferencesGraph")?;
                    let paths = export_references(cx, std::slice::from_ref(&root))?;
                    out.files.push((file.to_owned(), validity_registration(cx.store, &paths)?.into_bytes()));
                }
            }
        }
    }
    out.args = drv.args.iter().map(|a| rewrites.apply(a)).collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_of_out() {
        // builtins.placeholder "out" in Nix.
        assert_eq!(hash_placeholder("out"), "/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9");
    }

    #[test]
    fn attrs_sh_as_nix_writes_it() {
        let j: Value = serde_json::from_str(
            r#"{"s":"it's","i":3,"f":1.5,"g":2.0,"n":null,"t":true,"b":false,"a":["x",1],"o":{"k":"v","j":2},
                "nested":[[1]],"bad-name":"x","outputs":{"out":"/nix/store/x"}}"#,
        )
        .unwrap();
        let Value::Object(m) = j else { unreachable!() };
        assert_eq!(
            attrs_sh(&m),
            "declare -a a=('x' 1 )\ndeclare b=\ndeclare g=2\ndeclare i=3\ndeclare n=''\n\
             declare -A o=(['j']=2 ['k']='v' )\ndeclare -A outputs=(['out']='/nix/store/x' )\n\
             declare s='it'\\''s'\ndeclare t=1\n"
        );
    }
}
