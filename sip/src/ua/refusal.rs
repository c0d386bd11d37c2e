//! Refusals a person can act on: what was wrong with a request, written into the
//! response as a `Warning: 399` header (RFC 3261 section 20.43) and into the log as
//! one line with the peer's address, rate-limited so that a flood cannot fill the log.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rsipstack::sip::{Header, StatusCode};

/// Log lines about refused requests allowed per [`LOG_WINDOW`]; the rest are
/// counted and the count is reported with the next line that is written. Twenty a
/// minute is enough to see what a misconfigured phone does, and bounds a flood of
/// bad datagrams to about 30 000 lines a day.
pub const LOG_BURST: u32 = 20;
/// The window [`LOG_BURST`] applies to.
pub const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Longest Warning text, in bytes: what is wrong fits in a line; a peer's bytes
/// echoed back must not make our response large.
const MAX_WARNING_TEXT: usize = 160;

/// Why a request is refused: the status, a reason phrase naming the problem, and
/// a longer explanation for the Warning header and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The SIP status code.
    pub status: u16,
    /// The reason phrase of the status line (`Missing Call-ID`). It never names a
    /// header the response carries: SIPp, for one, finds a header by searching the
    /// message for its name and would read the status line instead.
    pub reason: &'static str,
    /// What exactly is wrong, for the Warning header and the log.
    pub detail: String,
}

impl Refusal {
    /// A refusal whose detail says more than its reason phrase.
    pub fn new(status: u16, reason: &'static str, detail: impl Into<String>) -> Self {
        Refusal { status, reason, detail: detail.into() }
    }

    /// The status for rsipstack, carrying our reason phrase (rsipstack writes the
    /// text of `Other` as it is and goes by the number for everything else).
    pub(crate) fn status_code(&self) -> StatusCode {
        StatusCode::Other(self.status, self.reason.to_owned())
    }
}

/// The `Warning` header value `399 <agent> "<text>"`, with the text made safe for a
/// quoted string (no quotes, backslashes or control characters) and shortened.
pub fn warning_value(agent: &str, text: &str) -> String {
    let mut safe = String::with_capacity(text.len().min(MAX_WARNING_TEXT));
    for c in text.chars() {
        let c = match c {
            '"' => '\'',
            '\\' => '/',
            c if c.is_control() => ' ',
            c => c,
        };
        if safe.len() + c.len_utf8() > MAX_WARNING_TEXT {
            break;
        }
        safe.push(c);
    }
    format!("399 {agent} \"{safe}\"")
}

/// The Warning header for rsipstack responses.
pub(crate) fn warning_header(agent: &str, text: &str) -> Header {
    Header::Warning(warning_value(agent, text).into())
}

/// A budget of log lines per window: sans-IO, fed with the time of each refusal.
#[derive(Debug)]
pub struct LogBudget {
    burst: u32,
    window: Duration,
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    /// At most `burst` lines per `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        LogBudget { burst, window, window_start: None, used: 0, suppressed: 0 }
    }

    /// Whether a refusal at `now` may be logged: `Some(n)` with the number of
    /// refusals not logged since the last line, or `None` to stay quiet. A clock
    /// that goes backwards keeps the current window.
    #[must_use]
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used >= self.burst {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.used += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget::new(LOG_BURST, LOG_WINDOW)
    }
}

/// The shared log of refusals: the UDP screen and the user agent write through it.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    budget: Mutex<LogBudget>,
}

impl RefusalLog {
    /// Logs one refused request at info level (the default filter shows it), unless
    /// the budget is spent.
    pub(crate) fn log(&self, peer: Option<SocketAddr>, method: &str, refusal: &Refusal) {
        let admitted = match self.budget.lock() {
            Ok(mut budget) => budget.admit(Instant::now()),
            Err(_) => Some(0),
        };
        let Some(suppressed) = admitted else {
            return;
        };
        tracing::info!(
            peer = peer.map(tracing::field::display),
            %method,
            status = refusal.status,
            problem = %refusal.detail,
            suppressed = (suppressed > 0).then_some(suppressed),
            "SIP request refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_text_is_quoted_safely_and_bounded() {
        assert_eq!(
            warning_value("192.0.2.1:5060", "Missing Call-ID header"),
            "399 192.0.2.1:5060 \"Missing Call-ID header\""
        );
        assert_eq!(warning_value("h", "a \"b\" \\c\r\nd"), "399 h \"a 'b' /c  d\"");
        let long = warning_value("h", &"é".repeat(500));
        assert!(long.len() <= MAX_WARNING_TEXT + 10, "{long}");
        assert!(long.ends_with("é\""), "{long}");
    }

    #[test]
    fn budget_allows_a_burst_per_window_and_counts_the_rest() {
        let start = Instant::now();
        let mut budget = LogBudget::new(3, Duration::from_secs(60));
        assert_eq!(budget.admit(start), Some(0));
        assert_eq!(budget.admit(start), Some(0));
        assert_eq!(budget.admit(start + Duration::from_secs(1)), Some(0));
        assert_eq!(budget.admit(start + Duration::from_secs(2)), None);
        assert_eq!(budget.admit(start + Duration::from_secs(59)), None);
        // A new window: the first line reports the two that were not logged.
        assert_eq!(budget.admit(start + Duration::from_secs(61)), Some(2));
        assert_eq!(budget.admit(start + Duration::from_secs(61)), Some(0));
    }

    #[test]
    fn budget_ignores_a_clock_going_backwards() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut budget = LogBudget::new(1, Duration::from_secs(60));
        assert_eq!(budget.admit(start), Some(0));
        assert_eq!(budget.admit(start - Duration::from_secs(5)), None);
    }
}
