//! End to end: a command whose reader has gone (`fhskit … | head -1`) ends quietly with success, whether it prints
//! through `println!` (eval) or through a buffered writer (store), instead of panicking or printing an error.

use std::process::{Command, Stdio};

/// Runs fhskit with stdout a pipe whose read end is already closed; returns the exit status and stderr.
fn with_closed_stdout(args: &[&str], store: &std::path::Path) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_fhskit"))
        .args(args)
        .env("FHSKIT_STORE", store)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn closed_stdout_ends_quietly_with_success() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "hello\n").unwrap();
    let store = tmp.path().join("store");
    for args in [
        &["eval", "-E", "builtins.genList (x: x) 1000", "--strict"][..],
        &["eval", "-E", "1"][..],
        &["store", "hash", "--type", "sha256", file.to_str().unwrap()][..],
        &["store", "dump", file.to_str().unwrap()][..],
    ] {
        let (status, err) = with_closed_stdout(args, &store);
        assert!(status.success(), "fhskit {args:?}: {status}, stderr: {err}");
        assert_eq!(err, "", "fhskit {args:?} says nothing");
    }
    // A real error still fails loudly.
    let (status, err) = with_closed_stdout(&["store", "hash", "--type", "sha256", "/nonexistent"], &store);
    assert!(!status.success());
    assert!(err.starts_with("error: "), "{err}");
}
