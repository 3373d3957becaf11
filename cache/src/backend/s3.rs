//! A binary cache in an S3 bucket (`s3://bucket[/prefix]?region=…&endpoint=…&profile=…`) on AWS or any
//! S3-compatible server. Requests are SigV4-presigned by `rusty-s3` and sent through the shared [`HttpClient`];
//! uploads carry `Content-MD5`; files above `multipart-threshold` go up in parts of `multipart-chunk-size`
//! (aborted on failure, so no half object is ever visible). Credentials come from `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else the profile (`profile=`, `AWS_PROFILE`, `default`) in
//! `~/.aws/credentials` or `~/.aws/config`; without any, requests go unsigned (public buckets).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Digest as _;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::http::HttpClient;
use super::{Backend, Reader, check_key};
use crate::error::{CacheError, Result, io_err};

const SIGN_FOR: Duration = Duration::from_secs(3600);
const MIB: u64 = 1024 * 1024;

/// The parameters of an `s3://` URL that this backend reads.
#[derive(Debug, Clone)]
pub struct S3Options {
    pub bucket: String,
    /// Key prefix inside the bucket, without slashes at either end (may be empty).
    pub prefix: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    pub addressing_style: String,
    pub multipart_upload: bool,
    pub multipart_chunk_size: u64,
    pub multipart_threshold: u64,
}

impl S3Options {
    /// Reads `s3://bucket/prefix` and its parameters (`params` is consumed where keys are S3's).
    pub fn parse(url: &str, rest: &str, params: &BTreeMap<String, String>) -> Result<S3Options> {
        let bad = |reason: &str| CacheError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = !bucket.is_empty()
            && bucket.parse::<std::net::IpAddr>().is_err()
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_bucket {
            return Err(bad("URI has a missing or invalid bucket name"));
        }
        let size = |key: &str, default: u64| -> Result<u64> {
            params.get(key).map_or(Ok(default), |v| {
                v.parse().map_err(|_| bad(&format!("{key} must be a number of bytes")))
            })
        };
        let multipart_chunk_size = size("multipart-chunk-size", size("buffer-size", 5 * MIB)?)?;
        if !(5 * MIB..=5 * 1024 * MIB).contains(&multipart_chunk_size) {
            return Err(bad("multipart-chunk-size must be between 5 MiB and 5 GiB"));
        }
        let addressing_style = params.get("addressing-style").cloned().unwrap_or_else(|| "auto".into());
        if !matches!(addressing_style.as_str(), "auto" | "path" | "virtual") {
            return Err(bad(&format!(
                "unknown S3 addressing style '{addressing_style}', expected 'auto', 'path', or 'virtual'"
            )));
        }
        let endpoint = params
            .get("endpoint")
            .cloned()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty())
            .map(|e| if e.contains("://") { e } else { format!("https://{e}") });
        Ok(S3Options {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            region: params.get("region").cloned().unwrap_or_else(|| "us-east-1".into()),
            endpoint,
            profile: params.get("profile").cloned(),
            addressing_style,
            multipart_upload: params.get("multipart-upload").is_none_or(|v| v == "true" || v == "1"),
            multipart_chunk_size,
            multipart_threshold: size("multipart-threshold", 100 * MIB)?,
        })
    }
}

/// The value of `key` in section `section` of an INI-style AWS file.
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
            continue;
        }
        if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

fn aws_file(var: &str, name: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws").join(name)))
}

/// Credentials from the environment, else from the profile files; `None` means unsigned requests.
fn credentials(profile: Option<&str>) -> Option<Credentials> {
    if let (Ok(key), Ok(secret)) =
        (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY"))
        && !key.is_empty()
    {
        return Some(match std::env::var("AWS_SESSION_TOKEN").ok().filter(|t| !t.is_empty()) {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        });
    }
    let profile = profile
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .unwrap_or_else(|| "default".into());
    let from = |text: &str, section: &str| {
        let key = ini_value(text, section, "aws_access_key_id")?;
        let secret = ini_value(text, section, "aws_secret_access_key")?;
        Some(match ini_value(text, section, "aws_session_token") {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        })
    };
    if let Some(text) =
        aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials").and_then(|p| std::fs::read_to_string(p).ok())
        && let Some(c) = from(&text, &profile)
    {
        return Some(c);
    }
    let section = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
    aws_file("AWS_CONFIG_FILE", "config")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| from(&t, &section))
}

#[derive(Debug)]
pub struct S3Backend {
    url: String,
    bucket: Bucket,
    credentials: Option<Credentials>,
    options: S3Options,
    http: HttpClient,
}

fn md5_base64(data: &[u8]) -> String {
    data_encoding::BASE64.encode(&md5::Md5::digest(data))
}

impl S3Backend {
    pub fn new(url: &str, options: S3Options, http: HttpClient) -> Result<S3Backend> {
        let bad = |reason: String| CacheError::BadUrl { url: url.to_owned(), reason };
        let (endpoint, style) = match &options.endpoint {
            Some(e) => (
                e.clone(),
                if options.addressing_style == "virtual" { UrlStyle::VirtualHost } else { UrlStyle::Path },
            ),
            None => {
                let dotted = options.bucket.contains('.');
                if dotted && options.addressing_style == "virtual" {
                    return Err(
                        bad("a bucket name with a dot cannot be used with virtual addressing".into()),
                    );
                }
                let style = if dotted || options.addressing_style == "path" {
                    UrlStyle::Path
                } else {
                    UrlStyle::VirtualHost
                };
                (format!("https://s3.{}.amazonaws.com", options.region), style)
            }
        };
        let endpoint =
            url::Url::parse(&endpoint).map_err(|e| bad(format!("bad endpoint '{endpoint}' ({e})")))?;
        let bucket = Bucket::new(endpoint, style, options.bucket.clone(), options.region.clone())
            .map_err(|e| bad(format!("cannot address the bucket ({e})")))?;
        Ok(S3Backend {
            url: url.to_owned(),
            bucket,
            credentials: credentials(options.profile.as_deref()),
            options,
            http,
        })
    }

    fn object(&self, key: &str) -> Result<String> {
        check_key(key).map_err(|reason| CacheError::BadUrl { url: self.url.clone(), reason })?;
        Ok(if self.options.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.options.prefix)
        })
    }

    fn display(&self, object: &str) -> String {
        format!("s3://{}/{object}", self.options.bucket)
    }

    fn put_single(&self, object: &str, body: Vec<u8>, mime: &str) -> Result<()> {
        let signed = self.bucket.put_object(self.credentials.as_ref(), object).sign(SIGN_FOR);
        let md5 = md5_base64(&body);
        let shown = self.display(object);
        let resp = self.http.send("upload to", &shown, &|| {
            Ok(self
                .http
                .client()
                .put(signed.clone())
                .header("content-type", mime)
                .header("content-md5", &md5)
                .body(body.clone()))
        })?;
        HttpClient::check_upload(&shown, resp).map(drop)
    }

    fn put_multipart(&self, object: &str, src: &Path, size: u64, mime: &str) -> Result<()> {
        let shown = self.display(object);
        let mut create = self.bucket.create_multipart_upload(self.credentials.as_ref(), object);
        create.headers_mut().insert("content-type", mime.to_owned());
        let signed = create.sign(SIGN_FOR);
        let resp = self.http.send("start a multipart upload to", &shown, &|| {
            Ok(self.http.client().post(signed.clone()).header("content-type", mime))
        })?;
        let text = HttpClient::check_upload(&shown, resp)?.text().map_err(|e| CacheError::Transfer {
            action: "start a multipart upload to",
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        let upload = rusty_s3::actions::CreateMultipartUpload::parse_response(&text).map_err(|e| {
            CacheError::Transfer {
                action: "start a multipart upload to",
                url: shown.clone(),
                reason: format!("bad answer ({e})"),
            }
        })?;
        let id = upload.upload_id().to_owned();
        let result = (|| {
            // At most 10,000 parts: raise the chunk size for huge files, as Nix does.
            let chunk = self.options.multipart_chunk_size.max(size.div_ceil(10_000));
            let mut f = std::fs::File::open(src).map_err(io_err("open", src.display()))?;
            let mut etags = Vec::new();
            let mut part = 1u16;
            loop {
                let mut buf = Vec::with_capacity(chunk as usize);
                (&mut f).take(chunk).read_to_end(&mut buf).map_err(io_err("read", src.display()))?;
                if buf.is_empty() && part > 1 {
                    break;
                }
                let signed =
                    self.bucket.upload_part(self.credentials.as_ref(), object, part, &id).sign(SIGN_FOR);
                let md5 = md5_base64(&buf);
                let resp = self.http.send("upload a part to", &shown, &|| {
                    Ok(self.http.client().put(signed.clone()).header("content-md5", &md5).body(buf.clone()))
                })?;
                let resp = HttpClient::check_upload(&shown, resp)?;
                let etag =
                    resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned).ok_or_else(
                        || CacheError::Transfer {
                            action: "upload a part to",
                            url: shown.clone(),
                            reason: "no ETag in the answer".into(),
                        },
                    )?;
                etags.push(etag);
                let last = (buf.len() as u64) < chunk;
                part += 1;
                if last {
                    break;
                }
            }
            let complete = self.bucket.complete_multipart_upload(
                self.credentials.as_ref(),
                object,
                &id,
                etags.iter().map(String::as_str),
            );
            let signed = complete.sign(SIGN_FOR);
            let body = self
                .bucket
                .complete_multipart_upload(
                    self.credentials.as_ref(),
                    object,
                    &id,
                    etags.iter().map(String::as_str),
                )
                .body();
            let resp = self.http.send("finish a multipart upload to", &shown, &|| {
                Ok(self
                    .http
                    .client()
                    .post(signed.clone())
                    .header("content-type", "text/xml")
                    .body(body.clone()))
            })?;
            let resp = HttpClient::check_upload(&shown, resp)?;
            // S3 may answer 200 with an error document.
            let text = resp.text().unwrap_or_default();
            if text.contains("<Error>") {
                return Err(CacheError::Transfer {
                    action: "finish a multipart upload to",
                    url: shown.clone(),
                    reason: text,
                });
            }
            Ok(())
        })();
        if result.is_err() {
            let signed =
                self.bucket.abort_multipart_upload(self.credentials.as_ref(), object, &id).sign(SIGN_FOR);
            let _ = self.http.client().delete(signed).send();
        }
        result
    }
}

impl Backend for S3Backend {
    fn get(&self, key: &str) -> Result<Option<Reader>> {
        let object = self.object(key)?;
        let signed = self.bucket.get_object(self.credentials.as_ref(), &object).sign(SIGN_FOR);
        let shown = self.display(&object);
        let resp = self.http.send("download", &shown, &|| Ok(self.http.client().get(signed.clone())))?;
        match resp.status() {
            s if super::http::is_absent(s) => Ok(None),
            s if s.is_success() => Ok(Some(Box::new(resp))),
            s => Err(CacheError::Transfer {
                action: "download",
                url: shown,
                reason: format!("server answered {s}"),
            }),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let object = self.object(key)?;
        let signed = self.bucket.head_object(self.credentials.as_ref(), &object).sign(SIGN_FOR);
        let shown = self.display(&object);
        let resp = self.http.send("query", &shown, &|| Ok(self.http.client().head(signed.clone())))?;
        match resp.status() {
            s if super::http::is_absent(s) => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(CacheError::Transfer {
                action: "query",
                url: shown,
                reason: format!("server answered {s}"),
            }),
        }
    }

    fn put_bytes(&self, key: &str, data: &[u8], mime: &str) -> Result<()> {
        let object = self.object(key)?;
        self.put_single(&object, data.to_vec(), mime)
    }

    fn put_file(&self, key: &str, src: &Path, mime: &str) -> Result<()> {
        let object = self.object(key)?;
        let size = std::fs::metadata(src).map_err(io_err("read metadata of", src.display()))?.len();
        let multipart = (self.options.multipart_upload && size > self.options.multipart_threshold)
            || size > 5 * 1024 * MIB;
        if multipart {
            self.put_multipart(&object, src, size, mime)
        } else {
            let body = std::fs::read(src).map_err(io_err("read", src.display()))?;
            self.put_single(&object, body, mime)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_and_profiles() {
        let mut params = BTreeMap::new();
        params.insert("endpoint".to_owned(), "http://127.0.0.1:9000".to_owned());
        let o = S3Options::parse("s3://b/p/q", "b/p/q", &params).unwrap();
        assert_eq!((o.bucket.as_str(), o.prefix.as_str(), o.region.as_str()), ("b", "p/q", "us-east-1"));
        assert!(S3Options::parse("s3://", "", &params).is_err());
        assert!(S3Options::parse("s3://1.2.3.4", "1.2.3.4", &params).is_err());
        params.insert("addressing-style".into(), "odd".into());
        assert!(
            S3Options::parse("s3://b", "b", &params)
                .unwrap_err()
                .to_string()
                .contains("unknown S3 addressing style")
        );
        let ini =
            "[default]\naws_access_key_id = A\n[other]\naws_access_key_id=B\naws_secret_access_key = S\n";
        assert_eq!(ini_value(ini, "other", "aws_access_key_id").as_deref(), Some("B"));
        assert_eq!(ini_value(ini, "default", "aws_secret_access_key"), None);
    }
}
