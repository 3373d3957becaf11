//! End to end: the one-line errors and typed hints for arguments of the wrong kind (a directory given to `run` and
//! `generate`, a Nix file given to `env`).

use std::process::{Command, Stdio};

fn fails(args: &[&str], store: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fhskit"))
        .args(args)
        .env("FHSKIT_STORE", store)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "fhskit {args:?}");
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn wrong_kinds_of_arguments_say_what_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let dir = tmp.path().join("app");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    for args in [&["run", d][..], &["generate", d][..]] {
        let err = fails(args, &store);
        assert_eq!(
            err,
            format!(
                "error: cannot run {d}: it is a directory, not a program\n\
                 hint: name the program inside it (`fhskit patch` takes whole directories)\n"
            ),
            "fhskit {args:?}"
        );
    }
    let nix = tmp.path().join("env.nix");
    std::fs::write(&nix, "{ }\n").unwrap();
    let n = nix.to_str().unwrap();
    for args in [&["env", "build", n][..], &["env", "run", n, "--", "true"][..], &["env", "enter", n][..]] {
        let err = fails(args, &store);
        assert!(err.starts_with(&format!("error: cannot use {n} as an env: it is a Nix file")), "{err}");
        assert!(
            err.ends_with(&format!("hint: build a buildFHSEnv expression with `fhskit build {n}`\n")),
            "{err}"
        );
        assert_eq!(err.lines().count(), 2, "{err}");
    }
}

/// Log lines and errors written to a pipe are plain text: no colour escapes, even when the terminal type would
/// allow colour (it is stderr that decides).
#[test]
fn no_colour_in_text_written_to_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local?root={}", tmp.path().join("root").display());
    let file = tmp.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fhskit"))
            .args(args)
            .env("FHSKIT_STORE", &store)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let logged = run(&["-vv", "store", "add", file.to_str().unwrap()]);
    assert!(logged.status.success());
    let err = String::from_utf8(logged.stderr).unwrap();
    // There are log lines to look at, and none is coloured.
    assert!(err.contains("DEBUG") || err.contains("TRACE"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
    let failed = run(&["-vv", "store", "path-info", "/nix/store/00000000000000000000000000000000-none"]);
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8(failed.stderr).unwrap();
    assert!(err.contains("error: "), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}
