let d = derivation { name = "oc"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; }; in builtins.getContext "${d.dev}"
