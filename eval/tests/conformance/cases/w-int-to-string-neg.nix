[ (toString (-5)) "${toString (-0)}" ]
