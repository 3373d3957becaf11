builtins.toXML [ "x" 2 ]
