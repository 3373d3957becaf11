#!/bin/sh
# Real third-party programs under `fhskit run` on a NixOS-like view of this host; see realworld.py for what it does
# and needs. Not part of `cargo test`: it downloads (pinned versions, cached outside the repository) and takes a
# while. usage: sh tests/realworld/run.sh [--cache DIR] [--only ID,...] [--strategies auto,patch,shim,fhs]
set -eu
cd "$(dirname "$0")/../.."
cargo build --release -j2 --bin fhskit >&2
exec python3 tests/realworld/realworld.py --fhskit "${CARGO_TARGET_DIR:-target}/release/fhskit" "$@"
