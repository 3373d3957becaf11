[ (toString [ ]) (toString [ null ]) (toString [ [ ] [ ] ]) ]
