//! A binary cache on an HTTP(S) server, read with GET/HEAD and written with PUT as Nix's HTTP store does. 404,
//! 410 and 403 mean "absent"; connection errors, 408, 429 and most 5xx answers are retried with a doubling delay;
//! other answers are errors naming the URL and the status. The S3 backend sends its signed requests through the
//! same [`HttpClient`].

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Body, Client, RequestBuilder, Response};

use super::{Backend, Reader, check_key};
use crate::error::{CacheError, Result, io_err};

/// The shared blocking HTTP client (one connection pool for all transfers of a command).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client,
    attempts: u32,
}

fn transfer(action: &'static str, url: &str, reason: impl ToString) -> CacheError {
    CacheError::Transfer { action, url: redact(url), reason: reason.to_string() }
}

/// A URL without its query (presigned S3 URLs carry credentials-derived signatures there).
fn redact(url: &str) -> String {
    url.split_once('?').map_or(url, |(base, _)| base).to_owned()
}

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

/// Whether a status is worth retrying (Nix's `filetransfer.cc` list).
fn transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429)
        || (status.is_server_error() && !matches!(status.as_u16(), 501 | 505 | 511))
}

pub(crate) fn is_absent(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 410 | 403)
}

impl HttpClient {
    /// A client with `connect_timeout` seconds to connect and `attempts` tries per request (at least 1).
    pub fn new(connect_timeout: u64, attempts: u32) -> Result<HttpClient> {
        let client = Client::builder()
            .user_agent(concat!("fhskit/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(connect_timeout.max(1)))
            .timeout(None)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| transfer("create an HTTP client for", "(none)", describe(&e)))?;
        Ok(HttpClient { client, attempts: attempts.max(1) })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends the request `make` builds, retrying transient failures; returns the final response whatever its
    /// status, or the last connection error.
    pub fn send(
        &self,
        action: &'static str,
        url: &str,
        make: &dyn Fn() -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let outcome = make()?.send();
            let retry = match &outcome {
                Ok(resp) => transient(resp.status()),
                Err(e) => !e.is_builder(),
            };
            if !retry || attempt >= self.attempts {
                return outcome.map_err(|e| transfer(action, url, describe(&e)));
            }
            let why = match &outcome {
                Ok(resp) => format!("server answered {}", resp.status()),
                Err(e) => describe(e),
            };
            tracing::debug!(
                "{action} '{}': {why}; retrying in {} ms (attempt {}/{})",
                redact(url),
                delay.as_millis(),
                attempt + 1,
                self.attempts
            );
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    /// GET; `Ok(None)` when absent.
    pub fn get(&self, url: &str) -> Result<Option<Response>> {
        let resp = self.send("download", url, &|| Ok(self.client.get(url)))?;
        match resp.status() {
            s if is_absent(s) => Ok(None),
            s if s.is_success() => Ok(Some(resp)),
            s => Err(transfer("download", url, format!("server answered {s}"))),
        }
    }

    /// HEAD; true when the file exists.
    pub fn head(&self, url: &str) -> Result<bool> {
        let resp = self.send("query", url, &|| Ok(self.client.head(url)))?;
        match resp.status() {
            s if is_absent(s) => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(transfer("query", url, format!("server answered {s}"))),
        }
    }

    /// Checks that an upload succeeded.
    pub fn check_upload(url: &str, resp: Response) -> Result<Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().unwrap_or_default();
        let detail: String = body.chars().take(300).collect();
        Err(transfer("upload to", url, format!("server answered {status} {}", detail.trim())))
    }
}

/// A binary cache served over HTTP(S).
#[derive(Debug)]
pub struct HttpBackend {
    base: String,
    http: HttpClient,
}

impl HttpBackend {
    /// `base` is the cache URL without parameters; a trailing slash is added when files are resolved.
    pub fn new(base: &str, http: HttpClient) -> HttpBackend {
        HttpBackend { base: base.trim_end_matches('/').to_owned(), http }
    }

    fn url(&self, key: &str) -> Result<String> {
        check_key(key.split('?').next().unwrap_or(key))
            .map_err(|reason| CacheError::BadUrl { url: self.base.clone(), reason })?;
        Ok(format!("{}/{key}", self.base))
    }
}

impl Backend for HttpBackend {
    fn get(&self, key: &str) -> Result<Option<Reader>> {
        let url = self.url(key)?;
        Ok(self.http.get(&url)?.map(|r| Box::new(r) as Reader))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        self.http.head(&self.url(key)?)
    }

    fn put_bytes(&self, key: &str, data: &[u8], mime: &str) -> Result<()> {
        let url = self.url(key)?;
        let resp = self.http.send("upload to", &url, &|| {
            Ok(self.http.client.put(&url).header("content-type", mime).body(data.to_vec()))
        })?;
        HttpClient::check_upload(&url, resp).map(drop)
    }

    fn put_file(&self, key: &str, src: &Path, mime: &str) -> Result<()> {
        let url = self.url(key)?;
        let resp = self.http.send("upload to", &url, &|| {
            let f = std::fs::File::open(src).map_err(io_err("open", src.display()))?;
            let len = f.metadata().map_err(io_err("read metadata of", src.display()))?.len();
            Ok(self.http.client.put(&url).header("content-type", mime).body(Body::sized(f, len)))
        })?;
        HttpClient::check_upload(&url, resp).map(drop)
    }
}
