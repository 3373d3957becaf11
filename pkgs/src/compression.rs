//! Decompression of index files and `.deb` members by file-name suffix: xz (liblzma), gzip (flate2), zstd (ruzstd),
//! legacy lzma (liblzma) or none.

use std::io::Read;

use crate::error::{Error, Result};

/// A compression format, named by suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Lzma,
}

impl Compression {
    /// The format a file name's suffix names; `None` for an unknown suffix.
    pub fn from_name(name: &str) -> Option<Compression> {
        Some(if name.ends_with(".xz") {
            Compression::Xz
        } else if name.ends_with(".gz") {
            Compression::Gzip
        } else if name.ends_with(".zst") {
            Compression::Zstd
        } else if name.ends_with(".lzma") {
            Compression::Lzma
        } else if name.ends_with(".bz2") {
            return None;
        } else {
            Compression::None
        })
    }

    /// Wraps `input` in a decoder. Callers decompress only data whose SHA-256 they have checked against a signed
    /// index (a `.deb`, an index file), so the xz format's own integrity check is not computed again.
    pub fn reader<'a, R: Read + Send + 'a>(self, input: R) -> std::io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Compression::Xz => {
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    u64::MAX,
                    liblzma::stream::CONCATENATED | liblzma::stream::IGNORE_CHECK,
                )
                .map_err(std::io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(input, stream))
            }
            Compression::Lzma => {
                let stream =
                    liblzma::stream::Stream::new_lzma_decoder(u64::MAX).map_err(std::io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(input, stream))
            }
            Compression::Zstd => Box::new(
                ruzstd::decoding::StreamingDecoder::new(input)
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            ),
        })
    }
}

/// Decompresses a whole file named `name` (the suffix selects the format).
pub fn decompress(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::Decompress { path: name.to_owned(), reason };
    let format = Compression::from_name(name).ok_or_else(|| bad("unsupported compression".into()))?;
    if format == Compression::None {
        return Ok(data.to_vec());
    }
    let mut out = Vec::with_capacity(data.len() * 5);
    format.reader(data).and_then(|mut r| r.read_to_end(&mut out)).map_err(|e| bad(e.to_string()))?;
    Ok(out)
}
