//! Package relationship fields (`Depends`, `Pre-Depends`, `Provides`): clauses of alternatives, each naming a
//! package with an optional architecture qualifier, version constraint and architecture restriction list.
//!
//! The resolver evaluates these against the parsed [`crate::packages::Universe`].

use std::fmt;

use crate::version::Version;

/// A version relation operator as written in control files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            // `<` and `>` are obsolete spellings of `<=` and `>=` (deb-control(5)).
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }

    /// Whether `have OP want` holds.
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        let ord = have.cmp(want);
        match self {
            Op::Lt => ord.is_lt(),
            Op::Le => ord.is_le(),
            Op::Eq => ord.is_eq(),
            Op::Ge => ord.is_ge(),
            Op::Gt => ord.is_gt(),
        }
    }
}

/// One alternative of a dependency clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// `any`, `native` or an architecture name after `:`.
    pub arch_qualifier: Option<String>,
    pub constraint: Option<(Op, Version)>,
    /// `[amd64 !i386]` restriction list (rare outside Build-Depends but allowed).
    pub arch_restrictions: Vec<String>,
}

impl Relation {
    /// Whether the restriction list admits `arch`.
    pub fn applies_to(&self, arch: &str) -> bool {
        if self.arch_restrictions.is_empty() {
            return true;
        }
        let negated = self.arch_restrictions.iter().all(|a| a.starts_with('!'));
        if negated {
            !self.arch_restrictions.iter().any(|a| &a[1..] == arch)
        } else {
            self.arch_restrictions.iter().any(|a| a == arch)
        }
    }

    /// Whether a package or provided name with this version satisfies the constraint (`None`: an unversioned
    /// Provides, which satisfies only unversioned relations).
    pub fn version_ok(&self, version: Option<&Version>) -> bool {
        match (&self.constraint, version) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((op, want)), Some(have)) => op.holds(have, want),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({} {v})", op.symbol())?;
        }
        Ok(())
    }
}

/// A clause: alternatives separated by `|`; at least one must hold.
pub type Clause = Vec<Relation>;

/// Parses a relationship field into clauses. Build profiles (`<…>`) are dropped: they never apply to binaries.
pub fn parse(field: &str) -> Result<Vec<Clause>, String> {
    let mut clauses = Vec::new();
    for clause in field.split(',') {
        let clause = clause.trim();
        if clause.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in clause.split('|') {
            alts.push(parse_relation(alt.trim()).map_err(|e| format!("'{}': {e}", alt.trim()))?);
        }
        clauses.push(alts);
    }
    Ok(clauses)
}

fn parse_relation(text: &str) -> Result<Relation, String> {
    // Drop build profiles first: `<!nocheck>` outside parentheses would otherwise read as a version operator.
    let mut rest = String::with_capacity(text.len());
    let (mut paren, mut in_profile) = (0u32, false);
    for c in text.chars() {
        if in_profile {
            in_profile = c != '>';
            continue;
        }
        match c {
            '(' => paren += 1,
            ')' => paren = paren.saturating_sub(1),
            '<' if paren == 0 => {
                in_profile = true;
                continue;
            }
            _ => {}
        }
        rest.push(c);
    }
    let text = rest.trim();
    let name_end = text.find(|c: char| c.is_whitespace() || c == '(' || c == '[').unwrap_or(text.len());
    let (full_name, mut tail) = (&text[..name_end], text[name_end..].trim_start());
    if full_name.is_empty() {
        return Err("missing package name".into());
    }
    let (name, arch_qualifier) = match full_name.split_once(':') {
        Some((n, q)) => (n, Some(q.to_owned())),
        None => (full_name, None),
    };
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
        return Err(format!("invalid package name '{name}'"));
    }
    let mut constraint = None;
    if let Some(after) = tail.strip_prefix('(') {
        let close = after.find(')').ok_or("unclosed '('")?;
        let inner = after[..close].trim();
        let op_len = inner.find(|c: char| !matches!(c, '<' | '>' | '=')).unwrap_or(inner.len());
        let op =
            Op::parse(&inner[..op_len]).ok_or_else(|| format!("invalid relation '{}'", &inner[..op_len]))?;
        let version = inner[op_len..].trim();
        if version.is_empty() {
            return Err("missing version".into());
        }
        constraint = Some((op, Version::new(version)));
        tail = after[close + 1..].trim_start();
    }
    let mut arch_restrictions = Vec::new();
    if let Some(after) = tail.strip_prefix('[') {
        let close = after.find(']').ok_or("unclosed '['")?;
        arch_restrictions = after[..close].split_whitespace().map(str::to_owned).collect();
        tail = after[close + 1..].trim_start();
    }
    if !tail.is_empty() {
        return Err(format!("unexpected '{tail}'"));
    }
    Ok(Relation { name: name.to_owned(), arch_qualifier, constraint, arch_restrictions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alternatives_versions_qualifiers_and_restrictions() {
        let c = parse(
            "libc6 (>= 2.34), libfoo1 (= 1:1.0-1) | libfoo-alt, python3:any, bar [amd64 i386] <!nocheck>",
        )
        .unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0][0].name, "libc6");
        assert_eq!(c[0][0].constraint.as_ref().unwrap().0, Op::Ge);
        assert_eq!(c[1].len(), 2);
        assert_eq!(c[1][0].constraint.as_ref().unwrap().1.as_str(), "1:1.0-1");
        assert_eq!(c[2][0].arch_qualifier.as_deref(), Some("any"));
        assert_eq!(c[3][0].arch_restrictions, ["amd64", "i386"]);
        assert!(c[3][0].applies_to("i386"));
        assert!(!c[3][0].applies_to("arm64"));
    }

    #[test]
    fn obsolete_operators_and_errors() {
        let c = parse("a (< 2), b (> 1), c (<< 3), d(>>4)").unwrap();
        assert_eq!(c[0][0].constraint.as_ref().unwrap().0, Op::Le);
        assert_eq!(c[1][0].constraint.as_ref().unwrap().0, Op::Ge);
        assert_eq!(c[3][0].constraint.as_ref().unwrap().0, Op::Gt);
        assert!(parse("a (~ 1)").is_err());
        assert!(parse("a (>= 1").is_err());
        assert!(parse("bad/name").is_err());
    }

    #[test]
    fn constraint_checks() {
        let r = &parse("a (>= 1.0)").unwrap()[0][0];
        assert!(r.version_ok(Some(&Version::new("1.0"))));
        assert!(!r.version_ok(Some(&Version::new("1.0~rc1"))));
        assert!(!r.version_ok(None));
        let neg = &parse("a [!i386]").unwrap()[0][0];
        assert!(neg.applies_to("amd64") && !neg.applies_to("i386"));
    }
}
