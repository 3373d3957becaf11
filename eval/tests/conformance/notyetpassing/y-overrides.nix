# __overrides in a rec set (an old feature current Nix still has) is not implemented.
(rec { a = 1; b = a + 1; __overrides = { a = 10; }; }).b
