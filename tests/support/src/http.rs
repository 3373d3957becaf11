//! One HTTP/1.1 server for every test that needs the network: it listens on 127.0.0.1 (tests never go further),
//! answers each request with what the test's handler returns, and counts requests (in all and per path). Each
//! connection is served on its own thread and closed after one response. [`Server::files`] serves a directory.
//! Dropping the server stops it (a test can take its cache or mirror offline that way).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, `PUT`, …
    pub method: String,
    /// The path without the query (`/nar/x.nar.xz`).
    pub path: String,
    /// The query after `?`, if any.
    pub query: Option<String>,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (read up to `Content-Length`).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// What the server sends back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many bytes of the body, then close: a connection dropped in the middle.
    pub cut_after: Option<usize>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: Vec::new(), body: body.into(), cut_after: None }
    }

    /// `200 OK` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Response {
        Response::new(200, body)
    }

    /// `404 Not Found`, empty.
    pub fn not_found() -> Response {
        Response::new(404, Vec::new())
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Announces the whole body but sends only its first `n` bytes.
    pub fn cut_after(mut self, n: usize) -> Response {
        self.cut_after = Some(n);
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running server; it serves until it is dropped.
#[derive(Debug)]
pub struct Server {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    requests: Arc<AtomicUsize>,
    hits: Mutex<HashMap<String, usize>>,
    stop: AtomicBool,
}

impl Server {
    /// Serves every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1");
        let port = listener.local_addr().expect("the listener's address").port();
        let shared = Arc::new(Shared::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let state = shared.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (handler, state) = (handler.clone(), state.clone());
                std::thread::spawn(move || state.serve(stream, &*handler));
            }
        });
        Server { port, shared, accept: Some(accept) }
    }

    /// Serves the files under `root` (GET and HEAD; 404 for anything else, and for paths with `..`).
    pub fn files(root: impl Into<PathBuf>) -> Server {
        let root = root.into();
        Server::start(move |req| {
            let file = root.join(req.path.trim_start_matches('/'));
            match std::fs::read(&file) {
                Ok(body) if !req.path.contains("..") && file.is_file() => Response::ok(body),
                _ => Response::not_found(),
            }
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>` followed by `path` (`""` for the base URL).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The request counter, to watch from elsewhere (it outlives the server).
    pub fn request_counter(&self) -> Arc<AtomicUsize> {
        self.shared.requests.clone()
    }

    /// Requests for `path` (without the query) so far.
    pub fn hits(&self, path: &str) -> usize {
        self.shared.hits.lock().unwrap_or_else(|e| e.into_inner()).get(path).copied().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which sees the flag and ends; requests in flight finish on their threads.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Shared {
    fn serve(&self, stream: TcpStream, handler: &Handler) {
        let Ok(mut out) = stream.try_clone() else { return };
        let Some(req) = read_request(stream) else { return };
        self.requests.fetch_add(1, Ordering::SeqCst);
        *self.hits.lock().unwrap_or_else(|e| e.into_inner()).entry(req.path.clone()).or_default() += 1;
        let resp = handler(&req);
        let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
        for (n, v) in &resp.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if resp.status != 304 {
            head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let body = match (req.method.as_str(), resp.cut_after) {
            ("HEAD", _) => &[][..],
            (_, Some(n)) => &resp.body[..n.min(resp.body.len())],
            _ => &resp.body[..],
        };
        let _ = out.write_all(head.as_bytes()).and_then(|()| out.write_all(body)).and_then(|()| out.flush());
    }
}

fn read_request(stream: TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut words = first.split_whitespace();
    let method = words.next()?.to_owned();
    let target = words.next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, query, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url_path: &str, port: u16, extra: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {url_path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_with_the_handler_and_counts() {
        let server = Server::start(|req| match req.header("if-none-match") {
            Some("\"v1\"") => Response::new(304, Vec::new()),
            _ => Response::ok(format!("{}?{}", req.path, req.query.clone().unwrap_or_default()))
                .header("ETag", "\"v1\""),
        });
        let out = get("/a?x=1", server.port(), "");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n/a?x=1"), "{out}");
        let out = get("/a", server.port(), "If-None-Match: \"v1\"\r\n");
        assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out}");
        assert_eq!((server.requests(), server.hits("/a"), server.hits("/b")), (2, 2, 0));
    }

    #[test]
    fn serves_files_and_cuts_when_asked() {
        let dir = std::env::temp_dir().join(format!("test-support-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), "hello").unwrap();
        let files = Server::files(&dir);
        assert!(get("/f", files.port(), "").ends_with("\r\n\r\nhello"));
        assert!(get("/../f", files.port(), "").starts_with("HTTP/1.1 404"));
        assert!(get("/g", files.port(), "").starts_with("HTTP/1.1 404"));
        let cut = Server::start(|_| Response::ok("0123456789").cut_after(4));
        let out = get("/", cut.port(), "");
        assert!(out.contains("Content-Length: 10\r\n") && out.ends_with("\r\n\r\n0123"), "{out}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dropped_server_is_gone() {
        let server = Server::start(|_| Response::ok("x"));
        let port = server.port();
        drop(server);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
