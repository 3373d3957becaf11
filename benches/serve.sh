# Sourced by the benchmarks that need a package repository: serve_dir DIR serves DIR over HTTP on a free port of
# 127.0.0.1 and returns once the server answers (a `pkgs update` started earlier finds the port closed). Sets `port`
# and `server` (the server's pid; the caller's EXIT trap kills it).
serve_dir() {
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$1" "$port" >/dev/null 2>&1 &
    server=$!
    python3 -c 'import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close(); break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("error: the repository server on port " + sys.argv[1] + " did not answer")' "$port"
}
