# The regex crate chooses different matches than Nix's libstdc++ std::regex here (leftmost-first alternation and repeated-group captures against POSIX leftmost-longest); not fixed.
builtins.match "(a*)*" "aaa"
