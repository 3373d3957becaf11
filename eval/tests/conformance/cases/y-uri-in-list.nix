[ http://a.b urn:x:y ]
