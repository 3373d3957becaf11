let x = 2.5; in -x
