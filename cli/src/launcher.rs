//! Shell-script launchers (`#!`): which ELF file a script starts, which interpreter it needs and which commands it
//! calls, so `fhskit run ./launcher.sh` can analyse the program behind it and give the FHS env what the script uses.
//!
//! Scripts are read, never run. The reader understands the idioms launchers use to find their program: variables
//! assigned from literals and from the script's own location (`HERE=$(dirname "$(readlink -f "$0")")`,
//! `${0%/*}`), expanded in later words (`exec "$HERE/bin/app" "$@"`, `exec $LIBDIR/$APPNAME`); a word after `exec`
//! wins over other words. A script inside an unpacked package tree (`ROOT/usr/bin/app`) that names an absolute
//! FHS path (`/usr/lib/app/app`) means that path inside `ROOT`, the [`package_root`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The most a launcher chain is followed (a script starting a script starting the ELF file).
const MAX_DEPTH: usize = 4;

/// A launcher script on the way to the program.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub script: PathBuf,
    /// The `#!` line after `#!`: the interpreter and its argument (`/bin/sh`, `/usr/bin/env bash`).
    pub interpreter: String,
    /// Commands the script calls by name (`grep`, `uname`), shell builtins and its own functions excluded.
    pub commands: BTreeSet<String>,
}

impl Launcher {
    /// The interpreter's path and, for `env NAME`, the command it starts.
    pub fn interpreter_needs(&self) -> (Option<String>, Option<String>) {
        let mut words = self.interpreter.split_whitespace();
        let path = words.next().map(str::to_owned);
        let command = match &path {
            Some(p) if p.ends_with("/env") => words.find(|w| !w.starts_with('-')).map(str::to_owned),
            _ => None,
        };
        (path, command)
    }
}

/// The root of the unpacked package tree a file lies in (`ROOT/usr/bin/x`, `ROOT/opt/app/x` → `ROOT`); `None` for
/// files of the running system (`/usr/bin/x`) or outside such a layout.
pub fn package_root(path: &Path) -> Option<PathBuf> {
    let comps: Vec<_> = path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let name = c.as_os_str();
        let next = comps.get(i + 1).map(|n| n.as_os_str());
        let fhs = (name == "usr"
            && next.is_some_and(|n| {
                ["bin", "sbin", "games", "lib", "lib64", "libexec", "share"].iter().any(|d| n == *d)
            }))
            || (name == "opt" && next.is_some());
        if fhs && i > 1 {
            let root: PathBuf = comps[..i].iter().collect();
            return Some(root);
        }
    }
    None
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = Vec::new();
    f.by_ref()
        .take(256 * 1024)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(buf)
}

/// Follows `#!` scripts from `target` to the ELF file they start. Returns that file and the scripts passed.
pub fn follow(target: &Path) -> Result<(PathBuf, Vec<Launcher>)> {
    let mut current = target.to_path_buf();
    let mut chain = Vec::new();
    for _ in 0..MAX_DEPTH {
        let head = read_head(&current)?;
        if !head.starts_with(b"#!") {
            return Ok((current, chain));
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let interpreter = text.lines().next().unwrap_or("").trim_start_matches("#!").trim().to_owned();
        let script = Script::read(&text, &current);
        let Some(next) = script.target() else {
            bail!(
                "{} is a script ({interpreter}) that starts no ELF file fhskit can find; run the program it starts instead",
                current.display()
            );
        };
        chain.push(Launcher { script: current.clone(), interpreter, commands: script.commands });
        current = next;
    }
    bail!("{}: launcher scripts nest more than {MAX_DEPTH} deep", target.display())
}

/// Shell words that are not commands.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "until", "case", "esac",
    "function", "select", "time", "!", "{", "}", "[[", "]]", "exec", "command", "builtin", "nohup", "env",
];
/// Builtins of POSIX shells and bash.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "break",
    "cd",
    "continue",
    "declare",
    "echo",
    "eval",
    "exit",
    "export",
    "false",
    "fg",
    "getopts",
    "hash",
    "jobs",
    "kill",
    "let",
    "local",
    "printf",
    "pwd",
    "read",
    "readonly",
    "return",
    "set",
    "shift",
    "source",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
    "shopt",
    "pushd",
    "popd",
    "dirs",
    "mapfile",
    "readarray",
    "caller",
    "enable",
    "complete",
    "compgen",
];

struct Script {
    path: PathBuf,
    dir: PathBuf,
    root: Option<PathBuf>,
    vars: BTreeMap<String, String>,
    /// Candidate program paths, in order, with whether `exec` preceded them.
    candidates: Vec<(bool, String)>,
    commands: BTreeSet<String>,
}

impl Script {
    fn read(text: &str, path: &Path) -> Script {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut s = Script {
            path: canonical.clone(),
            dir,
            root: package_root(&canonical),
            vars: BTreeMap::new(),
            candidates: Vec::new(),
            commands: BTreeSet::new(),
        };
        let mut functions = BTreeSet::new();
        let joined = text.replace("\\\n", " ");
        for line in joined.lines().skip(1) {
            let line = strip_comment(line.trim());
            if line.is_empty() {
                continue;
            }
            if let Some(name) = function_name(line) {
                functions.insert(name);
            }
            s.line(line);
        }
        s.commands.retain(|c| !functions.contains(c));
        s
    }

    fn line(&mut self, line: &str) {
        // Statements: split on the separators that start a new command; the text of a command substitution is a
        // command too (read after the statement holding it, which keeps it as part of a word).
        let mut statements = vec![String::new()];
        let mut inner_commands = Vec::new();
        let mut quote: Option<char> = None;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '$' && chars.get(i + 1) == Some(&'(') && quote != Some('\'') {
                let close = find_close(&chars, i + 1);
                let inner: String = chars[(i + 2).min(close)..close].iter().collect();
                statements.last_mut().unwrap().push_str(&format!("$({inner})"));
                inner_commands.push(inner);
                i = close + 1;
                continue;
            }
            match (quote, c) {
                (Some(q), c) if c == q => {
                    quote = None;
                    statements.last_mut().unwrap().push(c);
                }
                (Some(_), c) => statements.last_mut().unwrap().push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    statements.last_mut().unwrap().push(c);
                }
                (None, ';' | '|' | '&' | '(' | ')' | '`') => statements.push(String::new()),
                (None, c) => statements.last_mut().unwrap().push(c),
            }
            i += 1;
        }
        for st in statements {
            self.statement(st.trim());
        }
        for inner in inner_commands {
            self.line(&inner);
        }
    }

    fn statement(&mut self, st: &str) {
        let words = split_words(st);
        let mut k = 0;
        // Leading assignments (`A=1 B=2 cmd`), possibly after export/readonly/local.
        while k < words.len() {
            let w = &words[k];
            if ["export", "readonly", "local", "declare", "typeset"].contains(&w.as_str()) {
                k += 1;
                continue;
            }
            let Some((name, value)) = w.split_once('=') else { break };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                break;
            }
            let v = self.value_of(value);
            match v {
                Some(v) => self.vars.insert(name.to_owned(), v),
                None => self.vars.remove(name),
            };
            k += 1;
        }
        let mut after_exec = false;
        let mut command_position = true;
        for w in &words[k..] {
            let bare = unquote(w);
            if command_position {
                if bare == "exec" {
                    after_exec = true;
                    continue;
                }
                if KEYWORDS.contains(&bare.as_str()) {
                    continue;
                }
                command_position = false;
                if is_command_name(&bare) && !BUILTINS.contains(&bare.as_str()) {
                    self.commands.insert(bare.clone());
                }
            }
            if let Some(expanded) = self.expand(&bare) {
                self.candidates.push((after_exec, expanded));
            }
            after_exec = false;
        }
    }

    /// The value of an assignment: a literal with known variables expanded, or a path derived from the script's
    /// own location; `None` when it cannot be known without running the script.
    fn value_of(&self, raw: &str) -> Option<String> {
        let v = unquote(raw);
        let self_ref = v.contains("$0") || v.contains("${0") || v.contains("BASH_SOURCE");
        if self_ref {
            let dirname = v.contains("dirname") || v.contains("%/*");
            let p = if dirname { &self.dir } else { &self.path };
            return Some(p.display().to_string());
        }
        if v.contains("$(") || v.contains('`') {
            return None;
        }
        self.expand(&v)
    }

    /// `word` with `$VAR`, `${VAR}` and `${VAR:-default}` replaced; `None` if a variable is unknown.
    fn expand(&self, word: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = word;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, default, len) = if let Some(inner) = after.strip_prefix('{') {
                let close = inner.find('}')?;
                let body = &inner[..close];
                let (n, d) = match body.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (body, None),
                };
                (n, d, close + 2)
            } else {
                let n = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').count();
                (&after[..n], None, n)
            };
            if name.is_empty() {
                return None;
            }
            match (self.vars.get(name), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return None,
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// The file a candidate word names: relative to the script's directory, or absolute (inside the package root
    /// when the script lies in one), and only inside the script's own tree.
    fn resolve(&self, word: &str) -> Option<PathBuf> {
        if word.is_empty() || word.starts_with('-') || word.contains('*') || word.contains('$') {
            return None;
        }
        let tree = self.dir.parent().unwrap_or(&self.dir);
        let p = if let Some(abs) = word.strip_prefix('/') {
            let direct = PathBuf::from(word);
            match &self.root {
                Some(root) if !direct.starts_with(root) => root.join(abs),
                _ => direct,
            }
        } else {
            self.dir.join(word)
        };
        let p = patchelf_rs::dynamic::normalize(&p);
        let inside = p.starts_with(tree) || self.root.as_ref().is_some_and(|r| p.starts_with(r));
        (inside && p != self.path && p.is_file()).then_some(p)
    }

    fn target(&self) -> Option<PathBuf> {
        let mut best: Option<(bool, PathBuf)> = None;
        for (after_exec, word) in &self.candidates {
            let Some(p) = self.resolve(word) else { continue };
            let executable = read_head(&p).is_ok_and(|h| h.starts_with(b"\x7fELF") || h.starts_with(b"#!"));
            if !executable {
                continue;
            }
            match &best {
                Some((true, _)) => {}
                Some((false, _)) if !after_exec => {}
                _ => best = Some((*after_exec, p)),
            }
        }
        best.map(|(_, p)| p)
    }
}

fn strip_comment(line: &str) -> &str {
    if line.starts_with('#') {
        return "";
    }
    match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    }
}

fn function_name(line: &str) -> Option<String> {
    let l = line.strip_prefix("function ").unwrap_or(line);
    let (name, rest) = l.split_once('(')?;
    let name = name.trim();
    (rest.trim_start().starts_with(')') && is_command_name(name)).then(|| name.to_owned())
}

fn is_command_name(w: &str) -> bool {
    !w.is_empty()
        && w.chars().all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        && !w.starts_with('-')
        && w.chars().any(|c| c.is_ascii_alphabetic())
}

fn find_close(chars: &[char], open: usize) -> usize {
    let mut depth = 0;
    for (j, c) in chars.iter().enumerate().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    chars.len().saturating_sub(1).max(open)
}

/// Splits a statement into words, keeping quoted parts and command substitutions together.
fn split_words(st: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let chars: Vec<char> = st.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' && chars.get(i + 1) == Some(&'(') && quote != Some('\'') {
            let close = find_close(&chars, i + 1);
            cur.extend(&chars[i..=close.min(chars.len() - 1)]);
            i = close + 1;
            continue;
        }
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, c) if c.is_whitespace() || "<>".contains(c) => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
        i += 1;
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn unquote(w: &str) -> String {
    w.chars().filter(|c| *c != '"' && *c != '\'').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"\x7fELF....").unwrap();
    }

    #[test]
    fn here_style_launchers() {
        let dir = tempfile::tempdir().unwrap();
        elf(&dir.path().join("app/bin/app"));
        let script = dir.path().join("app/run.sh");
        let text = "#!/bin/sh\nHERE=\"$(dirname \"$(readlink -f \"$0\")\")\"\nexport LD_LIBRARY_PATH=\"$HERE/lib\"\n\
                    if [ \"$(uname -m)\" != x86_64 ]; then echo no; exit 1; fi\nexec \"$HERE/bin/app\" \"$@\"\n";
        std::fs::write(&script, text).unwrap();
        let (target, chain) = follow(&script).unwrap();
        assert_eq!(target, std::fs::canonicalize(dir.path().join("app/bin/app")).unwrap());
        assert_eq!(chain[0].interpreter, "/bin/sh");
        let cmds: Vec<&str> = chain[0].commands.iter().map(String::as_str).collect();
        assert_eq!(cmds, ["dirname", "readlink", "uname"]);
    }

    #[test]
    fn absolute_fhs_paths_inside_an_unpacked_package() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("chromium-pkg");
        elf(&root.join("usr/lib/chromium/chromium"));
        let script = root.join("usr/bin/chromium");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        let text = "#!/bin/sh\n# comment\nAPPNAME=chromium\nGDB=/usr/bin/gdb\nLIBDIR=/usr/lib/$APPNAME\n\
                    usage () {\n  echo usage\n}\ncase `uname -m` in\n x86_64) grep -q sse3 /proc/cpuinfo ;;\nesac\n\
                    for f in /etc/chromium.d/*; do . $f; done\nexec $LIBDIR/$APPNAME $CHROMIUM_FLAGS \"$@\"\n";
        std::fs::write(&script, text).unwrap();
        let (target, chain) = follow(&script).unwrap();
        assert_eq!(target, std::fs::canonicalize(&root).unwrap().join("usr/lib/chromium/chromium"));
        assert!(chain[0].commands.contains("grep") && chain[0].commands.contains("uname"));
        assert!(!chain[0].commands.contains("usage"), "functions are not commands");
        assert_eq!(package_root(&root.join("usr/bin/chromium")), Some(root.clone()));
        assert_eq!(package_root(Path::new("/usr/bin/chromium")), None);
        assert_eq!(
            Launcher {
                script: script.clone(),
                interpreter: "/usr/bin/env -S bash -e".into(),
                commands: BTreeSet::new()
            }
            .interpreter_needs(),
            (Some("/usr/bin/env".into()), Some("bash".into()))
        );
    }

    #[test]
    fn a_script_starting_nothing_known_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\nexec /bin/true\n").unwrap();
        let e = follow(&script).unwrap_err().to_string();
        assert!(e.contains("starts no ELF file"), "{e}");
    }
}
