let a = "x"; b = 3; in "${a}-${toString b}-${"lit"}"
