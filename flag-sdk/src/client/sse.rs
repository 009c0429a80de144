//! A pure decoder for `text/event-stream` (the WHATWG "server-sent events" parsing rules):
//! bytes in, frames out. No I/O, no clock, no tokio, so it is tested against recorded `.sse`
//! fixtures byte for byte.
//!
//! Follows the spec: a leading UTF-8 BOM is dropped; lines end with CRLF, LF or CR (a CRLF
//! split across two chunks counts once); `data` lines are joined with `\n`; a line starting
//! with `:` is a comment (reported, because heartbeats are comments); `retry:` takes only
//! ASCII digits; `id:` containing NUL is ignored; an event is dispatched on an empty line and
//! only when it has data. Lines longer than [`MAX_LINE`] are an error rather than unbounded
//! memory.

use std::time::Duration;

/// The longest line accepted: a `put` carries a whole snapshot on one `data:` line.
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// One thing the decoder recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A dispatched event.
    Event(Event),
    /// A comment line (without the leading `:`); servers send them as heartbeats.
    Comment(String),
    /// The server's reconnection delay.
    Retry(Duration),
}

/// A dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type (`message` when the server named none).
    pub event: String,
    /// The data lines joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream so far (empty when none).
    pub id: String,
}

/// A line exceeded [`MAX_LINE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event-stream line is longer than {MAX_LINE} bytes")]
pub struct LineTooLong;

/// The decoder's state between chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    line: Vec<u8>,
    started: bool,
    /// The previous chunk ended with CR: a LF at the start of the next one is the same break.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: String,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Feeds a chunk, appending every complete frame to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), LineTooLong> {
        if chunk.is_empty() {
            return Ok(());
        }
        if !self.started {
            // The BOM may itself arrive split; hold bytes until we can tell.
            let pending = self.line.len() + chunk.len();
            if pending < 3 && b"\xEF\xBB\xBF".starts_with(&[&self.line[..], chunk].concat()) {
                self.line.extend_from_slice(chunk);
                return Ok(());
            }
            self.started = true;
            let mut head = std::mem::take(&mut self.line);
            head.extend_from_slice(chunk);
            let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head).to_vec();
            return self.feed_body(&body, out);
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        self.feed_body(chunk, out)
    }

    fn feed_body(&mut self, mut chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), LineTooLong> {
        while let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) {
            let line_end = if self.line.is_empty() {
                self.process_line(&chunk[..end], out);
                end
            } else {
                self.line.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
                end
            };
            let mut next = line_end + 1;
            if chunk[line_end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            chunk = &chunk[next..];
        }
        if self.line.len() + chunk.len() > MAX_LINE {
            self.line.clear();
            return Err(LineTooLong);
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Frame>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let line = String::from_utf8_lossy(line);
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Frame::Comment(comment.to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => value.clone_into(&mut self.last_id),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    out.push(Frame::Retry(Duration::from_millis(ms)));
                }
            }
            _ => {} // unknown fields are ignored
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Frame>) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            self.data.clear();
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the trailing `\n`
        out.push(Frame::Event(Event {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_chunks(input: &[u8], size: usize) -> Vec<Frame> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        for chunk in input.chunks(size.max(1)) {
            decoder.feed(chunk, &mut out).unwrap();
        }
        out
    }

    /// Every chunking of the input decodes the same.
    fn decode(input: &[u8]) -> Vec<Frame> {
        let whole = decode_in_chunks(input, input.len());
        for size in 1..=input.len().min(9) {
            assert_eq!(decode_in_chunks(input, size), whole, "chunk size {size}");
        }
        whole
    }

    fn event(event: &str, data: &str, id: &str) -> Frame {
        Frame::Event(Event {
            event: event.to_owned(),
            data: data.to_owned(),
            id: id.to_owned(),
        })
    }

    #[test]
    fn line_endings_are_equivalent() {
        let want = vec![event("put", "a\nb", "7"), event("message", "c", "7")];
        assert_eq!(
            decode(b"event: put\nid: 7\ndata: a\ndata: b\n\ndata: c\n\n"),
            want
        );
        assert_eq!(
            decode(b"event: put\r\nid: 7\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"),
            want
        );
        assert_eq!(
            decode(b"event: put\rid: 7\rdata: a\rdata: b\r\rdata: c\r\r"),
            want
        );
    }

    #[test]
    fn bom_is_dropped_once() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFdata: x\n\n"),
            vec![event("message", "x", "")]
        );
        // A second BOM is part of the field name, which is then unknown.
        assert_eq!(decode(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"), vec![]);
    }

    #[test]
    fn comments_retry_and_ids() {
        let frames = decode(b": hi\nretry: 1500\nretry: 1.5\nid: 3\n\nid\ndata:x\n\n");
        assert_eq!(
            frames,
            vec![
                Frame::Comment(" hi".to_owned()),
                Frame::Retry(Duration::from_millis(1500)),
                event("message", "x", ""),
            ]
        );
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        assert_eq!(
            decode(b"event: put\n\ndata\n\n"),
            vec![event("message", "", "")]
        );
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        assert_eq!(
            decode(b"data:  two\ndata:none\n\n"),
            vec![event("message", " two\nnone", "")]
        );
    }

    #[test]
    fn incomplete_event_is_held() {
        assert_eq!(decode(b"data: x\n"), vec![]);
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        decoder.feed(b"data: ", &mut out).unwrap();
        let big = vec![b'x'; MAX_LINE];
        assert_eq!(decoder.feed(&big, &mut out), Err(LineTooLong));
    }
}
