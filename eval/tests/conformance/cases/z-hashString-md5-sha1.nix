[ (builtins.hashString "md5" "") (builtins.hashString "sha1" "abc") ]
