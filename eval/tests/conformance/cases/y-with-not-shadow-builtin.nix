[ (with { true = false; }; true) (let true = false; in true) (with { map = 1; }; builtins.isFunction map) ]
