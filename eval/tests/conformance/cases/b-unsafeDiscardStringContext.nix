with builtins; hasContext (unsafeDiscardStringContext "${toFile "x" "y"}")
