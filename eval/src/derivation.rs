//! `derivationStrict`: turns a derivation's attributes into a `.drv` (ATerm), computes output paths with
//! hashDerivationModulo and the `.drv` path as a text object, exactly as Nix does, and writes the `.drv` through
//! `EvalIo` unless the evaluation is read-only (`--eval`).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::error::{EvalError, Result};
use crate::eval::{Coerce, Evaluator};
use crate::formats;
use crate::source::Pos;
use crate::sym::Sym;
use crate::value::{Attr, Attrs, Context, NixStr, Value};

#[derive(Clone, Debug, Default)]
pub struct Output {
    pub path: String,
    pub hash_algo: String,
    pub hash: String,
}

/// A derivation as stored in a `.drv` file.
#[derive(Clone, Debug, Default)]
pub struct Derivation {
    pub outputs: BTreeMap<String, Output>,
    pub input_drvs: BTreeMap<String, BTreeSet<String>>,
    pub input_srcs: BTreeSet<String>,
    pub system: String,
    pub builder: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl Derivation {
    /// The ATerm text (written by `store`'s ATerm writer); `input_drvs` may be replaced (hashDerivationModulo
    /// substitutes hashes for paths).
    pub fn aterm(&self, input_drvs: &BTreeMap<String, BTreeSet<String>>) -> String {
        store::derivation::AtermParts {
            outputs: self
                .outputs
                .iter()
                .map(|(n, o)| (n.as_str(), o.path.as_str(), o.hash_algo.as_str(), o.hash.as_str()))
                .collect(),
            input_drvs: input_drvs.iter().map(|(p, outs)| (p.as_str(), outs)).collect(),
            input_srcs: self.input_srcs.iter().map(String::as_str).collect(),
            platform: &self.system,
            builder: &self.builder,
            args: &self.args,
            env: &self.env,
        }
        .to_aterm()
    }

    fn fixed_output(&self) -> Option<&Output> {
        match self.outputs.get("out") {
            Some(o) if self.outputs.len() == 1 && !o.hash.is_empty() => Some(o),
            _ => None,
        }
    }
}

/// hashDerivationModulo: fixed-output derivations hash to their output; others hash their ATerm with each input
/// derivation replaced by its own modulo hash.
pub fn hash_modulo(ev: &Evaluator, drv: &Derivation, pos: Pos) -> Result<[u8; 32]> {
    if let Some(o) = drv.fixed_output() {
        return Ok(formats::sha256(format!("fixed:out:{}:{}:{}", o.hash_algo, o.hash, o.path).as_bytes()));
    }
    let mut replaced = BTreeMap::new();
    for (p, outs) in &drv.input_drvs {
        let h = ev.drv_hashes.get(p).ok_or_else(|| {
            EvalError::eval(format!("derivation '{p}' is not known to this evaluation"), pos)
        })?;
        replaced.insert(formats::hex(h), outs.clone());
    }
    Ok(formats::sha256(drv.aterm(&replaced).as_bytes()))
}

fn output_path_name(name: &str, output: &str) -> String {
    if output == "out" { name.to_string() } else { format!("{name}-{output}") }
}

/// `builtins.derivationStrict`.
pub fn derivation_strict(ev: &mut Evaluator, args: &[Value], pos: Pos) -> Result<Value> {
    let attrs = ev.force_attrs(&args[0], pos)?;
    let name_v =
        attrs.get_str("name").cloned().ok_or_else(|| EvalError::eval("attribute 'name' missing", pos))?;
    let name = ev
        .force_str(&name_v, pos)
        .map_err(|e| e.add_trace(pos, "while evaluating the 'name' attribute of a derivation"))?;
    let trace = |e: EvalError| {
        e.add_trace(pos, format!("while evaluating the derivation attribute 'name' = \"{name}\""))
    };
    formats::check_name(&name).map_err(|m| EvalError::eval(format!("invalid derivation name: {m}"), pos))?;
    if name.ends_with(".drv") {
        return Err(EvalError::eval("derivation names are not allowed to end in '.drv'", pos));
    }
    let structured = match attrs.get_str("__structuredAttrs") {
        Some(v) => ev.force_bool(&v.clone(), pos)?,
        None => false,
    };
    let ignore_nulls = match attrs.get_str("__ignoreNulls") {
        Some(v) => ev.force_bool(&v.clone(), pos)?,
        None => false,
    };
    let mut drv = Derivation::default();
    let mut ctx = Context::new();
    let mut output_names: Vec<String> = vec!["out".to_string()];
    let mut output_hash: Option<String> = None;
    let mut output_hash_algo: Option<String> = None;
    let mut output_hash_mode: Option<String> = None;
    let mut json: Vec<(String, String)> = Vec::new();
    let mut outputs_seen = false;

    for attr in &attrs.entries {
        let key = attr.name.as_str();
        if key == "__ignoreNulls" || (structured && key == "__structuredAttrs") {
            continue;
        }
        let v = ev.force(&attr.value).map_err(trace)?;
        if ignore_nulls && matches!(v, Value::Null) {
            continue;
        }
        let attr_trace = |e: EvalError| {
            e.add_trace(attr.pos, format!("while evaluating attribute '{key}' of derivation '{name}'"))
        };
        if key == "__contentAddressed" || key == "__impure" {
            return Err(EvalError::eval(
                format!(
                    "the derivation attribute '{key}' needs an experimental feature that is not supported"
                ),
                pos,
            ));
        }
        if key == "args" && !structured {
            let l = ev.force_list(&v, pos).map_err(attr_trace)?;
            for x in l.iter() {
                let s = ev.coerce_to_string(x, pos, Coerce { more: true, copy: true }).map_err(attr_trace)?;
                merge_ctx(&mut ctx, &s);
                drv.args.push(s.s);
            }
            continue;
        }
        if structured {
            let mut jctx = Context::new();
            let j = crate::builtins::json::to_json(ev, &v, pos, &mut jctx, true).map_err(attr_trace)?;
            ctx.extend(jctx);
            match key {
                "builder" | "system" | "outputHash" | "outputHashAlgo" | "outputHashMode" => {
                    let s = ev.force_str(&v, pos).map_err(attr_trace)?;
                    set_special(
                        &mut drv,
                        key,
                        s,
                        &mut output_hash,
                        &mut output_hash_algo,
                        &mut output_hash_mode,
                    );
                }
                "args" => {
                    let l = ev.force_list(&v, pos).map_err(attr_trace)?;
                    for x in l.iter() {
                        let s = ev.coerce_to_string(x, pos, Coerce { more: true, copy: true })?;
                        merge_ctx(&mut ctx, &s);
                        drv.args.push(s.s);
                    }
                }
                "outputs" => {
                    let l = ev.force_list(&v, pos).map_err(attr_trace)?;
                    output_names.clear();
                    for x in l.iter() {
                        output_names.push(ev.force_str(x, pos)?);
                    }
                    outputs_seen = true;
                }
                _ => {}
            }
            json.push((key.to_string(), j));
            continue;
        }
        if key == "outputs" {
            let l = ev.force_list(&v, pos).map_err(attr_trace)?;
            output_names.clear();
            let mut strs = Vec::new();
            for x in l.iter() {
                let s = ev.coerce_to_string(x, pos, Coerce { more: true, copy: true })?;
                strs.push(s.s.clone());
                output_names.push(s.s);
            }
            outputs_seen = true;
            drv.env.insert(key.to_string(), strs.join(" "));
            continue;
        }
        let s = ev.coerce_to_string(&v, pos, Coerce { more: true, copy: true }).map_err(attr_trace)?;
        merge_ctx(&mut ctx, &s);
        set_special(
            &mut drv,
            key,
            s.s.clone(),
            &mut output_hash,
            &mut output_hash_algo,
            &mut output_hash_mode,
        );
        drv.env.insert(key.to_string(), s.s);
    }
    let _ = outputs_seen;
    if structured {
        let body: Vec<String> =
            json.iter().map(|(k, v)| format!("{}:{v}", crate::builtins::json::json_string(k))).collect();
        drv.env.insert("__json".to_string(), format!("{{{}}}", body.join(",")));
    }
    if drv.builder.is_empty() && !attrs.entries.iter().any(|a| a.name.as_str() == "builder") {
        return Err(EvalError::eval("required attribute 'builder' missing", pos)
            .add_trace(pos, format!("while evaluating derivation '{name}'")));
    }
    if drv.system.is_empty() && !attrs.entries.iter().any(|a| a.name.as_str() == "system") {
        return Err(EvalError::eval("required attribute 'system' missing", pos)
            .add_trace(pos, format!("while evaluating derivation '{name}'")));
    }
    if output_names.is_empty() {
        return Err(EvalError::eval("derivation cannot have an empty set of outputs", pos));
    }
    let mut seen = BTreeSet::new();
    for o in &output_names {
        // `drvPath` would clash with the attribute of that name in the derivation's result.
        if o == "drv" || o == "drvPath" || formats::check_name(o).is_err() {
            return Err(EvalError::eval(format!("invalid derivation output name '{o}'"), pos));
        }
        if !seen.insert(o.clone()) {
            return Err(EvalError::eval(format!("duplicate derivation output '{o}'"), pos));
        }
    }

    for c in &ctx {
        if let Some(rest) = c.strip_prefix('=') {
            // A `drvPath` (the whole derivation): as Nix, every path in the closure of the `.drv` is an input
            // source, and every `.drv` in it an input derivation with all its outputs.
            for path in store_closure(ev, rest) {
                if path.ends_with(".drv") {
                    let outs = drv_output_names(ev, &path, pos)?;
                    drv.input_drvs.entry(path.clone()).or_default().extend(outs.iter().cloned());
                }
                drv.input_srcs.insert(path);
            }
        } else if let Some(rest) = c.strip_prefix('!') {
            let (out, path) = rest.split_once('!').unwrap_or(("out", rest));
            drv.input_drvs.entry(path.to_string()).or_default().insert(out.to_string());
        } else {
            drv.input_srcs.insert(c.clone());
        }
    }

    let store_dir = ev.settings.store_dir.clone();
    if let Some(h) = &output_hash {
        if output_names != ["out"] {
            return Err(EvalError::eval(
                "multiple outputs are not supported in fixed-output derivations",
                pos,
            ));
        }
        let algo = match output_hash_algo.as_deref() {
            None | Some("") => None,
            Some(a) => Some(
                formats::parse_algo(a)
                    .ok_or_else(|| EvalError::eval(format!("unknown hash algorithm '{a}'"), pos))?,
            ),
        };
        let hash = formats::parse_hash(h, algo).map_err(|m| EvalError::eval(m, pos))?;
        let recursive = match output_hash_mode.as_deref() {
            None | Some("flat") | Some("") => false,
            Some("recursive") | Some("nar") => true,
            Some(m) => {
                return Err(EvalError::eval(
                    format!("invalid value '{m}' for 'outputHashMode' attribute"),
                    pos,
                ));
            }
        };
        let path = formats::fixed_output_path(&store_dir, &name, recursive, &hash)
            .map_err(|m| EvalError::eval(m, pos))?;
        drv.env.insert("out".to_string(), path.clone());
        drv.outputs.insert(
            "out".to_string(),
            Output {
                path,
                hash_algo: format!("{}{}", if recursive { "r:" } else { "" }, hash.algo().name()),
                hash: hash.to_hex(),
            },
        );
    } else {
        for o in &output_names {
            drv.env.insert(o.clone(), String::new());
            drv.outputs.insert(o.clone(), Output::default());
        }
        let h = hash_modulo(ev, &drv, pos)?;
        for o in &output_names {
            let path =
                formats::make_store_path(&store_dir, &format!("output:{o}"), &h, &output_path_name(&name, o))
                    .map_err(|m| EvalError::eval(m, pos))?;
            drv.env.insert(o.clone(), path.clone());
            if let Some(out) = drv.outputs.get_mut(o) {
                out.path = path;
            }
        }
    }

    let aterm = drv.aterm(&drv.input_drvs);
    let mut refs: Vec<String> = drv.input_srcs.iter().cloned().collect();
    refs.extend(drv.input_drvs.keys().cloned());
    let drv_path = formats::text_path(&store_dir, &format!("{name}.drv"), aterm.as_bytes(), &refs)
        .map_err(|m| EvalError::eval(m, pos))?;
    if !ev.settings.read_only {
        let object = crate::io::StoreObject::Text { contents: aterm.as_bytes(), references: &refs };
        ev.io.add_to_store(&drv_path, object).map_err(|e| {
            EvalError::new(crate::error::ErrorKind::Io, format!("writing derivation '{drv_path}': {e}"), pos)
        })?;
    }
    let full_hash = hash_modulo(ev, &drv, pos)?;
    ev.drv_hashes.insert(drv_path.clone(), full_hash);

    let mut entries = Vec::new();
    let mut dctx = Context::new();
    dctx.insert(format!("={drv_path}"));
    entries.push(Attr {
        name: Sym::new("drvPath"),
        value: Value::String(Rc::new(NixStr::with_ctx(drv_path.clone(), dctx))),
        pos: Pos::none(),
    });
    for (o, out) in &drv.outputs {
        let mut c = Context::new();
        c.insert(format!("!{o}!{drv_path}"));
        entries.push(Attr {
            name: Sym::new(o),
            value: Value::String(Rc::new(NixStr::with_ctx(out.path.clone(), c))),
            pos: Pos::none(),
        });
    }
    ev.drv_outputs.insert(drv_path.clone(), drv.outputs.keys().cloned().collect());
    ev.store_refs.insert(drv_path, refs.into());
    Ok(Value::attrs(Attrs::from_unsorted(entries)))
}

/// The closure of a store path under references: those of the objects this evaluation made, else what the
/// store records.
fn store_closure(ev: &mut Evaluator, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.to_string()];
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        let refs: Vec<String> = match ev.store_refs.get(&p) {
            Some(r) => r.to_vec(),
            None => ev.io.query_references(&p).unwrap_or_default(),
        };
        todo.extend(refs.into_iter().filter(|r| !seen.contains(r)));
    }
    seen
}

/// The output names of a `.drv`: known if this evaluation made it, else read from its ATerm in the store.
fn drv_output_names(ev: &mut Evaluator, drv_path: &str, pos: Pos) -> Result<Rc<[String]>> {
    if let Some(o) = ev.drv_outputs.get(drv_path) {
        return Ok(o.clone());
    }
    let text = ev.io.read_file(drv_path).map_err(|e| {
        EvalError::new(crate::error::ErrorKind::Io, format!("reading derivation '{drv_path}': {e}"), pos)
    })?;
    let names: Rc<[String]> = aterm_output_names(&String::from_utf8_lossy(&text))
        .ok_or_else(|| EvalError::eval(format!("'{drv_path}' is not a valid derivation"), pos))?
        .into();
    ev.drv_outputs.insert(drv_path.to_string(), names.clone());
    Ok(names)
}

/// The output names of a derivation's ATerm (`Derive([("out","/nix/store/…","",""),…],…)`).
fn aterm_output_names(text: &str) -> Option<Vec<String>> {
    let mut rest = text.strip_prefix("Derive([")?;
    let mut names = Vec::new();
    while let Some(r) = rest.strip_prefix('(') {
        // The output tuple is four strings; its first is the name.
        let mut fields = Vec::new();
        let mut r = r;
        for i in 0..4 {
            let (s, after) = aterm_string(r)?;
            fields.push(s);
            r = if i < 3 { after.strip_prefix(',')? } else { after.strip_prefix(')')? };
        }
        names.push(fields.swap_remove(0));
        rest = r.strip_prefix(',').unwrap_or(r);
        if rest.starts_with(']') {
            break;
        }
    }
    Some(names)
}

/// One ATerm string literal at the start of `s`, unescaped, and what follows it.
fn aterm_string(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                o => out.push(o),
            },
            c => out.push(c),
        }
    }
    None
}

fn set_special(
    drv: &mut Derivation,
    key: &str,
    s: String,
    hash: &mut Option<String>,
    algo: &mut Option<String>,
    mode: &mut Option<String>,
) {
    match key {
        "builder" => drv.builder = s,
        "system" => drv.system = s,
        "outputHash" => *hash = Some(s),
        "outputHashAlgo" => *algo = Some(s),
        "outputHashMode" => *mode = Some(s),
        _ => {}
    }
}

fn merge_ctx(ctx: &mut Context, s: &NixStr) {
    if let Some(c) = &s.ctx {
        ctx.extend(c.iter().cloned());
    }
}

/// The `derivation` function, written in Nix on top of `derivationStrict` as Nix itself does.
pub const DERIVATION_NIX: &str = r#"
drvAttrs@{ outputs ? [ "out" ], ... }:
let
  strict = builtins.derivationStrict drvAttrs;
  commonAttrs = drvAttrs // (builtins.listToAttrs outputsList) // {
    all = map (x: x.value) outputsList;
    inherit drvAttrs;
  };
  outputToAttrListElement = outputName: {
    name = outputName;
    value = commonAttrs // {
      outPath = builtins.getAttr outputName strict;
      drvPath = strict.drvPath;
      type = "derivation";
      inherit outputName;
    };
  };
  outputsList = map outputToAttrListElement outputs;
in (builtins.head outputsList).value
"#;
