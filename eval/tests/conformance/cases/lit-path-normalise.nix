[ (baseNameOf ./a/../b) (baseNameOf ./a/./c) ]
