assert ({ a,   b ? 1 + 2  # why
   , ... }@args: a) == null; 1
