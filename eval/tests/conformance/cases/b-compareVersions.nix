with builtins; [ (compareVersions "1.2" "1.10") (compareVersions "1.0" "1.0") (compareVersions "2.0pre" "2.0") (compareVersions "1.2a" "1.2") ]
