with builtins; [ (compareVersions "" "") (compareVersions "1" "") (compareVersions "a" "1") (compareVersions "1.0.0" "1.0") (compareVersions "2.3pre1" "2.3") (compareVersions "1_2" "1.2") ]
