//! End-to-end tests of `fhskit pkgs update|search|show|resolve` and `fhskit locate` against a signed fixture
//! repository served on 127.0.0.1, including every index-level failure (tampered, expired, wrongly signed,
//! mismatching indexes, server errors), each of which must leave the cache unchanged.

mod pkgs_support;

use pkgs_support::*;

#[test]
fn no_repository_gives_a_clear_error_with_a_hint() {
    let f = Fixture::new();
    let out = f.command().args(["pkgs", "update"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no package repository is configured"), "{err}");
    assert!(err.contains("hint:") && err.contains("--repo"), "{err}");
    let out = f.command().args(["locate", "libfoo.so.1"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn update_search_show_resolve_and_locate() {
    let f = Fixture::new();
    let out = f.ok(&["pkgs", "update"]);
    assert!(out.contains("2 package index(es)"), "{out}");

    // A second update asks conditionally and downloads nothing more.
    f.server.clear_log();
    let out = f.ok(&["pkgs", "update"]);
    assert!(out.contains("up to date"), "{out}");
    let reqs = f.server.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].status, 304);
    assert!(reqs[0].headers.contains_key("if-none-match"));

    let out = f.ok(&["pkgs", "search", "foo"]);
    assert!(out.contains("libfoo1 1.0-1 amd64"), "{out}");
    assert!(out.contains("libfoo1 1.0-1 i386"), "{out}");
    assert!(out.contains("hello-foo 1.0-1 amd64"), "{out}");
    let out = f.run(&["pkgs", "search", "no-such-thing"]);
    assert_eq!(out.status.code(), Some(1));

    let out = f.ok(&["pkgs", "show", "hello-foo"]);
    assert!(
        out.contains("Depends: libfoo1 (>= 1.0), mail-transport-agent | exim-fixture, fixture-data"),
        "{out}"
    );
    assert!(out.contains(&format!("SHA256: {}", f.pool["hello-foo:amd64"].2)), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&f.ok(&["pkgs", "show", "libc-fixture:amd64", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["version"], "2.1");
    assert!(f.fails(&["pkgs", "show", "nope"]).contains("no package nope"));

    // Resolution: versions, alternatives, virtual packages, Multi-Arch foreign `all` package, Pre-Depends.
    let out = f.ok(&["pkgs", "resolve", "hello-foo"]);
    assert_eq!(
        out,
        "fixture-data:all 1\nhello-foo:amd64 1.0-1\nlibc-fixture:amd64 2.1\nlibfoo1:amd64 1.0-1\nmta-fixture:amd64 1.0\n"
    );
    let lock1 = std::fs::read_to_string(f.path("work/fhskit.lock")).unwrap();
    assert!(lock1.contains("depends = [\"libc-fixture:amd64\"]"), "{lock1}");
    std::fs::remove_file(f.path("work/fhskit.lock")).unwrap();
    f.ok(&["pkgs", "resolve", "hello-foo"]);
    assert_eq!(std::fs::read_to_string(f.path("work/fhskit.lock")).unwrap(), lock1, "same inputs, same lock");

    // An existing lock pins earlier choices (libc-fixture 2.0 still satisfies libfoo1's >= 2.0).
    let pinned = lock1
        .replace("version = \"2.1\"", "version = \"2.0\"")
        .replace(&f.pool["libc-fixture:amd64"].2, &sha_of(&f, "libc-fixture_2.0_amd64.deb"));
    std::fs::write(f.path("work/pinned.lock"), &pinned).unwrap();
    let out = f.ok(&["pkgs", "resolve", "libfoo1", "--lock", "pinned.lock"]);
    assert!(out.contains("libc-fixture:amd64 2.0"), "{out}");

    // 32-bit closure.
    let out = f.ok(&["pkgs", "resolve", "libfoo1:i386", "--lock", "i386.lock"]);
    assert_eq!(out, "libc-fixture:i386 2.1\nlibfoo1:i386 1.0-1\n");
    let err = f.fails(&["pkgs", "resolve", "hello-foo:i386", "--lock", "x.lock"]);
    assert!(err.contains("no version for architecture i386"), "{err}");
    let err = f.fails(&["pkgs", "resolve", "does-not-exist", "--lock", "x.lock"]);
    assert!(err.contains("no such package"), "{err}");

    // locate: by soname, by path, per architecture, ambiguity rule, JSON, not found.
    assert_eq!(f.ok(&["locate", "libfoo.so.1"]), "libfoo1: /usr/lib/x86_64-linux-gnu/libfoo.so.1\n");
    assert_eq!(
        f.ok(&["pkgs", "locate", "libfoo.so.1", "--arch", "i386"]),
        "libfoo1: /usr/lib/i386-linux-gnu/libfoo.so.1\n"
    );
    assert_eq!(
        f.ok(&["locate", "libbar.so.2"]),
        "libbar2: /usr/lib/x86_64-linux-gnu/libbar.so.2\nlibbar-compat: /usr/lib/x86_64-linux-gnu/libbar.so.2\n"
    );
    assert_eq!(f.ok(&["locate", "/usr/bin/hello-foo"]), "hello-foo: /usr/bin/hello-foo\n");
    let json: serde_json::Value = serde_json::from_str(&f.ok(&["locate", "libbar.so.2", "--json"])).unwrap();
    assert_eq!(json["preferred"], "libbar2");
    // One hit per path, listing every package that ships it.
    assert_eq!(json["hits"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["hits"][0]["packages"].as_array().unwrap().len(), 2, "{json}");
    let err = f.fails(&["locate", "libnothere.so.3"]);
    assert!(err.contains("no package in the configured repositories ships libnothere.so.3"), "{err}");
}

/// The SHA-256 of a .deb in the repository's pool (the pool map keeps one version per package).
fn sha_of(f: &Fixture, file: &str) -> String {
    fn find(dir: &std::path::Path, file: &str) -> Option<std::path::PathBuf> {
        std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            let p = e.path();
            if p.is_dir() { find(&p, file) } else { (e.file_name() == file).then_some(p) }
        })
    }
    let path = find(&f.path("www/debian/pool"), file).unwrap_or_else(|| panic!("{file} is not in the pool"));
    sha256_hex(&std::fs::read(path).unwrap())
}

#[test]
fn configuration_file_and_rsa_key_and_detached_release_signature() {
    let opts = RepoOptions { inrelease: false, ..RepoOptions::default() };
    let f = Fixture::with(rsa_key(2), opts);
    std::fs::create_dir_all(f.path("config/fhskit")).unwrap();
    std::fs::write(
        f.path("config/fhskit/config.toml"),
        format!(
            "[pkgs]\narchitectures = [\"amd64\"]\n\n[[pkgs.repository]]\nurl = \"{}\"\nsuite = \"testing\"\ncomponents = [\"main\"]\nkeyring = \"{}\"\n",
            f.url(),
            f.path("key.asc").display()
        ),
    )
    .unwrap();
    let out = f.command().args(["pkgs", "update"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 package index(es)"));
    let out = f.command().args(["locate", "libfoo.so.1"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "libfoo1: /usr/lib/x86_64-linux-gnu/libfoo.so.1\n");
    // A bad configuration file is a clear error naming it.
    std::fs::write(f.path("config/fhskit/config.toml"), "[pkgs]\nrepository = 3\n").unwrap();
    let out = f.command().args(["pkgs", "update"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("config.toml"), "{err}");
}

#[test]
fn host_apt_sources_are_read_when_nothing_is_configured() {
    let f = Fixture::new();
    let apt = f.path("hostroot/etc/apt/sources.list.d");
    std::fs::create_dir_all(&apt).unwrap();
    std::fs::create_dir_all(f.path("hostroot/usr/share/keyrings")).unwrap();
    std::fs::copy(f.path("key.gpg"), f.path("hostroot/usr/share/keyrings/fixture.gpg")).unwrap();
    std::fs::write(
        apt.join("fixture.sources"),
        format!(
            "Types: deb\nURIs: {}\nSuites: testing\nComponents: main\nArchitectures: amd64\nSigned-By: /usr/share/keyrings/fixture.gpg\n",
            f.url()
        ),
    )
    .unwrap();
    let out = f.command().args(["pkgs", "update"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = f.command().args(["pkgs", "search", "hello"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello-foo"));
    // One-line sources with the key in trusted.gpg.d work too.
    std::fs::remove_file(apt.join("fixture.sources")).unwrap();
    std::fs::create_dir_all(f.path("hostroot/etc/apt/trusted.gpg.d")).unwrap();
    std::fs::copy(f.path("key.asc"), f.path("hostroot/etc/apt/trusted.gpg.d/fixture.asc")).unwrap();
    std::fs::write(
        f.path("hostroot/etc/apt/sources.list"),
        format!("deb [arch=amd64] {} testing main\n", f.url()),
    )
    .unwrap();
    let out = f.command().args(["pkgs", "update"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn signature_and_validity_failures_leave_the_cache_unchanged() {
    let mut f = Fixture::new();
    f.ok(&["pkgs", "update"]);
    let before = f.cache_snapshot();
    let inrelease_path = f.dist_path("InRelease");
    let good = std::fs::read_to_string(f.path(&format!("www{inrelease_path}"))).unwrap();

    // Tampered: one byte of the signed text changed.
    let tampered = good.replacen("Label: Fixture", "Label: Fixturf", 1);
    assert_ne!(tampered, good);
    f.server.fault(&inrelease_path, Fault::Body(tampered.into_bytes()));
    let err = f.fails(&["pkgs", "update"]);
    assert!(err.contains("signature check failed") && err.contains("no valid signature"), "{err}");
    assert_eq!(f.cache_snapshot(), before);

    // Not a signed message at all.
    f.server.fault(&inrelease_path, Fault::Body(b"Suite: testing\n".to_vec()));
    let err = f.fails(&["pkgs", "update"]);
    assert!(err.contains("not a clearsigned message"), "{err}");
    f.server.clear_faults();

    // Wrong keyring.
    let other = ed25519_key(99);
    std::fs::write(f.path("other.gpg"), &other.public_gpg).unwrap();
    let out =
        f.command().args(["pkgs", "update", "--repo", &f.spec_with(&f.path("other.gpg"))]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no valid signature by a key in"));
    let out = f
        .command()
        .args(["pkgs", "update", "--repo", &f.spec_with(&f.path("missing.gpg"))])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read keyring"));
    assert_eq!(f.cache_snapshot(), before);

    // Expired Valid-Until.
    f.rewrite(RepoOptions { valid_until: Some(now() - 3600), ..RepoOptions::default() });
    let err = f.fails(&["pkgs", "update"]);
    assert!(err.contains("expired on"), "{err}");
    assert_eq!(f.cache_snapshot(), before);

    // Server errors.
    f.rewrite(RepoOptions::default());
    f.server.fault(&inrelease_path, Fault::Status(500));
    let err = f.fails(&["pkgs", "update"]);
    assert!(err.contains("server answered 500"), "{err}");
    assert_eq!(f.cache_snapshot(), before);
    f.server.clear_faults();
    f.ok(&["pkgs", "update"]);
}

#[test]
fn index_mismatches_fall_back_to_by_hash_then_fail_cleanly() {
    let f = Fixture::new();
    let packages_xz = f.dist_path("main/binary-amd64/Packages.xz");
    // The plain file is stale (a real mirror's skew); the by-hash copy is right.
    f.server.fault(&packages_xz, Fault::Body(b"stale".to_vec()));
    f.ok(&["pkgs", "update"]);
    assert!(f.server.requests().iter().any(|r| r.path.contains("binary-amd64/by-hash/SHA256/")));
    let before = f.cache_snapshot();

    // Every variant and its by-hash copy wrong: a clear error, cache unchanged.
    f.rewrite_with_extra_package();
    for name in ["Packages.xz", "Packages.gz", "Packages"] {
        let rel = format!("main/binary-amd64/{name}");
        f.server.fault(&f.dist_path(&rel), Fault::Body(b"bad".to_vec()));
    }
    for r in f.server_by_hash_paths("main/binary-amd64") {
        f.server.fault(&r, Fault::Status(404));
    }
    let err = f.fails(&["pkgs", "update"]);
    assert!(err.contains("does not match the release file") && err.contains("size 3 instead of"), "{err}");
    assert_eq!(f.cache_snapshot(), before);
    f.server.clear_faults();

    // A Contents file with the right size but wrong bytes.
    let contents = f.dist_path("main/Contents-amd64.gz");
    let mut bad = std::fs::read(f.path(&format!("www{contents}"))).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    f.server.fault(&contents, Fault::Body(bad));
    for r in f.server_by_hash_paths("main") {
        f.server.fault(&r, Fault::Status(404));
    }
    let err = f.fails(&["pkgs", "update"]);
    assert!(err.contains("Contents-amd64.gz") && err.contains("SHA256"), "{err}");
    assert_eq!(f.cache_snapshot(), before);

    // A truncated index download.
    f.server.clear_faults();
    f.server.fault(&contents, Fault::Truncate(10));
    for r in f.server_by_hash_paths("main") {
        f.server.fault(&r, Fault::Truncate(10));
    }
    let err = f.fails(&["pkgs", "update"]);
    assert!(err.contains("Contents-amd64.gz"), "{err}");
    assert_eq!(f.cache_snapshot(), before);
}

trait FixtureExt {
    fn rewrite_with_extra_package(&self);
    fn server_by_hash_paths(&self, dir: &str) -> Vec<String>;
}

impl FixtureExt for Fixture {
    /// Publishes one more package, so Packages, Contents and InRelease all change.
    fn rewrite_with_extra_package(&self) {
        let mut debs = self.debs.clone();
        debs.push(Deb::new("extra", "1", "amd64").file("./usr/bin/extra", b"#!/bin/sh\n", 0o755));
        write_repo(&self.path("www/debian"), &debs, &self.key, &self.opts);
    }

    fn server_by_hash_paths(&self, dir: &str) -> Vec<String> {
        let d = self.path(&format!("www/debian/dists/{}/{dir}/by-hash/SHA256", self.opts.suite));
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| {
                format!("{}/by-hash/SHA256/{}", self.dist_path(dir), e.unwrap().file_name().to_string_lossy())
            })
            .collect()
    }
}
