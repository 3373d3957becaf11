baseNameOf (./a + ./b)
