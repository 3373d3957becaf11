//! Substitution in the builder, end to end: `fhskit build` fetches an output from a binary cache (signature
//! checked) instead of building it, and when the cache fails or its path is not signed by a trusted key, says so in
//! one warning and builds.

mod build_support;

use build_support::{Env, User, text};

#[test]
fn build_substitutes_and_falls_back_with_one_warning() {
    if !test_support::is_root() {
        test_support::unmet("root (the builder's tests run as root here)");
        return;
    }
    let Some(env) = Env::new(User::Root) else { return };
    let f = env.nix("hello", r#"mk "hello" "echo building; echo hi > $out""#);
    let f = f.to_str().unwrap();
    let path = env.ok(&["build", f]).trim().to_owned();
    let w = env.work();
    let (sk, pk) = (w.join("k.sk"), w.join("k.pk"));
    env.ok(&["store", "generate-key", "k-1", sk.to_str().unwrap(), pk.to_str().unwrap()]);
    let pk = std::fs::read_to_string(&pk).unwrap();
    let cache = w.join("cache");
    env.ok(&[
        "store",
        "copy",
        "--to",
        &format!("file://{}?secret-key={}", cache.display(), sk.display()),
        &path,
    ]);
    let forget = || {
        let _ = std::fs::remove_file(w.join("result"));
        env.ok(&["store", "delete", &path]);
    };
    let config = |body: &str| {
        std::fs::create_dir_all(w.join("config/fhskit")).unwrap();
        std::fs::write(w.join("config/fhskit/config.toml"), body).unwrap();
    };

    forget();
    config(&format!(
        "[cache]\nsubstituters = [\"file://{}\"]\ntrusted-public-keys = [\"{pk}\"]\n",
        cache.display()
    ));
    let out = env.run(&["build", f]);
    let err = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("copying path '{path}' from a substituter")), "{err}");
    assert!(!err.contains("building '"), "substituted, not built: {err}");
    assert_eq!(env.read(&path), "hi\n");

    // A cache that refuses connections, and one whose path is not signed by a trusted key: one warning each
    // time, then the build.
    for body in [
        format!("[cache]\nsubstituters = [\"http://127.0.0.1:1\"]\ntrusted-public-keys = [\"{pk}\"]\n"),
        format!("[cache]\nsubstituters = [\"file://{}\"]\n", cache.display()),
    ] {
        forget();
        config(&body);
        let out = env.run(&["build", f]);
        let err = text(&out);
        assert!(out.status.success(), "{err}");
        assert_eq!(err.matches("warning:").count(), 1, "{err}");
        assert!(err.contains("warning: substitution failed; building instead"), "{err}");
        assert!(err.contains("building '"), "{err}");
        assert_eq!(env.read(&path), "hi\n");
    }
    // --option substituters '' turns them off: no warning at all.
    forget();
    let out = env.run(&["--option", "substituters", "", "build", f]);
    let err = text(&out);
    assert!(out.status.success() && !err.contains("warning:") && err.contains("building '"), "{err}");
}
