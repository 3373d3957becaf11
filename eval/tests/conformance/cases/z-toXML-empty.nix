[ (builtins.toXML [ ]) (builtins.toXML { }) (builtins.toXML "") ]
