//! NAR compression methods as Nix names them: the `Compression:` field of a narinfo and the file extension of
//! `nar/<FileHash>.nar<ext>`. Writing supports xz, zstd, bzip2, gzip and none; reading the same, so caches made by
//! Nix (xz by default, zstd often) and by fhskit read both ways.

use std::fmt;
use std::io::{self, Read, Write};

use crate::error::{CacheError, Result};

/// A compression method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Bzip2,
    Gzip,
    /// A method Nix knows (`br`, `lz4`, `lzip`, …) that fhskit neither reads nor writes.
    Other(String),
}

/// Every name Nix accepts in `Compression:` (`compression-algo.hh`).
const KNOWN: &[&str] = &[
    "none", "br", "bzip2", "compress", "grzip", "gzip", "lrzip", "lz4", "lzip", "lzma", "lzop", "xz", "zstd",
];

impl Compression {
    /// Parses a method name; an empty name is bzip2 (the narinfo default); names Nix does not know are `None`.
    pub fn parse(name: &str) -> Option<Compression> {
        Some(match name {
            "" | "bzip2" => Compression::Bzip2,
            "none" => Compression::None,
            "xz" => Compression::Xz,
            "zstd" => Compression::Zstd,
            "gzip" => Compression::Gzip,
            other if KNOWN.contains(&other) => Compression::Other(other.to_owned()),
            _ => return None,
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Compression::None => "none",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Gzip => "gzip",
            Compression::Other(n) => n,
        }
    }

    /// The extension Nix gives NAR files (`binary-cache-store.cc`): gzip and unknown methods get none.
    pub fn extension(&self) -> &'static str {
        match self {
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
            Compression::Other(n) if n == "lzip" => ".lzip",
            Compression::Other(n) if n == "lz4" => ".lz4",
            Compression::Other(n) if n == "br" => ".br",
            _ => "",
        }
    }

    /// Wraps `input` so that reading it yields the decompressed bytes.
    pub fn decoder<'a>(&self, input: impl Read + Send + 'a) -> Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(input)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(input)
                    .map_err(|e| CacheError::Compression(format!("zstd ({e})")))?,
            ),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Compression::Other(n) => return Err(CacheError::Compression(n.clone())),
        })
    }

    /// Wraps `output` so that writing to it compresses; `level` is the method's level, `None` for its default.
    pub fn encoder<'a, W: Write + Send + 'a>(&self, output: W, level: Option<i32>) -> Result<Encoder<'a, W>> {
        Ok(match self {
            Compression::None => Encoder::Plain(output),
            Compression::Xz => {
                let preset = level.map_or(6, |l| l.clamp(0, 9) as u32);
                Encoder::Xz(liblzma::write::XzEncoder::new(output, preset))
            }
            Compression::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(output, level.unwrap_or(3))
                    .map_err(|e| CacheError::Compression(format!("zstd ({e})")))?,
            ),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                output,
                bzip2::Compression::new(level.map_or(9, |l| l.clamp(1, 9) as u32)),
            )),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                output,
                flate2::Compression::new(level.map_or(6, |l| l.clamp(0, 9) as u32)),
            )),
            Compression::Other(n) => return Err(CacheError::Compression(n.clone())),
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compressing writer; [`Encoder::finish`] ends the stream and returns the inner writer.
pub enum Encoder<'a, W: Write> {
    Plain(W),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'a, W>),
    Bzip2(bzip2::write::BzEncoder<W>),
    Gzip(flate2::write::GzEncoder<W>),
}

impl<W: Write> fmt::Debug for Encoder<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Encoder")
    }
}

impl<W: Write> Encoder<'_, W> {
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Xz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
        }
    }
}

/// Like [`Compression::encoder`], with `threads` compressing threads for xz and zstd (their multi-threaded
/// formats are ordinary streams any decoder reads).
pub fn encoder_mt<'a, W: Write + Send + 'a>(
    c: &Compression,
    output: W,
    level: Option<i32>,
    threads: u32,
) -> Result<Encoder<'a, W>> {
    if threads <= 1 {
        return c.encoder(output, level);
    }
    match c {
        Compression::Xz => {
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(threads)
                .preset(level.map_or(6, |l| l.clamp(0, 9) as u32))
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .map_err(|e| CacheError::Compression(format!("xz ({e})")))?;
            Ok(Encoder::Xz(liblzma::write::XzEncoder::new_stream(output, stream)))
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(output, level.unwrap_or(3))
                .map_err(|e| CacheError::Compression(format!("zstd ({e})")))?;
            e.multithread(threads).map_err(|e| CacheError::Compression(format!("zstd ({e})")))?;
            Ok(Encoder::Zstd(e))
        }
        other => other.encoder(output, level),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for c in
            [Compression::None, Compression::Xz, Compression::Zstd, Compression::Bzip2, Compression::Gzip]
        {
            let mut e = c.encoder(Vec::new(), None).unwrap();
            e.write_all(&data).unwrap();
            let packed = e.finish().unwrap();
            let mut out = Vec::new();
            c.decoder(&packed[..]).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{c}");
        }
        assert_eq!(Compression::parse(""), Some(Compression::Bzip2));
        assert_eq!(Compression::parse("lz4").unwrap().extension(), ".lz4");
        assert_eq!(Compression::parse("gzip").unwrap().extension(), "");
        assert!(Compression::parse("rar").is_none());
        assert!(Compression::parse("br").unwrap().decoder(&b""[..]).is_err());
    }
}
