with builtins; [ (bitAnd 12 10) (bitOr 12 10) (bitXor 12 10) ]
