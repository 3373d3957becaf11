//! Building an env from fixture package directories: the symlink farm's shape, conflict reports, and the
//! `ld.so.cache` checked against glibc's own `ldconfig` (which can print and build any cache file).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use fhsenv::ldcache;

/// `ldconfig -p -C cache` as (key, type, path) triples.
fn ldconfig_print(cache: &Path) -> BTreeSet<(String, String, String)> {
    let out = Command::new("ldconfig").arg("-p").arg("-C").arg(cache).output().expect("run ldconfig -p");
    assert!(out.status.success(), "ldconfig -p failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (left, path) = line.trim().split_once(" => ")?;
            let (key, kind) = left.split_once(" (")?;
            Some((key.to_owned(), kind.trim_end_matches(')').to_owned(), path.to_owned()))
        })
        .collect()
}

#[test]
fn builds_the_farm_and_a_cache_ldconfig_agrees_with() {
    let tmp = common::world_readable_tempdir();
    let packages = common::make_packages(tmp.path());
    let spec_path = common::write_env_toml(tmp.path(), &packages, "");
    let spec = fhsenv::EnvSpec::load(&spec_path).unwrap();
    let out = tmp.path().join("env");
    let report = fhsenv::build(&spec, &out).unwrap();

    // Shape: merged-usr links, libraries placed by ELF class, multiarch directories flattened.
    assert_eq!(std::fs::read_link(out.join("lib64")).unwrap(), Path::new("usr/lib64"));
    assert!(
        std::fs::symlink_metadata(out.join("usr/lib64")).unwrap().is_dir(),
        "merges with a host's usr/lib64"
    );
    let loader = std::fs::canonicalize(out.join("lib64/ld-linux-x86-64.so.2")).unwrap();
    assert!(loader.starts_with(&packages.glibc), "{}", loader.display());
    assert!(out.join("usr/lib/libc.so.6").exists());
    assert!(out.join("usr/lib/libfoo.so.1").exists(), "soname link made like ldconfig would");
    assert!(!tmp.path().join("pkgs/foo/usr/lib/x86_64-linux-gnu/libfoo.so.1").exists(), "packages untouched");
    if packages.multi.is_some() {
        assert!(out.join("usr/lib32/libc.so.6").exists());
        assert!(out.join("usr/lib32/libfoo.so.1").exists(), "32-bit library sorted into lib32");
        assert!(out.join("usr/lib/ld-linux.so.2").exists(), "/lib/ld-linux.so.2 resolves");
    }
    assert!(out.join("etc/other.conf").exists());
    assert!(std::fs::read_to_string(out.join("etc/profile")).unwrap().contains("fixture-fhsenv"));

    // First package wins; the loser is reported.
    assert_eq!(std::fs::read_to_string(out.join("usr/bin/dup")).unwrap(), "app\n");
    assert_eq!(report.conflicts.len(), 1, "{:?}", report.conflicts);
    assert_eq!(report.conflicts[0].path, Path::new("usr/bin/dup"));
    assert!(report.conflicts[0].dropped.starts_with(&packages.other));
    assert!(report.ignored.iter().any(|p| p.ends_with("glibc/var")), "{:?}", report.ignored);

    // Our cache as glibc's ldconfig reads it.
    let ours = ldconfig_print(&out.join("etc/ld.so.cache"));
    assert!(
        ours.contains(&("libfoo.so.1".into(), "libc6,x86-64".into(), "/usr/lib/libfoo.so.1".into())),
        "{ours:?}"
    );
    assert!(
        ours.contains(&("libc.so.6".into(), "libc6,x86-64".into(), "/usr/lib/libc.so.6".into())),
        "{ours:?}"
    );
    if packages.multi.is_some() {
        assert!(ours.iter().any(|(k, _, p)| k == "libfoo.so.1" && p == "/usr/lib32/libfoo.so.1"), "{ours:?}");
    }

    // glibc's ldconfig over the same directories (without touching them: -X) must give the same lookups.
    let conf = tmp.path().join("ld.so.conf");
    std::fs::write(
        &conf,
        format!("{}\n{}\n", out.join("usr/lib").display(), out.join("usr/lib32").display()),
    )
    .unwrap();
    let theirs_cache = tmp.path().join("ldconfig.cache");
    let status = Command::new("ldconfig")
        .arg("-X")
        .arg("-C")
        .arg(&theirs_cache)
        .arg("-f")
        .arg(&conf)
        .status()
        .unwrap();
    assert!(status.success());
    let prefix = out.display().to_string();
    let theirs: BTreeSet<_> = ldconfig_print(&theirs_cache)
        .into_iter()
        .filter_map(|(k, t, p)| p.strip_prefix(&prefix).map(|rest| (k, t, rest.to_owned())))
        // The compat link /usr/lib/ld-linux.so.2 -> ../lib32/ld-linux.so.2 is the same file ldconfig also finds in
        // lib32; we list it once.
        .filter(|(_, _, p)| p != "/usr/lib/ld-linux.so.2")
        .collect();
    let ours_env: BTreeSet<_> = ours.into_iter().filter(|(_, _, p)| p.starts_with("/usr/")).collect();
    assert_eq!(ours_env, theirs);

    // Our reader agrees with what we wrote.
    let bytes = std::fs::read(out.join("etc/ld.so.cache")).unwrap();
    let decoded = ldcache::decode(&bytes, Path::new("cache")).unwrap();
    assert_eq!(decoded.len(), report.cache_entries);
}

#[test]
fn hwcaps_entries_are_understood_by_ldconfig() {
    let tmp = common::world_readable_tempdir();
    let entries = vec![
        ldcache::CacheEntry {
            key: "libfoo.so.1".into(),
            path: "/usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1".into(),
            flags: ldcache::FLAG_X8664_LIBC6,
            hwcaps: Some("x86-64-v3".into()),
        },
        ldcache::CacheEntry {
            key: "libfoo.so.1".into(),
            path: "/usr/lib/libfoo.so.1".into(),
            flags: ldcache::FLAG_X8664_LIBC6,
            hwcaps: None,
        },
    ];
    let path = tmp.path().join("cache");
    ldcache::write(&path, &entries, "fhskit").unwrap();
    let out = Command::new("ldconfig").arg("-p").arg("-C").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 libs found"), "{text}");
    assert!(text.contains("hwcap: \"x86-64-v3\""), "{text}");
    assert!(text.contains("Cache generated by: fhskit"), "{text}");
}

#[test]
fn rebuild_replaces_the_previous_tree_and_refuses_foreign_directories() {
    let tmp = common::world_readable_tempdir();
    let packages = common::make_packages(tmp.path());
    let spec = fhsenv::EnvSpec::load(&common::write_env_toml(tmp.path(), &packages, "")).unwrap();
    let out = tmp.path().join("env");
    fhsenv::build(&spec, &out).unwrap();
    let env = fhsenv::BuiltEnv::open(&out).unwrap();
    assert!(env.is_current(&spec));
    let mut changed = spec.clone();
    changed.packages.pop();
    assert!(!env.is_current(&changed));
    fhsenv::build(&changed, &out).unwrap();
    assert!(
        !out.join("usr/bin/dup").exists()
            || std::fs::read_to_string(out.join("usr/bin/dup")).unwrap() == "app\n"
    );
    assert!(!out.join("etc/other.conf").exists(), "old tree replaced");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("keep"), "x").unwrap();
    let err = fhsenv::build(&spec, &foreign).unwrap_err().to_string();
    assert!(err.contains("refusing to replace"), "{err}");
    assert!(foreign.join("keep").exists());

    let mut missing = spec.clone();
    missing.packages.push(tmp.path().join("nope"));
    let err = fhsenv::build(&missing, &tmp.path().join("env2")).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}
