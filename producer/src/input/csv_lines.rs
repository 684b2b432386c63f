//! Line bookkeeping for CSV. The csv crate reports a record's position as the
//! start of any blank lines before it, and after a `\r\n` it points at the
//! `\n`, so its line numbers drift. [`Normalized`] sits between the input and
//! the csv reader: it turns `\r\n` into `\n` and notes where each `\n` lands,
//! so that [`Tracker::line`] can step over the blank lines that precede a
//! record. It also counts the raw bytes read, for progress.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
struct State {
    /// Raw input bytes consumed.
    raw_bytes: u64,
    /// Normalized bytes handed to the csv reader.
    out_bytes: u64,
    /// Offsets (normalized) of the `\n`s not yet passed by a record.
    newlines: VecDeque<u64>,
}

/// The csv reader's side: asks where records really start.
#[derive(Debug, Clone, Default)]
pub(super) struct Tracker(Arc<Mutex<State>>);

impl Tracker {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn raw_bytes(&self) -> u64 {
        self.with(|s| s.raw_bytes)
    }

    /// The true line of a record the csv crate places at `line`, `byte`: one
    /// more for each blank line (a `\n` right at the start) it included.
    pub(super) fn line(&self, line: u64, byte: u64) -> u64 {
        self.with(|s| {
            while s.newlines.front().is_some_and(|&at| at < byte) {
                s.newlines.pop_front();
            }
            let blank = s.newlines.iter().zip(byte..).take_while(|(at, want)| **at == *want).count();
            line + blank as u64
        })
    }
}

/// The input as the csv reader sees it.
pub(super) struct Normalized {
    inner: Box<dyn BufRead + Send>,
    /// A `\r` ended the last chunk; whether it is dropped depends on the next byte.
    pending_cr: bool,
    tracker: Tracker,
}

impl Normalized {
    pub(super) fn new(inner: Box<dyn BufRead + Send>) -> (Self, Tracker) {
        let tracker = Tracker::default();
        (Normalized { inner, pending_cr: false, tracker: tracker.clone() }, tracker)
    }
}

/// Copies `input` to `out` without the `\r` of each `\r\n`; returns (consumed, written).
/// A `\r` that ends `input` is held back in `pending_cr` until the next byte is known.
fn convert(input: &[u8], out: &mut [u8], pending_cr: &mut bool) -> (usize, usize) {
    let (mut used, mut n) = (0, 0);
    if std::mem::take(pending_cr) && input.first() != Some(&b'\n') {
        out[0] = b'\r';
        n = 1;
    }
    while used < input.len() && n < out.len() {
        let byte = input[used];
        used += 1;
        if byte == b'\r' {
            match input.get(used) {
                Some(b'\n') => continue,
                None => {
                    *pending_cr = true;
                    continue;
                }
                Some(_) => {}
            }
        }
        out[n] = byte;
        n += 1;
    }
    (used, n)
}

impl Read for Normalized {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.inner.fill_buf()?;
            let at_end = input.is_empty();
            let (used, n) = if at_end {
                // End of input: a held-back `\r` was not part of a `\r\n`.
                out[0] = b'\r';
                (0, usize::from(std::mem::take(&mut self.pending_cr)))
            } else {
                convert(input, out, &mut self.pending_cr)
            };
            self.inner.consume(used);
            self.tracker.with(|s| {
                s.raw_bytes += used as u64;
                let start = s.out_bytes;
                s.newlines.extend(out[..n].iter().zip(start..).filter(|(b, _)| **b == b'\n').map(|(_, at)| at));
                s.out_bytes += n as u64;
            });
            // Ok(0) means end of input: read on when only a `\r` was held back.
            if n > 0 || at_end {
                return Ok(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_becomes_lf_across_chunk_boundaries() {
        let data = b"a\r\nb\rc\r\r\n\r";
        for chunk in 1..=data.len() {
            let (mut reader, tracker) = Normalized::new(Box::new(std::io::BufReader::with_capacity(chunk, &data[..])));
            let mut out = Vec::new();
            for size in [1, 2, 64].into_iter().cycle() {
                let mut buf = vec![0; size];
                match reader.read(&mut buf).expect("read") {
                    0 => break,
                    n => out.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(out, b"a\nb\rc\r\n\r", "chunk {chunk}");
            assert_eq!(tracker.raw_bytes(), data.len() as u64);
        }
    }

    #[test]
    fn blank_lines_before_a_record_are_stepped_over() {
        let (mut reader, tracker) = Normalized::new(Box::new(&b"h\n\n\nx\ny\n"[..]));
        std::io::copy(&mut reader, &mut std::io::sink()).expect("read");
        // The csv crate puts `x` at line 2, byte 2 (the first blank line).
        assert_eq!(tracker.line(2, 2), 4);
        assert_eq!(tracker.line(5, 6), 5);
    }
}
