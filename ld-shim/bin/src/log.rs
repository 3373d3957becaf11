//! A tiny stderr logger without `core::fmt` (which would double the binary): lines are assembled in a stack buffer
//! from byte strings and numbers and written with one `write`. The level comes from `NIX_LD_LOG`
//! (`error`, `warn` (default), `info`, `debug`, `trace`).

use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    pub fn parse(value: &[u8]) -> Option<Self> {
        Some(match value {
            b"error" => Self::Error,
            b"warn" => Self::Warn,
            b"info" => Self::Info,
            b"debug" => Self::Debug,
            b"trace" => Self::Trace,
            _ => return None,
        })
    }

    fn name(self) -> &'static [u8] {
        match self {
            Self::Error => b"error",
            Self::Warn => b"warn",
            Self::Info => b"info",
            Self::Debug => b"debug",
            Self::Trace => b"trace",
        }
    }
}

/// A line being assembled; over-long lines are cut, never overflowing.
pub struct Line {
    bytes: [u8; 1024],
    len: usize,
}

impl Line {
    /// A line starting with `ld-shim: `.
    pub fn new() -> Self {
        let mut line = Self { bytes: [0; 1024], len: 0 };
        line.push(b"ld-shim: ");
        line
    }

    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let room = self.bytes.len() - 1 - self.len;
        let take = bytes.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        self
    }

    pub fn push_dec(&mut self, mut value: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[at..])
    }

    pub fn push_hex(&mut self, value: usize) -> &mut Self {
        let mut digits = [0u8; 2 + 2 * core::mem::size_of::<usize>()];
        digits[0] = b'0';
        digits[1] = b'x';
        for (index, digit) in digits[2..].iter_mut().rev().enumerate() {
            *digit = b"0123456789abcdef"[(value >> (4 * index)) & 0xf];
        }
        self.push(&digits)
    }

    /// Writes the line and a newline to `fd`.
    pub fn write_to(&mut self, fd: usize) {
        self.bytes[self.len] = b'\n';
        sys::write_fd(fd, &self.bytes[..=self.len]);
    }
}

/// The logger: a level and nothing else.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    pub level: Level,
}

impl Logger {
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Starts a line `ld-shim: <level>: ` if `level` is enabled.
    pub fn line(&self, level: Level) -> Option<Line> {
        if !self.enabled(level) {
            return None;
        }
        let mut line = Line::new();
        line.push(level.name()).push(b": ");
        Some(line)
    }
}

/// Prints `ld-shim: cannot load <path>: <reason>` and exits 127, as ld.so does when it cannot run a program.
pub fn fail_load(path: &[u8], reason: &[u8]) -> ! {
    Line::new().push(b"cannot load ").push(path).push(b": ").push(reason).write_to(2);
    sys::exit(127)
}

/// Prints `ld-shim: <message>` and exits 127.
pub fn fail(message: &[u8]) -> ! {
    Line::new().push(message).write_to(2);
    sys::exit(127)
}
