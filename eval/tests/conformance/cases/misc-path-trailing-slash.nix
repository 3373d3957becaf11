baseNameOf ./a/b
