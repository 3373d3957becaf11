# A file the suite imports to check that a parse error inside an import is reported.
{ a = ; }
