//! Build logs: what a builder writes is split into lines, passed to the observer, kept whole in the log file
//! `<log dir>/drvs/<first two characters of the .drv's base name>/<the rest>` (bzip2-compressed with a `.bz2` suffix
//! when `compress-build-log` is on, as Nix keeps them, so `nix log` finds them in a chroot store), and its last
//! lines are kept for the failure message.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use store::StorePath;

use crate::error::{Result, io_err};

/// Where the log of `drv` goes (without the `.bz2` suffix).
pub fn log_file(log_dir: &Path, drv: &StorePath) -> PathBuf {
    let base = drv.base_name();
    log_dir.join("drvs").join(&base[..2]).join(&base[2..])
}

/// The log of `drv`, decompressed; `None` when there is none.
pub fn read_log(log_dir: &Path, drv: &StorePath) -> Result<Option<Vec<u8>>> {
    let plain = log_file(log_dir, drv);
    let compressed = PathBuf::from(format!("{}.bz2", plain.display()));
    let mut out = Vec::new();
    if let Ok(f) = File::open(&compressed) {
        bzip2::read::MultiBzDecoder::new(f)
            .read_to_end(&mut out)
            .map_err(io_err("decompress", &compressed))?;
        return Ok(Some(out));
    }
    match File::open(&plain) {
        Ok(mut f) => {
            f.read_to_end(&mut out).map_err(io_err("read", &plain))?;
            Ok(Some(out))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &plain)(e)),
    }
}

/// What a bzip2 encoder with 100 kB blocks writes for no input.
const EMPTY_BZIP2: &[u8] = b"BZh1\x17\x72\x45\x38\x50\x90\x00\x00\x00\x00";

enum Sink {
    Plain(File),
    /// The file until the first byte arrives: most builders of small derivations print nothing, and an encoder
    /// holds a megabyte or more.
    Pending(File),
    Bzip2(bzip2::write::BzEncoder<File>),
}

/// The log of one running build.
pub(crate) struct BuildLog {
    sink: Option<Sink>,
    path: PathBuf,
    partial: Vec<u8>,
    tail: VecDeque<String>,
    keep: usize,
    /// Bytes received so far.
    pub size: u64,
}

impl BuildLog {
    /// Creates the log file of `drv` (replacing an older one); `keep` lines are kept for the failure message.
    pub fn create(log_dir: &Path, drv: &StorePath, compress: bool, keep: usize) -> Result<BuildLog> {
        let plain = log_file(log_dir, drv);
        let dir = plain.parent().expect("log files are in a directory");
        std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let path = if compress { PathBuf::from(format!("{}.bz2", plain.display())) } else { plain.clone() };
        // The other form of an older log would otherwise shadow or outlive this one.
        let _ = std::fs::remove_file(if compress { &plain } else { &path });
        let file = File::create(&path).map_err(io_err("create the build log", &path))?;
        let sink = if compress { Sink::Pending(file) } else { Sink::Plain(file) };
        Ok(BuildLog { sink: Some(sink), path, partial: Vec::new(), tail: VecDeque::new(), keep, size: 0 })
    }

    /// Takes a chunk of output; calls `line` for each complete line (without its newline; a carriage return not
    /// followed by a newline starts the line over, as on a terminal).
    pub fn write(&mut self, data: &[u8], mut line: impl FnMut(&str)) {
        self.size += data.len() as u64;
        if let Some(Sink::Pending(_)) = &self.sink
            && let Some(Sink::Pending(f)) = self.sink.take()
        {
            // The smallest blocks (100 kB): the encoder's memory is eight times the block size, and build logs
            // compress about as well either way.
            self.sink = Some(Sink::Bzip2(bzip2::write::BzEncoder::new(f, bzip2::Compression::fast())));
        }
        if let Some(sink) = &mut self.sink {
            let r = match sink {
                Sink::Plain(f) => f.write_all(data),
                Sink::Bzip2(e) => e.write_all(data),
                Sink::Pending(_) => Ok(()),
            };
            if let Err(e) = r {
                tracing::warn!("cannot write the build log {}: {e}", self.path.display());
                self.sink = None;
            }
        }
        self.split(data, &mut line);
    }

    fn split(&mut self, data: &[u8], line: &mut impl FnMut(&str)) {
        for &b in data {
            if b == b'\n' {
                let text = String::from_utf8_lossy(&self.partial).into_owned();
                let text = match text.rfind('\r') {
                    Some(i) => text[i + 1..].to_owned(),
                    None => text,
                };
                line(&text);
                if self.keep > 0 {
                    if self.tail.len() == self.keep {
                        self.tail.pop_front();
                    }
                    self.tail.push_back(text);
                }
                self.partial.clear();
            } else {
                self.partial.push(b);
            }
        }
    }

    /// Passes on an unterminated last line and closes the file.
    pub fn finish(&mut self, mut line: impl FnMut(&str)) {
        if !self.partial.is_empty() {
            self.split(b"\n", &mut line);
        }
        let finished = match self.sink.take() {
            Some(Sink::Bzip2(e)) => e.finish().map(drop),
            // An empty log: the empty bzip2 stream, without an encoder.
            Some(Sink::Pending(mut f)) => f.write_all(EMPTY_BZIP2),
            Some(Sink::Plain(_)) | None => Ok(()),
        };
        if let Err(e) = finished {
            tracing::warn!("cannot write the build log {}: {e}", self.path.display());
        }
    }

    /// The last lines, oldest first.
    pub fn tail(&self) -> impl Iterator<Item = &str> {
        self.tail.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_tail_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        let sd = store::StoreDir::new("/nix/store").unwrap();
        let drv = sd.parse_path("/nix/store/hxcnl7nh8wbfiwfzkfnac84cgnf766kc-triv.drv").unwrap();
        let mut log = BuildLog::create(dir.path(), &drv, true, 2).unwrap();
        let mut seen = Vec::new();
        log.write(b"one\ntw", |l| seen.push(l.to_owned()));
        log.write(b"o\nprogress 1\rprogress 2\nlast", |l| seen.push(l.to_owned()));
        log.finish(|l| seen.push(l.to_owned()));
        assert_eq!(seen, ["one", "two", "progress 2", "last"]);
        assert_eq!(log.tail().collect::<Vec<_>>(), ["progress 2", "last"]);
        assert!(dir.path().join("drvs/hx/cnl7nh8wbfiwfzkfnac84cgnf766kc-triv.drv.bz2").exists());
        let text = read_log(dir.path(), &drv).unwrap().unwrap();
        assert_eq!(text, b"one\ntwo\nprogress 1\rprogress 2\nlast");
        BuildLog::create(dir.path(), &drv, true, 2).unwrap().finish(|_| {});
        assert_eq!(read_log(dir.path(), &drv).unwrap().unwrap(), b"");
    }
}
