# A position after comments and blank lines.
let
  /* a block
     comment */ a = 1;   # a line comment
  p = { x = 1; }   # trailing
    //    { y = __curPos; };
in
[ p.y.line p.y.column a ]
