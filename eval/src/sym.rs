//! Interned identifiers: attribute names and variable names become `Sym`, a pointer-sized handle that compares by
//! address for equality and by text for ordering (attribute sets are kept sorted by name, as Nix prints them).

use std::cell::RefCell;
use std::fmt;

/// A map keyed by symbols. Symbols hash by address, so a fast non-keyed hash is enough.
pub type SymMap<V> = rustc_hash::FxHashMap<Sym, V>;

/// An interned string. Interned text lives for the rest of the process, which is what an evaluator run needs.
#[derive(Clone, Copy)]
pub struct Sym(&'static str);

thread_local! {
    // FxHash: interning runs for every identifier the compiler meets, and SipHash's resistance to chosen keys buys
    // nothing for names read from the user's own files.
    static TABLE: RefCell<rustc_hash::FxHashSet<&'static str>> = RefCell::new(Default::default());
}

impl Sym {
    /// Interns `s`, returning the unique handle for that text.
    pub fn new(s: &str) -> Sym {
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            if let Some(found) = t.get(s) {
                return Sym(found);
            }
            let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
            t.insert(leaked);
            Sym(leaked)
        })
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq for Sym {
    fn eq(&self, other: &Sym) -> bool {
        std::ptr::eq(self.0.as_ptr(), other.0.as_ptr()) && self.0.len() == other.0.len()
    }
}
impl Eq for Sym {}

impl PartialOrd for Sym {
    fn partial_cmp(&self, other: &Sym) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Sym {
    fn cmp(&self, other: &Sym) -> std::cmp::Ordering {
        if self == other {
            return std::cmp::Ordering::Equal;
        }
        // The first bytes decide most steps of a search in a large set (nixpkgs' package names), without a call to
        // memcmp; the order is the same as comparing the whole text.
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        match a.first().cmp(&b.first()) {
            std::cmp::Ordering::Equal => a.cmp(b),
            o => o,
        }
    }
}
impl std::hash::Hash for Sym {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (self.0.as_ptr() as usize).hash(h);
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_the_order_of_the_text() {
        let names = ["", "a", "aa", "ab", "b", "B", "é", "zz", "z", "_x", "a-b", "a.b"];
        for x in names {
            for y in names {
                assert_eq!(Sym::new(x).cmp(&Sym::new(y)), x.cmp(y), "{x:?} {y:?}");
            }
        }
    }
}
