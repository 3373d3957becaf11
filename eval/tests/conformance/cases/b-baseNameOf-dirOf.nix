with builtins; [ (baseNameOf "/a/b/c") (baseNameOf "/a/b/") (dirOf "/a/b/c") (dirOf "a") (dirOf "/") (baseNameOf "") ]
