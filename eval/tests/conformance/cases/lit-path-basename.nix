[ (baseNameOf ./foo) (baseNameOf ./foo/bar.txt) (baseNameOf ./.) ]
