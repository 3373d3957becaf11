if true then "ok" else throw "no"
