"\q\w\e"
