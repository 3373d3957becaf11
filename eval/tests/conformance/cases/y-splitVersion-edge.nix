with builtins; [ (splitVersion "") (splitVersion "1..2") (splitVersion "abc") (splitVersion "1.2-3_4") ]
