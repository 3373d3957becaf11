#!/usr/bin/env python3
"""The top-level attributes of a nixpkgs tree whose `drvPath` (or non-derivation value) nix-instantiate evaluates
without an error that `tryEval` cannot catch (a missing attribute, a type error): those are the attributes a
comparison or a benchmark of "every package" can use, since one such error ends a whole evaluation.

One evaluation goes through the attributes in order, tracing each name before it is forced; when it fails, the
last name traced is the culprit, and the next evaluation starts after it. The result is cached by the tree's
commit (or path) in CACHE_DIR, since it costs one evaluation per failing attribute.

usage: evaluable-attrs.py TREE STORE CACHE_DIR   (prints the JSON list of attribute names)
  STORE: the chroot store nix-instantiate writes the tree's sources into (`local?root=DIR`).
"""
import hashlib, json, os, subprocess, sys

EXPR = """let
  pkgs = import {tree} {{ }};
  names = builtins.fromJSON (builtins.readFile {names});
  try = v: let r = builtins.tryEval v; in if r.success then r.value else null;
  drvOf = n: builtins.trace "evaluable-attrs: ${{n}}" (try (let v = pkgs.${{n}}; in
    if builtins.isAttrs v && (v.type or null) == "derivation" then builtins.seq v.drvPath v.drvPath else null));
in builtins.listToAttrs (map (n: {{ name = n; value = drvOf n; }}) names)"""


def nix(store, *args):
    cmd = ["nix-instantiate", "--store", store, "--read-write-mode", *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[-2])
    tree, store, cache_dir = sys.argv[1:4]
    rev = subprocess.run(["git", "-C", tree, "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip()
    key = rev or hashlib.sha256(os.path.abspath(tree).encode()).hexdigest()[:16]
    cache = os.path.join(cache_dir, f"evaluable-attrs-{key}.json")
    if os.path.exists(cache):
        print(open(cache).read())
        return
    p = nix(store, "--eval", "--json", "-E", f"builtins.attrNames (import {tree} {{ }})")
    if p.returncode != 0:
        sys.exit(f"error: listing the attributes of {tree} failed: {p.stderr.strip()[-500:]}")
    names = json.loads(p.stdout)
    good, todo = [], list(names)
    list_file = os.path.join(cache_dir, f".evaluable-attrs-{os.getpid()}.json")
    os.makedirs(cache_dir, exist_ok=True)
    try:
        while todo:
            with open(list_file, "w") as f:
                json.dump(todo, f)
            p = nix(store, "--eval", "--strict", "--json", "-E", EXPR.format(tree=tree, names=list_file))
            if p.returncode == 0:
                good.extend(todo)
                break
            seen = [line.split("evaluable-attrs: ", 1)[1] for line in p.stderr.splitlines()
                    if line.startswith("trace: evaluable-attrs: ")]
            if not seen:
                sys.exit(f"error: evaluating the attributes of {tree} failed before any: {p.stderr.strip()[-500:]}")
            at = todo.index(seen[-1])
            good.extend(todo[:at])
            todo = todo[at + 1:]
    finally:
        if os.path.exists(list_file):
            os.remove(list_file)
    tmp = f"{cache}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(good, f)
    os.rename(tmp, cache)
    print(json.dumps(good))


if __name__ == "__main__":
    main()
