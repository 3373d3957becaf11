[ http://example.org/foo?x=1 urn:isbn:0451450523 mailto:x@y.z ]
