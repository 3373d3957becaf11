//! Test support shared by the workspace's integration tests (a dev-dependency only; never linked into a binary).
//!
//! `require` is the one way a test declares what it needs of the machine (a tool, a toolchain, root, a kernel
//! feature). On a developer's machine an unmet requirement ends the test early with the reason on stderr; under CI
//! (`FHSKIT_REQUIRE_ALL=1`, set by `.ci/run`) it fails the test, so a missing install step cannot pass as green.
//!
//! `http` is the one HTTP server of the tests (on 127.0.0.1; a handler per test) and `rng` the one small
//! deterministic random number generator.

pub mod http;
pub mod require;
pub mod rng;

pub use require::{have_tool, is_root, unmet};
