let x = "k"; s = { k = false; }; in assert s."${x}"   ; 1
