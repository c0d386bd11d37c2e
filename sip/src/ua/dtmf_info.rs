//! DTMF carried in SIP INFO bodies: `application/dtmf-relay` (`Signal=5`) and
//! `application/dtmf` (`5`). Pure parsing; the call task answers the INFO and forwards
//! the digit to the engine like an RFC 4733 digit.

/// What an INFO body means to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoBody {
    /// A DTMF digit.
    Digit(char),
    /// A DTMF content type whose body names no valid digit.
    BadDigit,
    /// No body (a keepalive, or a probe for INFO support).
    Empty,
    /// A content type we do not handle.
    Unsupported,
}

/// Interprets an INFO request's Content-Type and body.
pub fn parse_info(content_type: Option<&str>, body: &[u8]) -> InfoBody {
    if body.iter().all(u8::is_ascii_whitespace) {
        return InfoBody::Empty;
    }
    let Some(content_type) = content_type else {
        return InfoBody::Unsupported;
    };
    // Parameters (`;charset=...`) do not change the meaning.
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Ok(text) = std::str::from_utf8(body) else {
        return InfoBody::BadDigit;
    };
    let digit = match mime.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            name.trim().eq_ignore_ascii_case("signal").then(|| digit_from(value.trim()))?
        }),
        "application/dtmf" => digit_from(text.trim()),
        _ => return InfoBody::Unsupported,
    };
    digit.map_or(InfoBody::BadDigit, InfoBody::Digit)
}

/// A digit written as itself or as its RFC 4733 event number (10 = `*`, 11 = `#`,
/// 12-15 = `A`-`D`), as some phones do.
fn digit_from(text: &str) -> Option<char> {
    let mut chars = text.chars();
    let (first, rest) = (chars.next()?, chars.as_str());
    if rest.is_empty() {
        let digit = first.to_ascii_uppercase();
        return matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D').then_some(digit);
    }
    match text.parse::<u8>().ok()? {
        10 => Some('*'),
        11 => Some('#'),
        n @ 12..=15 => Some(char::from(b'A' + (n - 12))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_bodies() {
        let ct = Some("application/dtmf-relay");
        assert_eq!(parse_info(ct, b"Signal=5\r\nDuration=160\r\n"), InfoBody::Digit('5'));
        assert_eq!(parse_info(ct, b"Signal= *\r\nDuration=160"), InfoBody::Digit('*'));
        assert_eq!(parse_info(ct, b"signal=#"), InfoBody::Digit('#'));
        assert_eq!(parse_info(ct, b"Signal=10\r\n"), InfoBody::Digit('*'));
        assert_eq!(parse_info(ct, b"Signal=11\r\n"), InfoBody::Digit('#'));
        assert_eq!(parse_info(ct, b"Signal=d\r\n"), InfoBody::Digit('D'));
        assert_eq!(parse_info(ct, b"Signal=x\r\n"), InfoBody::BadDigit);
        assert_eq!(parse_info(ct, b"Duration=160\r\n"), InfoBody::BadDigit);
        assert_eq!(parse_info(ct, b"Signal=99\r\n"), InfoBody::BadDigit);
    }

    #[test]
    fn dtmf_bodies() {
        let ct = Some("Application/DTMF; charset=utf-8");
        assert_eq!(parse_info(ct, b"7\r\n"), InfoBody::Digit('7'));
        assert_eq!(parse_info(ct, b"77"), InfoBody::BadDigit);
        assert_eq!(parse_info(ct, &[0xff, 0xfe]), InfoBody::BadDigit);
    }

    #[test]
    fn empty_and_foreign_bodies() {
        assert_eq!(parse_info(None, b""), InfoBody::Empty);
        assert_eq!(parse_info(Some("application/dtmf"), b"\r\n"), InfoBody::Empty);
        assert_eq!(parse_info(Some("text/plain"), b"hello"), InfoBody::Unsupported);
        assert_eq!(parse_info(None, b"5"), InfoBody::Unsupported);
    }
}
