//! ld-shim: a loader shim installed as a program's `PT_INTERP` that loads the real `ld.so` named by nix-ld's
//! variables and passes the configured library path on, without leaking it to children.
//!
//! It shares no crate with the rest of the workspace (no std, no libc). Not implemented yet: the shim arrives with
//! its issue.
#![no_std]
