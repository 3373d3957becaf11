with builtins; [ (bitAnd (-1) 255) (bitOr (-256) 15) (bitXor (-1) 0) ]
