rec { inherit ({ x = 1; }) x; y = x + 1; }
