{ a = 1; b = throw "b"; } == { a = 2; b = throw "b"; }
