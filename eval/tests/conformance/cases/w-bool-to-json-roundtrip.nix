builtins.fromJSON (builtins.toJSON { t = true; f = false; n = null; l = [ 1 2.5 "s" ]; })
