let n = "name"; in baseNameOf ./dir/${n}.txt
