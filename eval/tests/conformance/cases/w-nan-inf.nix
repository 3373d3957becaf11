let inf = 1.0e308 * 10.0; in [ inf (-inf) (inf - inf == inf - inf) ]
