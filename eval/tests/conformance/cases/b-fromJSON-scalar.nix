map builtins.fromJSON [ "1" "\"s\"" "null" "[]" "{}" "-0.5" "1e3" ]
