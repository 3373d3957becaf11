let
  a = 1;
  p =
    __curPos;
in
[ p.line p.column ]
