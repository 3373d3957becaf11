//! `fhskit serve`: the local store as an HTTP binary cache (nix-serve's job), readable by Nix and fhskit. A
//! small HTTP/1.1 server on plain threads (one per connection, keep-alive, at most `max_connections` at once,
//! others get 503): `GET`/`HEAD` of `/nix-cache-info`, `/<hash>.narinfo` (signed on the fly with the serve keys,
//! plus the signatures the store holds), `/nar/<hash>-<narhash>.nar` (the nix-serve form; `/nar/<hash>.nar` too)
//! streamed straight from the store with its exact `Content-Length`, `/<hash>.ls` listings, `/log/<drv>` build
//! logs (of a derivation, or of the derivation of an output) and the store's package map as
//! `/fhskit-packages/<key>` (signed on the fly, see [`crate::packages`]). NARs are served
//! uncompressed: on a local network that is faster than compressing on the fly, and clients read it as
//! `Compression: none`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use store::{Store, StorePath};

use crate::compression::Compression;
use crate::error::{Result, io_err};
use crate::keys::SecretKey;
use crate::narinfo::NarInfo;

/// Finds the build log of a derivation (the builder keeps them; `serve` only hands them out).
pub type LogReader = std::sync::Arc<dyn Fn(&StorePath) -> Option<Vec<u8>> + Send + Sync>;

/// How `serve` behaves.
#[derive(Clone)]
pub struct ServeOptions {
    /// Keys that sign every narinfo served.
    pub sign_keys: Vec<SecretKey>,
    /// The `Priority` announced in `nix-cache-info`.
    pub priority: i64,
    pub max_connections: usize,
    /// How long an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Answers `/log/<drv>`; without it such requests get 404.
    pub logs: Option<LogReader>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("sign_keys", &self.sign_keys)
            .field("priority", &self.priority)
            .field("max_connections", &self.max_connections)
            .field("logs", &self.logs.is_some())
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            sign_keys: Vec::new(),
            priority: 30,
            max_connections: 256,
            idle_timeout: Duration::from_secs(60),
            logs: None,
        }
    }
}

/// Serves `store` on `listener` until the process ends.
pub fn serve(store: &Store, listener: TcpListener, options: &ServeOptions) -> Result<()> {
    let active = AtomicUsize::new(0);
    let addr = listener.local_addr().map_or_else(|_| "the listener".to_owned(), |a| a.to_string());
    std::thread::scope(|s| -> Result<()> {
        for conn in listener.incoming() {
            let stream = match conn {
                Ok(s) => s,
                // A client that vanished between SYN and accept, or a momentary lack of descriptors: keep serving.
                Err(e) => {
                    tracing::debug!("accept on {addr}: {e}");
                    if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    continue;
                }
            };
            if active.load(Ordering::Acquire) >= options.max_connections {
                let mut stream = stream;
                let _ = respond_simple(
                    &mut stream,
                    503,
                    "Service Unavailable",
                    "too many connections\n",
                    false,
                    true,
                );
                continue;
            }
            active.fetch_add(1, Ordering::AcqRel);
            let active = &active;
            let spawned = std::thread::Builder::new().stack_size(256 * 1024).spawn_scoped(s, move || {
                if let Err(e) = connection(store, stream, options) {
                    tracing::debug!("connection: {e}");
                }
                active.fetch_sub(1, Ordering::AcqRel);
            });
            if let Err(e) = spawned {
                active.fetch_sub(1, Ordering::AcqRel);
                tracing::debug!("cannot start a connection thread: {e}");
            }
        }
        Err(io_err("accept connections on", addr)(std::io::Error::other("the listener stopped")))
    })
}

fn respond_simple(
    w: &mut impl Write,
    code: u16,
    reason: &str,
    body: &str,
    head_only: bool,
    close: bool,
) -> std::io::Result<()> {
    write!(
        w,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )?;
    if !head_only {
        w.write_all(body.as_bytes())?;
    }
    w.flush()
}

struct Request {
    method: String,
    path: String,
    keep_alive: bool,
    has_body: bool,
}

/// Reads one request head; `Ok(None)` at a clean end of the connection.
fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut head = Vec::with_capacity(512);
    loop {
        let before = head.len();
        let n = r.read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        if head.len() > 32 * 1024 {
            return Err(std::io::Error::other("request head too large"));
        }
        let line = &head[before..];
        if (line == b"\r\n" || line == b"\n") && before > 0 {
            break;
        }
        if (line == b"\r\n" || line == b"\n") && before == 0 {
            head.clear(); // stray blank line between requests
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(std::io::Error::other("malformed request")),
    }
    let version = req.version.unwrap_or(1);
    let mut keep_alive = version == 1;
    let mut has_body = false;
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("connection") {
            if value.contains("close") {
                keep_alive = false;
            } else if value.contains("keep-alive") {
                keep_alive = true;
            }
        } else if (h.name.eq_ignore_ascii_case("content-length") && value.trim() != "0")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
        {
            has_body = true;
        }
    }
    Ok(Some(Request {
        method: req.method.unwrap_or("").to_owned(),
        path: req.path.unwrap_or("/").to_owned(),
        keep_alive,
        has_body,
    }))
}

fn connection(store: &Store, stream: TcpStream, options: &ServeOptions) -> std::io::Result<()> {
    stream.set_read_timeout(Some(options.idle_timeout))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(8 * 1024, stream.try_clone()?);
    // Small: NAR contents bypass it (`dump_direct`); it only gathers headers and NAR framing.
    let mut writer = BufWriter::with_capacity(16 * 1024, stream);
    while let Some(req) = read_request(&mut reader)? {
        let head_only = req.method == "HEAD";
        if req.has_body || !(head_only || req.method == "GET") {
            respond_simple(
                &mut writer,
                405,
                "Method Not Allowed",
                "this cache is read-only\n",
                head_only,
                true,
            )?;
            return Ok(());
        }
        let close = !req.keep_alive;
        handle(store, &req.path, head_only, close, options, &mut writer)?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

/// The valid path whose hash part is `hash`, if any.
fn find(store: &Store, hash: &str) -> Option<StorePath> {
    if hash.len() != store::store_path::HASH_LEN || !store::nix32::is_nix32(hash) {
        return None;
    }
    store.find(hash).ok()
}

fn handle(
    store: &Store,
    target: &str,
    head_only: bool,
    close: bool,
    options: &ServeOptions,
    w: &mut BufWriter<TcpStream>,
) -> std::io::Result<()> {
    let path = target.split('?').next().unwrap_or("");
    let not_found = |w: &mut BufWriter<TcpStream>, body: &str| {
        respond_simple(w, 404, "Not Found", body, head_only, close)
    };
    let conn = if close { "Connection: close\r\n" } else { "" };
    if path == "/nix-cache-info" {
        let body =
            format!("StoreDir: {}\nWantMassQuery: 1\nPriority: {}\n", store.store_dir(), options.priority);
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: text/x-nix-cache-info\r\nContent-Length: {}\r\n{conn}\r\n",
            body.len()
        )?;
        if !head_only {
            w.write_all(body.as_bytes())?;
        }
        return w.flush();
    }
    let name = path.strip_prefix('/').unwrap_or(path);
    if let Some(hash) = name.strip_suffix(".narinfo") {
        let Some(p) = find(store, hash) else { return not_found(w, "No such path.\n") };
        let Ok(Some(info)) = store.path_info(&p) else { return not_found(w, "No such path.\n") };
        let mut n = NarInfo::from_path_info(&info);
        n.url = format!("nar/{}-{}.nar", p.hash_part(), info.nar_hash.to_nix32());
        n.compression = Compression::None;
        n.file_hash = Some(info.nar_hash.clone());
        n.file_size = info.nar_size;
        for k in &options.sign_keys {
            n.sign(k);
        }
        let body = n.to_string();
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: text/x-nix-narinfo\r\nContent-Length: {}\r\n{conn}\r\n",
            body.len()
        )?;
        if !head_only {
            w.write_all(body.as_bytes())?;
        }
        return w.flush();
    }
    if let Some(hash) = name.strip_suffix(".ls") {
        let Some(p) = find(store, hash) else { return not_found(w, "No such path.\n") };
        let Ok(body) = crate::listing::listing(&store.physical_path(&p)) else {
            return respond_simple(
                w,
                500,
                "Internal Server Error",
                "cannot list the path\n",
                head_only,
                true,
            );
        };
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{conn}\r\n",
            body.len()
        )?;
        if !head_only {
            w.write_all(body.as_bytes())?;
        }
        return w.flush();
    }
    if let Some(file) = name.strip_prefix("nar/").and_then(|f| f.strip_suffix(".nar")) {
        let (hash, nar_hash) = file.split_once('-').map_or((file, None), |(h, n)| (h, Some(n)));
        let Some(p) = find(store, hash) else { return not_found(w, "No such path.\n") };
        let Ok(Some(info)) = store.path_info(&p) else { return not_found(w, "No such path.\n") };
        if nar_hash.is_some_and(|n| n != info.nar_hash.to_nix32()) {
            return not_found(w, "Incorrect NAR hash. Maybe the path has been recreated.\n");
        }
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-nix-nar\r\nContent-Length: {}\r\n{conn}\r\n",
            info.nar_size
        )?;
        if head_only {
            return w.flush();
        }
        // A failure here leaves the body short; the client notices from Content-Length and the NAR hash.
        // No copy buffer per connection: file contents go from the file to the socket by sendfile(2).
        store::nar::dump_direct(&store.physical_path(&p), &mut *w).map_err(std::io::Error::other)?;
        return w.flush();
    }
    if let Some(key) = name.strip_prefix(&format!("{}/", crate::packages::DIR)) {
        let Ok(Some(path)) = store.package(key) else { return not_found(w, "No such package.\n") };
        let mut m = crate::packages::PackageMapping::new(key, path);
        for k in &options.sign_keys {
            m.sign(k);
        }
        let body = m.to_string();
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{conn}\r\n",
            body.len()
        )?;
        if !head_only {
            w.write_all(body.as_bytes())?;
        }
        return w.flush();
    }
    if let Some(base) = name.strip_prefix("log/") {
        let log = store.store_dir().from_base_name(base).ok().and_then(|p| {
            let drv = if p.is_derivation() { p } else { store.path_info(&p).ok()??.deriver? };
            options.logs.as_ref()?(&drv)
        });
        let Some(body) = log else { return not_found(w, "No build log.\n") };
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{conn}\r\n",
            body.len()
        )?;
        if !head_only {
            w.write_all(&body)?;
        }
        return w.flush();
    }
    not_found(w, "File not found.\n")
}
