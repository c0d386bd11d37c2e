//! The TCP 4011 line codec, sans-IO: bytes in, complete lines out
//! ([`LineDecoder`]); a line split into comma-separated fields ([`split_fields`]);
//! and the writing rules for answer fields ([`quoted`], [`token`]). No sockets here,
//! so every framing and quoting rule is tested with plain byte strings.

use std::collections::VecDeque;

/// The longest line accepted, in bytes, without its CR LF. Longer lines are
/// answered with an error and skipped up to their end, never buffered whole.
pub const MAX_LINE: usize = 4096;

/// Why bytes did not make a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More than the line limit without a line feed. Reported once, as soon as the
    /// limit is passed; the rest of that line is discarded.
    #[error("Line too long")]
    TooLong,
}

/// Splits a byte stream into lines ended by LF or CR LF, across any split of the
/// stream into reads. Holds at most one partial line of the limit's length.
#[derive(Debug)]
pub struct LineDecoder {
    max_line: usize,
    partial: Vec<u8>,
    /// Inside an overlong line whose error has been reported: drop bytes up to LF.
    discarding: bool,
    ready: VecDeque<Result<String, FrameError>>,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl LineDecoder {
    pub fn new(max_line: usize) -> Self {
        Self { max_line, partial: Vec::new(), discarding: false, ready: VecDeque::new() }
    }

    /// Takes the bytes of one read. Complete lines (and overlong-line errors)
    /// become available through [`LineDecoder::poll_line`].
    pub fn handle_bytes(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            let Some(end) = input.iter().position(|b| *b == b'\n') else {
                self.take_partial(input);
                return;
            };
            let (head, rest) = (&input[..end], &input[end + 1..]);
            input = rest;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(head);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > self.max_line {
                self.ready.push_back(Err(FrameError::TooLong));
            } else {
                self.ready.push_back(Ok(decode_text(&line)));
            }
        }
    }

    /// Bytes of a line whose end has not arrived yet.
    fn take_partial(&mut self, input: &[u8]) {
        if self.discarding {
            return;
        }
        // One more byte than the limit leaves room for the CR of a CR LF.
        if self.partial.len() + input.len() > self.max_line + 1 {
            self.partial = Vec::new();
            self.discarding = true;
            self.ready.push_back(Err(FrameError::TooLong));
        } else {
            self.partial.extend_from_slice(input);
        }
    }

    /// The next complete line, without its line end, or `None` until more bytes
    /// arrive.
    #[must_use]
    pub fn poll_line(&mut self) -> Option<Result<String, FrameError>> {
        self.ready.pop_front()
    }

    /// How many bytes of an unfinished line are held.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }
}

/// A line's text. UTF-8 as it should be; anything else is read as Windows-1252,
/// the code page of the Windows clients this protocol was made for, so that their
/// typographic quotes (0x93, 0x94) still work as quotes.
fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|b| windows_1252(*b)).collect(),
    }
}

fn windows_1252(byte: u8) -> char {
    match byte {
        0x91 => '\u{2018}',
        0x92 => '\u{2019}',
        0x93 => '\u{201C}',
        0x94 => '\u{201D}',
        0x96 => '\u{2013}',
        0x97 => '\u{2014}',
        // The rest of 0x80..=0x9F matters little here; Latin-1 for everything else.
        other => char::from(other),
    }
}

/// A line that is not a well-formed list of fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("unterminated quoted field")]
    UnterminatedQuote,
    #[error("text after a closing quote")]
    TextAfterQuote,
}

/// The typographic quotes the protocol document prints (“ and ”, used either way
/// round, as the document does).
fn is_typographic_quote(c: char) -> bool {
    matches!(c, '\u{201C}' | '\u{201D}')
}

/// Splits a line into its comma-separated fields.
///
/// - A field in ASCII double quotes may hold commas; inside it, `""` stands for
///   one `"`. A field in typographic quotes (`“...”`, `”...”`) ends at the next
///   typographic quote. The text inside quotes is kept exactly.
/// - An unquoted field is trimmed of surrounding spaces and tabs.
/// - Empty fields are kept: `A,,B` has three fields, the middle one empty.
pub fn split_fields(line: &str) -> Result<Vec<String>, FieldError> {
    enum State {
        Start,
        Unquoted,
        /// In ASCII quotes (`true`) or typographic ones.
        Quoted(bool),
        AfterQuote,
    }
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut state = State::Start;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            State::Start => {
                if c == ',' {
                    fields.push(std::mem::take(&mut field));
                } else if c == '"' || is_typographic_quote(c) {
                    state = State::Quoted(c == '"');
                } else if c != ' ' && c != '\t' {
                    field.push(c);
                    state = State::Unquoted;
                }
            }
            State::Unquoted => {
                if c == ',' {
                    fields.push(trimmed(std::mem::take(&mut field)));
                    state = State::Start;
                } else {
                    field.push(c);
                }
            }
            State::Quoted(ascii) => {
                if ascii && c == '"' && chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else if (ascii && c == '"') || (!ascii && is_typographic_quote(c)) {
                    state = State::AfterQuote;
                } else {
                    field.push(c);
                }
            }
            State::AfterQuote => {
                if c == ',' {
                    fields.push(std::mem::take(&mut field));
                    state = State::Start;
                } else if c != ' ' && c != '\t' {
                    return Err(FieldError::TextAfterQuote);
                }
            }
        }
    }
    match state {
        State::Quoted(_) => Err(FieldError::UnterminatedQuote),
        State::Unquoted => {
            fields.push(trimmed(field));
            Ok(fields)
        }
        State::Start | State::AfterQuote => {
            fields.push(field);
            Ok(fields)
        }
    }
}

fn trimmed(mut field: String) -> String {
    let end = field.trim_end_matches([' ', '\t']).len();
    field.truncate(end);
    field
}

/// A free-text answer field: always in ASCII double quotes, a quote inside written
/// twice, line breaks and other control characters written as spaces (they would
/// end the line).
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\"\""),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An identifier-like answer field (a GUID, a number): written bare when it needs
/// no quoting, otherwise as [`quoted`] text, so that no input can add a field.
pub fn token(text: &str) -> String {
    let bare = text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:@+*#!/".contains(c));
    if bare { text.to_owned() } else { quoted(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(decoder: &mut LineDecoder) -> Vec<Result<String, FrameError>> {
        std::iter::from_fn(|| decoder.poll_line()).collect()
    }

    fn fields(line: &str) -> Vec<String> {
        split_fields(line).expect("well formed")
    }

    #[test]
    fn lf_and_crlf_both_end_lines() {
        let mut d = LineDecoder::default();
        d.handle_bytes(b"LOGIN,a\r\nKEEPALIVE\nLISTCONF\r\n");
        assert_eq!(
            lines(&mut d),
            vec![Ok("LOGIN,a".into()), Ok("KEEPALIVE".into()), Ok("LISTCONF".into())]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_line_split_across_reads_is_joined() {
        let mut d = LineDecoder::default();
        let input = b"NEWCONF,123,\"Acme, Ltd\",Bob,10,,,,\r\nKEEPALIVE,x\r\n";
        for chunk in input.chunks(3) {
            d.handle_bytes(chunk);
        }
        assert_eq!(
            lines(&mut d),
            vec![Ok("NEWCONF,123,\"Acme, Ltd\",Bob,10,,,,".into()), Ok("KEEPALIVE,x".into())]
        );
    }

    #[test]
    fn a_cr_split_from_its_lf_is_still_a_line_end() {
        let mut d = LineDecoder::default();
        d.handle_bytes(b"LISTCONF\r");
        assert_eq!(lines(&mut d), vec![]);
        d.handle_bytes(b"\n");
        assert_eq!(lines(&mut d), vec![Ok("LISTCONF".into())]);
    }

    #[test]
    fn nothing_comes_out_before_the_line_end() {
        let mut d = LineDecoder::default();
        d.handle_bytes(b"LIST");
        assert_eq!(d.poll_line(), None);
        d.handle_bytes(b"CONF");
        assert_eq!(d.poll_line(), None);
        assert_eq!(d.buffered(), 8);
    }

    #[test]
    fn a_line_at_the_limit_passes_and_one_byte_more_is_refused() {
        let mut d = LineDecoder::new(8);
        d.handle_bytes(b"12345678\r\n123456789\r\nOK\n");
        assert_eq!(
            lines(&mut d),
            vec![Ok("12345678".into()), Err(FrameError::TooLong), Ok("OK".into())]
        );
    }

    #[test]
    fn an_overlong_line_is_reported_early_and_never_buffered() {
        let mut d = LineDecoder::new(16);
        for _ in 0..1000 {
            d.handle_bytes(&[b'x'; 100]);
            assert!(d.buffered() <= 17);
        }
        assert_eq!(lines(&mut d), vec![Err(FrameError::TooLong)], "reported once");
        d.handle_bytes(b"still the same line\nKEEPALIVE\n");
        assert_eq!(lines(&mut d), vec![Ok("KEEPALIVE".into())]);
    }

    #[test]
    fn windows_1252_typographic_quotes_become_quotes() {
        let mut d = LineDecoder::default();
        d.handle_bytes(b"KEEPALIVE,\x93a,b\x94\n");
        let line = d.poll_line().expect("line").expect("ok");
        assert_eq!(line, "KEEPALIVE,\u{201C}a,b\u{201D}");
        assert_eq!(fields(&line), vec!["KEEPALIVE", "a,b"]);
    }

    #[test]
    fn plain_fields_are_trimmed_and_empty_ones_kept() {
        assert_eq!(fields("A, b ,,c"), vec!["A", "b", "", "c"]);
        assert_eq!(fields("A,"), vec!["A", ""]);
        assert_eq!(fields(""), vec![""]);
        assert_eq!(fields(",,"), vec!["", "", ""]);
    }

    #[test]
    fn quoted_fields_keep_commas_spaces_and_doubled_quotes() {
        assert_eq!(fields(r#"A,"x, y"," z ""q"" ""#), vec!["A", "x, y", r#" z "q" "#]);
        assert_eq!(fields(r#"A,"""#), vec!["A", ""]);
        assert_eq!(fields(r#"A, "b" ,c"#), vec!["A", "b", "c"]);
    }

    #[test]
    fn typographic_quotes_work_either_way_round() {
        assert_eq!(fields("E,”Conference not found”"), vec!["E", "Conference not found"]);
        assert_eq!(fields("E,“a, b”,c"), vec!["E", "a, b", "c"]);
        assert_eq!(fields("E,“say \"hi\"”"), vec!["E", "say \"hi\""]);
    }

    #[test]
    fn quotes_inside_an_unquoted_field_are_text() {
        assert_eq!(fields(r#"A,it"s"#), vec!["A", r#"it"s"#]);
    }

    #[test]
    fn malformed_quoting_is_an_error() {
        assert_eq!(split_fields(r#"A,"open"#), Err(FieldError::UnterminatedQuote));
        assert_eq!(split_fields(r#"A,"x"y"#), Err(FieldError::TextAfterQuote));
    }

    #[test]
    fn quoted_output_round_trips_through_the_splitter() {
        for text in ["", "plain", "a, b", r#"say "hi""#, " spaced ", "“curly”, too", "\"\""] {
            let line = format!("X,{},Y", quoted(text));
            assert_eq!(fields(&line), vec!["X", text, "Y"], "{text:?}");
        }
    }

    #[test]
    fn output_never_contains_a_line_break() {
        assert_eq!(quoted("a\r\nb"), "\"a  b\"");
        assert_eq!(token("x\ny"), "\"x y\"");
        assert_eq!(token("0a1b-2c"), "0a1b-2c");
        assert_eq!(token("a,b"), "\"a,b\"");
    }
}
