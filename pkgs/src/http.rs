//! HTTP access to repositories: whole-file GETs with a size cap, conditional GETs (ETag / If-Modified-Since) for
//! release files, and resumable downloads into `.part` files with `Range` requests.
//!
//! Integrity never depends on the transport: callers check every byte against the signed release file.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RANGE};

use crate::error::{Error, Result, io};

/// Validators remembered from a previous response, for conditional requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The outcome of a conditional GET.
#[derive(Debug)]
pub enum Conditional {
    NotModified,
    Fetched { body: Vec<u8>, validators: Validators },
}

/// A blocking HTTP client shared by all downloads of one operation.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client,
}

fn http_err(url: &str, reason: impl std::fmt::Display) -> Error {
    Error::Http { url: url.to_owned(), reason: reason.to_string() }
}

/// Describes a request failure without repeating the URL that [`Error::Http`] already names.
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

impl Http {
    pub fn new() -> Result<Http> {
        let client = Client::builder()
            .user_agent(concat!("fhskit/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .timeout(None)
            .build()
            .map_err(|e| http_err("(client)", describe(&e)))?;
        Ok(Http { client })
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder, url: &str) -> Result<Response> {
        req.send().map_err(|e| http_err(url, describe(&e)))
    }

    /// GETs a whole file of at most `max_len` bytes; `Ok(None)` when the server answers 404 or 410.
    pub fn get_optional(&self, url: &str, max_len: u64) -> Result<Option<Vec<u8>>> {
        let resp = self.send(self.client.get(url), url)?;
        match resp.status() {
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
            s if s.is_success() => read_body(resp, url, max_len).map(Some),
            s => Err(http_err(url, format!("server answered {s}"))),
        }
    }

    /// GETs a whole file; 404 is an error.
    pub fn get(&self, url: &str, max_len: u64) -> Result<Vec<u8>> {
        self.get_optional(url, max_len)?.ok_or_else(|| http_err(url, "server answered 404 Not Found"))
    }

    /// A conditional GET with the validators of the cached copy; `Ok(None)` on 404.
    pub fn get_conditional(&self, url: &str, have: &Validators, max_len: u64) -> Result<Option<Conditional>> {
        let mut req = self.client.get(url);
        if let Some(etag) = &have.etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &have.last_modified {
            req = req.header(IF_MODIFIED_SINCE, lm);
        }
        let resp = self.send(req, url)?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => Ok(Some(Conditional::NotModified)),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
            s if s.is_success() => {
                let header = |h| {
                    resp.headers()
                        .get(h)
                        .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                        .map(str::to_owned)
                };
                let validators = Validators { etag: header(ETAG), last_modified: header(LAST_MODIFIED) };
                let body = read_body(resp, url, max_len)?;
                Ok(Some(Conditional::Fetched { body, validators }))
            }
            s => Err(http_err(url, format!("server answered {s}"))),
        }
    }

    /// Downloads `url` into `part`, continuing from what `part` already holds when the server honours `Range`.
    /// Fails, keeping `part` for a later resume, when the body ends before `size` bytes; removes `part` when the
    /// server sends more than `size` bytes. `progress` receives byte counts as they arrive.
    pub fn download_resume(
        &self,
        url: &str,
        part: &Path,
        size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if have > size {
            std::fs::remove_file(part).map_err(io("remove oversized partial download", part))?;
            return self.download_resume(url, part, size, progress);
        }
        if have == size && size > 0 {
            return Ok(());
        }
        let mut req = self.client.get(url);
        if have > 0 {
            req = req.header(RANGE, format!("bytes={have}-"));
        }
        let mut resp = self.send(req, url)?;
        let status = resp.status();
        let append = match status {
            StatusCode::PARTIAL_CONTENT => {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(have) {
                    return Err(http_err(
                        url,
                        "server sent a range that does not continue the partial download",
                    ));
                }
                tracing::debug!(url, have, "resuming download");
                true
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                std::fs::remove_file(part).map_err(io("remove partial download", part))?;
                return self.download_resume(url, part, size, progress);
            }
            s if s.is_success() => false,
            s => return Err(http_err(url, format!("server answered {s}"))),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .map_err(io("open partial download", part))?;
        let mut written = if append { have } else { 0 };
        progress(written);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    file.flush().ok();
                    return Err(http_err(
                        url,
                        format!("download interrupted after {written} of {size} bytes: {e}"),
                    ));
                }
            };
            if written + n as u64 > size {
                drop(file);
                std::fs::remove_file(part).ok();
                return Err(http_err(url, format!("server sent more than the {size} bytes the index lists")));
            }
            file.write_all(&buf[..n]).map_err(io("write partial download", part))?;
            written += n as u64;
            progress(n as u64);
        }
        // No fsync: the file is checked against the signed index's SHA-256 before it enters the cache and again
        // before every use (`fetch`), so a file a crash left torn is downloaded again, never unpacked; waiting for
        // the disk here would only make every download slower (apt does not sync its archives either).
        if written < size {
            return Err(http_err(url, format!("download truncated at {written} of {size} bytes")));
        }
        Ok(())
    }
}

fn read_body(resp: Response, url: &str, max_len: u64) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut limited = resp.take(max_len.saturating_add(1));
    limited.read_to_end(&mut body).map_err(|e| http_err(url, format!("download interrupted: {e}")))?;
    if body.len() as u64 > max_len {
        return Err(http_err(url, format!("larger than the expected {max_len} bytes")));
    }
    Ok(body)
}
