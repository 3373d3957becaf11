map (p: p.column) [ __curPos __curPos ]
