# hand-written: a list of one or two elements is held by the value that refers to it, so Nix shows it again once before «repeated»
[ (let x = [ x ]; in x) ]
