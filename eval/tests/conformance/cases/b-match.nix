with builtins; [ (match "a(.*)c" "abbbc") (match "a" "b") (match "([0-9]+)\\.([0-9]+)" "12.34") (match ".*" "") ]
