with builtins; map (t: hashString t "hello") [ "md5" "sha1" "sha256" "sha512" ]
