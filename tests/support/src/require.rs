//! Requirements of a test: report one that is not met, by failing under CI or by ending the test on a developer's
//! machine with the reason printed.

use std::fmt::Display;
use std::process::{Command, Stdio};

/// The variable that turns every unmet requirement into a failure (`.ci/run` sets it).
pub const REQUIRE_ALL: &str = "FHSKIT_REQUIRE_ALL";

/// True when unmet requirements must fail the test (CI).
pub fn require_all() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Reports that the test cannot run here because `what` is missing. Under CI this panics, failing the test; on a
/// developer's machine it prints the reason and returns, and the caller returns at once.
///
/// ```ignore
/// if !test_support::have_tool("qemu-aarch64") {
///     return test_support::unmet("qemu-aarch64 (package qemu-user)");
/// }
/// ```
#[track_caller]
pub fn unmet(what: impl Display) {
    if require_all() {
        panic!(
            "requirement not met: {what} ({REQUIRE_ALL} is set, so every requirement of a test must be met)"
        );
    }
    eprintln!("requirement not met, test not run: {what} (set {REQUIRE_ALL}=1 to make this a failure)");
}

/// True if `tool` is found on `PATH`.
pub fn have_tool(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", tool])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_builtin_and_a_missing_tool() {
        assert!(have_tool("sh"));
        assert!(!have_tool("fhskit-no-such-tool-anywhere"));
    }
}
