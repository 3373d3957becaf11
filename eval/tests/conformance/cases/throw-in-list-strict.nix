[ 1 (throw "element") ]
