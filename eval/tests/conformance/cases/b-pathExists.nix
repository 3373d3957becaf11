with builtins; [ (pathExists ../data/text.txt) (pathExists ../data/nope) (pathExists ../data/tree) (pathExists "/") ]
