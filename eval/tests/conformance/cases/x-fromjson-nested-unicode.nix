builtins.fromJSON ''{"k\u00e9y": ["\ud83d\ude00", 1e-2 , 12345678901234]}''
