with builtins; [ (builtins ? map) (builtins ? noSuchThing) (builtins ? builtins) ]
