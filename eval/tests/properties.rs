//! Property tests of values: the laws Nix's `==` and `<` obey, and round trips through the printer
//! (`nix-instantiate --eval --strict` output) and back through the parser and evaluator.

use std::rc::Rc;

use eval::value::{Attr, Attrs};
use eval::{Evaluator, FsIo, Settings, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// A value as the strategies build it; turned into a `Value` by `to_value`.
#[derive(Clone, Debug)]
enum Gen {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Gen>),
    Attrs(Vec<(String, Gen)>),
}

fn to_value(g: &Gen) -> Value {
    match g {
        Gen::Null => Value::Null,
        Gen::Bool(b) => Value::Bool(*b),
        Gen::Int(i) => Value::Int(*i),
        Gen::Float(f) => Value::Float(*f),
        Gen::Str(s) => Value::str(s.clone()),
        Gen::List(l) => Value::list(l.iter().map(to_value).collect()),
        Gen::Attrs(a) => Value::attrs(Attrs::from_unsorted(
            a.iter()
                .map(|(k, v)| Attr {
                    name: eval::sym::Sym::new(k),
                    value: to_value(v),
                    pos: Default::default(),
                })
                .collect(),
        )),
    }
}

/// Integers whose conversion to a float is exact: beyond 2^53 Nix's int/float equality (which converts the int)
/// is not transitive, in Nix as here, so the laws are stated on this range.
fn exact_int() -> impl Strategy<Value = i64> {
    prop_oneof![-10i64..10, -(1i64 << 53)..(1i64 << 53)]
}

/// Floats that the printer shows exactly (at most six significant digits, no exponent), so that printing and
/// parsing gives the same number back.
fn printable_float() -> impl Strategy<Value = f64> {
    (-999_999i64..=999_999, 0u32..=5).prop_map(|(m, d)| m as f64 / 10f64.powi(d as i32))
}

/// Strings full of what the printer must escape: quotes, backslashes, `${`, control characters, non-ASCII.
fn nix_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just("${".to_string()),
            Just("$".to_string()),
            Just("{".to_string()),
            Just("\n".to_string()),
            Just("\r".to_string()),
            Just("\t".to_string()),
            Just("''".to_string()),
            Just("é☃".to_string()),
            "[a-z ]{1,3}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_'-]{0,4}",
        Just("if".to_string()),
        Just("or".to_string()),
        Just("".to_string()),
        Just("a b".to_string()),
        Just("1x".to_string()),
        nix_string(),
    ]
}

/// Any printable value: scalars, strings, lists and sets, nested.
fn any_value() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![
        Just(Gen::Null),
        any::<bool>().prop_map(Gen::Bool),
        (i64::MIN + 1..=i64::MAX).prop_map(Gen::Int),
        printable_float().prop_map(Gen::Float),
        nix_string().prop_map(Gen::Str),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone().prop_map(list_element), 0..5).prop_map(Gen::List),
            prop::collection::vec((attr_name(), inner), 0..5).prop_map(Gen::Attrs),
        ]
    })
}

/// Nix prints a negative list element without parentheses (`[ -1 ]`), which its parser rejects, so the
/// round trip is only claimed for lists of non-negative numbers.
fn list_element(g: Gen) -> Gen {
    match g {
        Gen::Int(i) => Gen::Int(i.abs()),
        Gen::Float(f) => Gen::Float(f.abs()),
        g => g,
    }
}

/// Values that `<` orders: numbers, strings, and lists of them (Nix compares lists element by element).
fn comparable() -> impl Strategy<Value = Gen> {
    let number = prop_oneof![exact_int().prop_map(Gen::Int), printable_float().prop_map(Gen::Float)];
    let string = "[ab]{0,3}".prop_map(Gen::Str);
    prop_oneof![
        number.clone(),
        string.clone(),
        prop::collection::vec(number.prop_map(list_element), 0..4).prop_map(Gen::List),
        prop::collection::vec(string, 0..4).prop_map(Gen::List),
    ]
}

fn evaluator() -> Evaluator {
    let io = FsIo::new(std::env::temp_dir().join("fhskit-eval-properties"), "/nix/store");
    Evaluator::new(Box::new(io), Settings::default())
}

/// Runs a property on the evaluator's large stack, failing the test with proptest's minimal counterexample.
/// The strategy is built on that thread (strategies are not `Send`), hence `make`.
fn check<S>(make: fn() -> S, cases: u32, test: fn(&mut Evaluator, S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy + 'static,
    S::Value: std::fmt::Debug,
{
    let outcome = eval::with_big_stack(move || {
        let ev = std::cell::RefCell::new(evaluator());
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        runner.run(&make(), |v| test(&mut ev.borrow_mut(), v)).map_err(|e| e.to_string())
    })
    .expect("evaluation thread");
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

fn eq(ev: &mut Evaluator, a: &Value, b: &Value) -> Result<bool, TestCaseError> {
    ev.equal(a, b).map_err(|e| TestCaseError::fail(e.render(false)))
}

fn lt(ev: &mut Evaluator, a: &Value, b: &Value) -> Result<bool, TestCaseError> {
    ev.less_than(a, b, Default::default()).map_err(|e| TestCaseError::fail(e.render(false)))
}

/// Parses and evaluates `text` completely.
fn eval_text(ev: &mut Evaluator, text: &str) -> Result<Value, TestCaseError> {
    let v =
        ev.eval_str(text, "/").map_err(|e| TestCaseError::fail(format!("{text}\n{}", e.render(false))))?;
    ev.force_deep(&v).map_err(|e| TestCaseError::fail(e.render(false)))?;
    Ok(v)
}

#[test]
fn equality_is_reflexive_and_symmetric() {
    check(
        || (any_value(), any_value()),
        256,
        |ev, (a, b)| {
            let (a, b) = (to_value(&a), to_value(&b));
            prop_assert!(eq(ev, &a, &a)?);
            // A structurally equal copy, not the same allocation, so that pointer equality cannot answer.
            let a2 = to_value(&from_value(&a));
            prop_assert!(eq(ev, &a, &a2)?);
            prop_assert_eq!(eq(ev, &a, &b)?, eq(ev, &b, &a)?);
            Ok(())
        },
    );
}

#[test]
fn equality_is_transitive() {
    // Small domains, so that equal triples (including int/float pairs such as 1 and 1.0) are common.
    fn small() -> impl Strategy<Value = Gen> {
        prop_oneof![
            (-2i64..3).prop_map(Gen::Int),
            (-2i64..3).prop_map(|i| Gen::Float(i as f64)),
            Just(Gen::Float(0.5)),
            "[ab]?".prop_map(Gen::Str),
            prop::collection::vec((-1i64..2).prop_map(Gen::Int), 0..2).prop_map(Gen::List),
            prop::collection::vec((-1i64..2).prop_map(|i| Gen::Float(i as f64)), 0..2).prop_map(Gen::List),
        ]
    }
    check(
        || (small(), small(), small()),
        512,
        |ev, (a, b, c)| {
            let (a, b, c) = (to_value(&a), to_value(&b), to_value(&c));
            if eq(ev, &a, &b)? && eq(ev, &b, &c)? {
                prop_assert!(eq(ev, &a, &c)?);
            }
            Ok(())
        },
    );
}

#[test]
fn less_than_is_a_strict_order_consistent_with_equality() {
    check(
        || (comparable(), comparable(), comparable()),
        512,
        |ev, (a, b, c)| {
            let (a, b, c) = (to_value(&a), to_value(&b), to_value(&c));
            let same_kind = |x: &Value, y: &Value| match (x, y) {
                (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => true,
                (Value::String(_), Value::String(_)) => true,
                (Value::List(p), Value::List(q)) => {
                    // Lists compare only where their elements do: both numeric or both strings (or one empty).
                    let kind = |l: &Rc<Vec<Value>>| l.first().map(|v| matches!(v, Value::String(_)));
                    kind(p).is_none() || kind(q).is_none() || kind(p) == kind(q)
                }
                _ => false,
            };
            prop_assert!(!lt(ev, &a, &a)?);
            if !same_kind(&a, &b) {
                return Ok(());
            }
            let (ab, ba, e) = (lt(ev, &a, &b)?, lt(ev, &b, &a)?, eq(ev, &a, &b)?);
            // Exactly one of a < b, a == b, b < a.
            prop_assert_eq!(u8::from(ab) + u8::from(ba) + u8::from(e), 1, "a={:?} b={:?}", a, b);
            if same_kind(&b, &c) && same_kind(&a, &c) && ab && lt(ev, &b, &c)? {
                prop_assert!(lt(ev, &a, &c)?);
            }
            Ok(())
        },
    );
}

#[test]
fn operators_agree_with_the_evaluator_functions() {
    check(
        || (comparable(), comparable()),
        256,
        |ev, (a, b)| {
            let (va, vb) = (to_value(&a), to_value(&b));
            let (pa, pb) = (eval::print::print_value(&va), eval::print::print_value(&vb));
            let want_eq = eq(ev, &va, &vb)?;
            let got = eval_text(ev, &format!("({pa}) == ({pb})"))?;
            prop_assert!(matches!(got, Value::Bool(x) if x == want_eq));
            if let Ok(want_lt) = ev.less_than(&va, &vb, Default::default()) {
                let got = eval_text(ev, &format!("({pa}) < ({pb})"))?;
                prop_assert!(matches!(got, Value::Bool(x) if x == want_lt));
                let got = eval_text(ev, &format!("({pa}) >= ({pb})"))?;
                prop_assert!(matches!(got, Value::Bool(x) if x != want_lt));
            }
            Ok(())
        },
    );
}

#[test]
fn printing_then_parsing_gives_an_equal_value() {
    check(any_value, 512, |ev, g| {
        let v = to_value(&g);
        let printed = eval::print::print_value(&v);
        let back = eval_text(ev, &printed)?;
        prop_assert!(eq(ev, &v, &back)?, "printed {} which evaluates to something else", printed);
        // Ints and floats that print alike (1 and 1.0) compare equal, so the printed forms must agree too.
        prop_assert_eq!(eval::print::print_value(&back), printed);
        Ok(())
    });
}

#[test]
fn strings_survive_to_json_and_back() {
    check(nix_string, 256, |ev, s| {
        let lit = eval::print::quote_string(&s);
        let back = eval_text(ev, &format!("builtins.fromJSON (builtins.toJSON {lit})"))?;
        prop_assert!(matches!(&back, Value::String(b) if b.s == s));
        Ok(())
    });
}

/// The inverse of `to_value` for forced values (used to build structurally equal copies).
fn from_value(v: &Value) -> Gen {
    match v.evaluated() {
        Some(Value::Null) => Gen::Null,
        Some(Value::Bool(b)) => Gen::Bool(b),
        Some(Value::Int(i)) => Gen::Int(i),
        Some(Value::Float(f)) => Gen::Float(f),
        Some(Value::String(s)) => Gen::Str(s.s.clone()),
        Some(Value::List(l)) => Gen::List(l.iter().map(from_value).collect()),
        Some(Value::Attrs(a)) => Gen::Attrs(
            a.entries.iter().map(|e| (e.name.as_str().to_string(), from_value(&e.value))).collect(),
        ),
        _ => Gen::Null,
    }
}
