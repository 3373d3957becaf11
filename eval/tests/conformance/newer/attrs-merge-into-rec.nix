# hand-written: a path extending a `rec` literal becomes part of it, evaluated in its scope (nixpkgs issue 9020, kept for compatibility)
{ a = rec { b = c + 1; d = 2; }; a.c = d + 3; }.a.b
