builtins.path { path = ../data/text.txt; name = "t"; sha256 = "0mnb27g7yfadwm57pl87846gwk9dd1js7qjncfca0xzgg5b2jfp9"; }
