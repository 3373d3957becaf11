builtins.fromJSON ''"\/\b\f\n\r\t\"\\"''
