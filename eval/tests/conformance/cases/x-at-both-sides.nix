let f = { a ? 5 }@args: [ a (args ? a) ]; in f { }
