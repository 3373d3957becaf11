toString [ true false null "x" [ ] 5 ]
