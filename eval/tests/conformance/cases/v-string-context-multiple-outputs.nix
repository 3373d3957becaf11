let d = derivation { name = "mo"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "lib" ]; }; in builtins.getContext "${d.lib}${d.out}"
