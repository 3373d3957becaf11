#!/usr/bin/env bash
# Regenerates the expectations of the conformance suite from a real Nix (Debian's nix-bin, Nix 2.8).
#
# For each case in cases/ and notyetpassing/ it runs `nix-instantiate --eval --strict CASE` from this directory and
# writes NAME.exp (standard output: the printed value and a newline) on success, or NAME.err on failure. Cases whose
# first line is `# hand-written` (all of newer/, and any moved from there to notyetpassing/) are left alone: their
# expectations follow current Nix, written from its manual, where it differs from 2.8.
#
# What NAME.err holds, and what the runner (../conformance.rs) compares: the first line of the error that starts
# with `error:`, with this directory's absolute path replaced by `<dir>` and every position `FILE:LINE:COL` (or
# `«string»:LINE:COL`) replaced by `<pos>`. The source excerpt, the `at` line and the trace are not compared: their
# layout and columns changed between 2.8 and current Nix. A message starting `error: syntax error` (Nix's bison
# parser) is compared only as "a parse error", because token names are the parser generator's, not the language's.
#
# Layout: cases/ (expectations generated here), newer/ (hand-written, for behaviour newer than 2.8 or where current
# Nix differs), notyetpassing/ (either kind; the runner requires these to fail), data/ (files the cases import or
# read; not cases). Directives are comment lines at the top of a case: `# hand-written: WHY` and
# `# flags: FEATURE…` (the runner enables those experimental features, e.g. pipe-operators, flakes). Outputs must not contain
# absolute paths other than store paths, so that the suite passes in any checkout.
#
# Usage: eval/tests/conformance/generate.sh [CASE.nix...]   (no arguments: every case)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export NIX_CONFIG="build-users-group ="
export NIX_PATH=""
export LC_ALL=C.UTF-8

command -v nix-instantiate >/dev/null || { echo "nix-instantiate not found (apt-get install nix-bin)" >&2; exit 1; }

if [ $# -eq 0 ]; then
    set -- cases/*.nix notyetpassing/*.nix
fi

normalise() {
    grep -m1 '^error:' | sed -E -e "s#${here}#<dir>#g" \
        -e 's#(«[a-z]+»|<dir>[^ :]*|/[^ :]*):[0-9]+:[0-9]+#<pos>#g' -e 's/[[:space:]]+$//'
}

n_ok=0 n_err=0 n_skip=0
for case in "$@"; do
    [ -f "$case" ] || continue
    if head -n1 "$case" | grep -q '^# hand-written'; then
        n_skip=$((n_skip + 1))
        continue
    fi
    base="${case%.nix}"
    out="$(mktemp)" err="$(mktemp)"
    rc=0
    timeout 60 nix-instantiate --eval --strict "$case" >"$out" 2>"$err" || rc=$?
    rm -f "$base.exp" "$base.err"
    if [ "$rc" -eq 0 ]; then
        cp "$out" "$base.exp"
        n_ok=$((n_ok + 1))
    else
        line="$(normalise <"$err" || true)"
        if [ -z "$line" ]; then
            echo "warning: $case: exit $rc without an error line; no expectation written" >&2
        else
            printf '%s\n' "$line" >"$base.err"
            n_err=$((n_err + 1))
        fi
    fi
    rm -f "$out" "$err"
done
echo "generated: $n_ok values, $n_err errors; skipped $n_skip hand-written cases" >&2
