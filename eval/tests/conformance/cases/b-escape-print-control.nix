"\r\n\t"
