let f = args@{ a, ... }: [ a args.b ]; in f { a = 1; b = 2; }
