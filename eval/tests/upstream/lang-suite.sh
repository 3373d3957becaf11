#!/usr/bin/env bash
# Runs the language test suite of a NixOS/nix checkout (tests/functional/lang) against `fhskit instantiate` (or,
# with --nix, against the installed nix-instantiate) the way that suite's own driver (tests/functional/lang.sh) does:
# from tests/functional, with TEST_VAR=foo, a dummy store at /nix/store, each case's .flags, NIX_PATH=lang/dir3:
# lang/dir4 and HOME=/fake-home for eval-okay, `--eval --strict --show-trace` for eval-fail cases without flags,
# `--eval --xml --no-location --strict` where an .exp.xml exists, `$(pwd)` replaced by /pwd and .postprocess
# applied. Nothing of the suite is copied: it is read where it is.
#
# A case passes as the driver's exit-code check does, and the comparisons are counted apart:
#   eval-okay: exit 0 and standard output equal to .exp (.exp.xml); "stderr too" also needs .err.exp (or nothing).
#   eval-fail: exit 1 (not a crash, not a hang); "message" also needs stderr's first `error:` line to equal the
#              .err.exp's, "stderr too" the whole .err.exp.
# Every case runs under a time limit (default 30 s): a hang is a failure and is named as one.
#
# usage: eval/tests/upstream/lang-suite.sh [--nix] [--fhskit BIN] [--timeout S] [--verbose] [--only PATTERN] NIX_SRC
#   NIX_SRC   a checkout of github.com/NixOS/nix (the suite measured: see docs/eval.md)
#   --nix     run the installed nix-instantiate instead (Nix 2.8 from nix-bin: the anchor)
#   --fhskit  the fhskit binary (default: target/release/fhskit of this checkout, built if missing)
#   --verbose print every failing case with the difference
# Exit status: 0 when it ran (whatever the counts), 2 on bad usage.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
tool=fhskit fhskit="" limit=30 verbose=0 only="" src=""
while [ $# -gt 0 ]; do
    case "$1" in
        --nix) tool=nix ;;
        --fhskit) fhskit="$2"; shift ;;
        --timeout) limit="$2"; shift ;;
        --verbose) verbose=1 ;;
        --only) only="$2"; shift ;;
        -*) echo "error: unknown option $1" >&2; exit 2 ;;
        *) src="$1" ;;
    esac
    shift
done
if [ -z "$src" ] || [ ! -d "$src/tests/functional/lang" ]; then
    echo "error: give a NixOS/nix checkout (no tests/functional/lang under '${src}')" >&2
    exit 2
fi
src="$(cd "$src" && pwd)"

work="$(mktemp -d "${TMPDIR:-/tmp}/fhskit-lang.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/out"
if [ "$tool" = nix ]; then
    command -v nix-instantiate >/dev/null || { echo "error: nix-instantiate not found (apt-get install nix-bin)" >&2; exit 2; }
    real="$(command -v nix-instantiate)"
    # The driver's nix.conf (common/init.sh): flakes enabled, traces shown. Nix also warns about a missing build
    # users group, which evaluation does not need.
    printf 'experimental-features = nix-command flakes\nshow-trace = true\nbuild-users-group =\n' >"$work/nix.conf"
    printf '#!/bin/sh\nNIX_USER_CONF_FILES=%s exec %s "$@"\n' "$work/nix.conf" "$real" >"$work/bin/nix-instantiate"
else
    if [ -z "$fhskit" ]; then
        fhskit="${CARGO_TARGET_DIR:-$repo/target}/release/fhskit"
        [ -x "$fhskit" ] || (cd "$repo" && cargo build --release -j2 --bin fhskit >/dev/null 2>&1) ||
            { echo "error: building fhskit failed" >&2; exit 2; }
    fi
    fhskit="$(realpath "$fhskit")"
    # The driver's NIX_REMOTE=dummy:// store (paths under /nix/store, nothing written) and the settings of its
    # nix.conf (flakes enabled, traces shown), given before the case's own flags so that those win.
    printf '#!/bin/sh\nexec %s instantiate --store dummy:// --option experimental-features "nix-command flakes" --show-trace "$@"\n' \
        "$fhskit" >"$work/bin/nix-instantiate"
fi
chmod +x "$work/bin/nix-instantiate"
export PATH="$work/bin:$PATH"
export TEST_VAR=foo NIX_REMOTE=dummy:// NIX_STORE_DIR=/nix/store LC_ALL=C.UTF-8
unset NIX_PATH

cd "$src/tests/functional"
pwd_re="$(pwd)"
tmp="$work/out"

postprocess() {
    if [ -e "lang/$1.postprocess" ]; then bash "lang/$1.postprocess" "$tmp/$1" >/dev/null 2>&1; fi
}

first_error() { grep -m1 '^error:' "$1" 2>/dev/null; }

declare -a failed=()
okay_n=0 okay_pass=0 okay_full=0 okay_disabled=0
fail_n=0 fail_pass=0 fail_msg=0 fail_full=0 hangs=0

note_failure() { failed+=("$1: $2"); }

show_diff() {
    [ "$verbose" = 1 ] || return 0
    echo "---- $1: $2"
    diff "$3" "$4" | head -20
}

for f in lang/eval-okay-*.nix; do
    i="$(basename "$f" .nix)"
    [ -n "$only" ] && [[ "$i" != $only ]] && continue
    if [ ! -e "lang/$i.exp.xml" ] && [ -e "lang/$i.exp-disabled" ]; then
        okay_disabled=$((okay_disabled + 1))
        continue
    fi
    okay_n=$((okay_n + 1))
    if [ -e "lang/$i.exp.xml" ]; then
        timeout "$limit" nix-instantiate --eval --xml --no-location --strict "lang/$i.nix" >"$tmp/$i.out" 2>"$tmp/$i.err"
        rc=$?
        exp="lang/$i.exp.xml" experr=/dev/null
    else
        flags=()
        if [ -e "lang/$i.flags" ]; then read -r -a flags <"lang/$i.flags"; fi
        timeout "$limit" env NIX_PATH=lang/dir3:lang/dir4 HOME=/fake-home \
            nix-instantiate "${flags[@]}" --eval --strict "lang/$i.nix" >"$tmp/$i.out" 2>"$tmp/$i.err"
        rc=$?
        exp="lang/$i.exp" experr="lang/$i.err.exp"
        [ -e "$experr" ] || experr=/dev/null
    fi
    sed -i "s!$pwd_re!/pwd!g" "$tmp/$i.out" "$tmp/$i.err"
    postprocess "$i"
    if [ "$rc" = 124 ]; then
        hangs=$((hangs + 1)); note_failure "$i" "hang (killed after ${limit} s)"
    elif [ "$rc" != 0 ]; then
        note_failure "$i" "exit $rc: $(first_error "$tmp/$i.err" || head -c 200 "$tmp/$i.err")"
    elif ! cmp -s "$tmp/$i.out" "$exp"; then
        note_failure "$i" "stdout differs"
        show_diff "$i" stdout "$exp" "$tmp/$i.out"
    else
        okay_pass=$((okay_pass + 1))
        if cmp -s "$tmp/$i.err" "$experr"; then
            okay_full=$((okay_full + 1))
        else
            show_diff "$i" "stderr (value right)" "$experr" "$tmp/$i.err"
        fi
    fi
done

for f in lang/eval-fail-*.nix; do
    i="$(basename "$f" .nix)"
    [ -n "$only" ] && [[ "$i" != $only ]] && continue
    fail_n=$((fail_n + 1))
    if [ -e "lang/$i.flags" ]; then
        flags="$(sed -e 's/#.*//' <"lang/$i.flags")"
    else
        flags="--eval --strict --show-trace"
    fi
    # shellcheck disable=SC2086 # the flags are words, as in the driver
    timeout "$limit" nix-instantiate $flags "lang/$i.nix" >/dev/null 2>"$tmp/$i.err"
    rc=$?
    sed -i "s!$pwd_re!/pwd!g" "$tmp/$i.err"
    postprocess "$i"
    if [ "$rc" = 124 ]; then
        hangs=$((hangs + 1)); note_failure "$i" "hang (killed after ${limit} s)"
    elif [ "$rc" != 1 ]; then
        note_failure "$i" "exit $rc (expected 1): $(head -c 200 "$tmp/$i.err")"
    else
        fail_pass=$((fail_pass + 1))
        if [ "$(first_error "$tmp/$i.err")" = "$(first_error "lang/$i.err.exp")" ]; then
            fail_msg=$((fail_msg + 1))
            if cmp -s "$tmp/$i.err" "lang/$i.err.exp"; then fail_full=$((fail_full + 1)); fi
        else
            show_diff "$i" "error message" <(first_error "lang/$i.err.exp") <(first_error "$tmp/$i.err")
        fi
    fi
done

commit="$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "suite: $src (commit $commit), tool: $tool"
echo "eval-okay: $okay_pass/$okay_n pass (exit 0, stdout as expected), $okay_full of them with stderr as expected too; $okay_disabled disabled by the suite"
echo "eval-fail: $fail_pass/$fail_n pass (exit 1), $fail_msg with the expected error line, $fail_full with the whole stderr as expected"
echo "hangs: $hangs"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "failing cases:"
    printf '  %s\n' "${failed[@]}"
fi
