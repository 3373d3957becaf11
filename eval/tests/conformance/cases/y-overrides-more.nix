let
  s = rec { a = 1; b = a + 1; f = x: x + a; c = "k"; __overrides = { a = 10; c = "o"; n = "new"; }; };
in [ s.a s.b (s.f 1) s.c s.n (builtins.attrNames s) ]
