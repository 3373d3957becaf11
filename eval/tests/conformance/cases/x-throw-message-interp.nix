let n = 3; in throw "bad value ${toString n}"
