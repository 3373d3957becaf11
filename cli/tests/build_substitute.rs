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

    // Build logs: uploaded with copy-log, served by `fhskit serve`, and read back by `fhskit log` from the cache
    // once the local one is gone.
    env.ok(&["store", "copy-log", "--to", &format!("file://{}", cache.display()), &path]);
    let drv = env.ok(&["store", "path-info", "--json", &path]);
    let drv =
        serde_json::from_str::<serde_json::Value>(&drv).unwrap()[0]["deriver"].as_str().unwrap().to_owned();
    let base = drv.rsplit('/').next().unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(cache.join("log").join(&base)).unwrap(), "building\n");
    let mut serve = env
        .command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(serve.stderr.take().unwrap()), &mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    let out_base = path.rsplit('/').next().unwrap();
    let req = format!("GET /log/{out_base} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::io::Write::write_all(&mut conn, req.as_bytes()).unwrap();
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut conn, &mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200") && resp.ends_with("\r\n\r\nbuilding\n"), "{resp}");
    serve.kill().unwrap();
    serve.wait().unwrap();
    std::fs::remove_dir_all(env.store_base().join("var/log")).unwrap();
    assert!(!env.run(&["log", &drv]).status.success());

    forget();
    config(&format!(
        "[cache]\nsubstituters = [\"file://{}\"]\ntrusted-public-keys = [\"{pk}\"]\n",
        cache.display()
    ));
    assert_eq!(env.ok(&["log", &drv]), "building\n", "the log, from the cache");
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
