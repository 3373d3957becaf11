[ "\a\b\f\v" "\\u00e9" "tab\there" ]
