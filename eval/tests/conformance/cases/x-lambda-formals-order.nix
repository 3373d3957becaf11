let f = { z, a, m ? 1 }: [ z a m ]; in f { a = 1; z = 2; }
