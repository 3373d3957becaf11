with builtins; [ (hasContext "plain") (hasContext "${toFile "x" "y"}") ]
