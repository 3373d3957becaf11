builtins.groupBy (x: "k") [ ]
