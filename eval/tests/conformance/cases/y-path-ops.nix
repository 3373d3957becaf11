let p = ../data; in [ (baseNameOf (p + "/text.txt")) (builtins.pathExists (p + "/tree/link")) (builtins.readFile (p + "/tree/link")) ]
