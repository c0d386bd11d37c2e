//! SIP session timers (RFC 4028) as a sans-IO negotiator and timer for UAS and UAC.
//! It parses `Session-Expires` and `Min-SE`, decides the answer to a request (422, who
//! refreshes, `Require: timer`), and tells the dialog when to refresh or hang up; the
//! caller passes `now` in and sends the re-INVITE/UPDATE or BYE itself.

use std::fmt;
use std::time::{Duration, Instant};

/// The smallest session interval RFC 4028 allows (section 4).
pub const MIN_SE_FLOOR: u32 = 90;

/// Largest interval we keep; a year is far beyond any sane session interval and keeps
/// deadline arithmetic far from overflow.
pub const MAX_INTERVAL: u32 = 86_400 * 365;

/// Errors reading session-timer headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// A header value that does not follow the RFC 4028 grammar.
    #[error("malformed {header}: {reason}")]
    Malformed {
        /// `Session-Expires` or `Min-SE`.
        header: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A 422 without a usable Min-SE, or one that asks for no more than we sent:
    /// retrying would loop.
    #[error("422 response without a larger Min-SE")]
    Useless422,
}

/// Which side of the transaction that negotiated the interval refreshes the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The UAC of that transaction.
    Uac,
    /// The UAS of that transaction.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// Our role in a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the request.
    Uac,
    /// We received the request.
    Uas,
}

/// A `Session-Expires` header value (also written `x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval in seconds.
    pub interval: u32,
    /// The `refresher` parameter, when present.
    pub refresher: Option<Refresher>,
}

fn parse_delta_seconds(text: &str, header: &'static str) -> Result<u32, TimerError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimerError::Malformed { header, reason: "expected delta-seconds" });
    }
    // Longer digit strings than u32 are clamped rather than refused: RFC 3261
    // delta-seconds may be large, and the value is capped anyway.
    Ok(text.parse::<u64>().unwrap_or(u64::MAX).min(u64::from(MAX_INTERVAL)) as u32)
}

impl SessionExpires {
    /// Parses `1800`, `1800;refresher=uac`, `1800 ; Refresher = UAS ;foo=bar`.
    pub fn parse(value: &str) -> Result<Self, TimerError> {
        const HEADER: &str = "Session-Expires";
        let mut parts = value.split(';');
        let interval = parse_delta_seconds(parts.next().unwrap_or(""), HEADER)?;
        let mut refresher = None;
        for param in parts {
            let (name, val) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (param.trim(), None),
            };
            if name.is_empty() {
                return Err(TimerError::Malformed { header: HEADER, reason: "empty parameter" });
            }
            if name.eq_ignore_ascii_case("refresher") {
                let parsed = match val {
                    Some(v) if v.eq_ignore_ascii_case("uac") => Refresher::Uac,
                    Some(v) if v.eq_ignore_ascii_case("uas") => Refresher::Uas,
                    _ => {
                        return Err(TimerError::Malformed {
                            header: HEADER,
                            reason: "refresher must be uac or uas",
                        });
                    }
                };
                if refresher.replace(parsed).is_some() {
                    return Err(TimerError::Malformed {
                        header: HEADER,
                        reason: "duplicate refresher",
                    });
                }
            }
        }
        Ok(SessionExpires { interval, refresher })
    }
}

impl fmt::Display for SessionExpires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.interval)?;
        if let Some(r) = self.refresher {
            write!(f, ";refresher={}", r.as_str())?;
        }
        Ok(())
    }
}

/// Parses a `Min-SE` header value (`90`, `90;foo=bar`).
pub fn parse_min_se(value: &str) -> Result<u32, TimerError> {
    parse_delta_seconds(value.split(';').next().unwrap_or(""), "Min-SE")
}

/// Our session-timer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Use session timers at all.
    pub enabled: bool,
    /// The interval we ask for, and the most we keep when a UAC asks for more.
    pub session_expires: u32,
    /// The smallest interval we accept (never below [`MIN_SE_FLOOR`]).
    pub min_se: u32,
    /// Who refreshes when the UAC supports timers and leaves the choice to us.
    pub preferred_refresher: Refresher,
}

impl Default for TimerConfig {
    /// 1800 s asked, 90 s accepted, and the UAC refreshes when it can (it is the side
    /// that cares most that the call is still up, and it saves the server re-INVITEs).
    fn default() -> Self {
        TimerConfig {
            enabled: true,
            session_expires: 1800,
            min_se: MIN_SE_FLOOR,
            preferred_refresher: Refresher::Uac,
        }
    }
}

impl TimerConfig {
    fn floor(&self) -> u32 {
        self.min_se.max(MIN_SE_FLOOR)
    }
}

/// The session-timer headers of a request (INVITE, re-INVITE or UPDATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerRequest {
    /// `Supported` (or `Require`) lists `timer`.
    pub supports_timer: bool,
    /// The `Session-Expires` value, if any.
    pub session_expires: Option<SessionExpires>,
    /// The `Min-SE` value, if any.
    pub min_se: Option<u32>,
}

/// An agreed session interval and who refreshes, relative to the transaction that
/// agreed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The session interval in seconds.
    pub interval: u32,
    /// Who refreshes.
    pub refresher: Refresher,
}

/// What a UAS puts in its 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerResponse {
    /// The `Session-Expires` value for the 2xx (always with `refresher`).
    pub session_expires: SessionExpires,
    /// Add `Require: timer` to the 2xx.
    pub require_timer: bool,
}

impl TimerResponse {
    /// The agreement this response makes.
    pub fn negotiated(&self) -> Negotiated {
        Negotiated {
            interval: self.session_expires.interval,
            refresher: self.session_expires.refresher.unwrap_or(Refresher::Uas),
        }
    }
}

/// A UAS's decision on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasDecision {
    /// Answer 422 (Session Interval Too Small) with this `Min-SE`.
    Reject {
        /// The `Min-SE` header value for the 422.
        min_se: u32,
    },
    /// Go on; the 2xx carries these headers, or none when there is no session timer.
    Accept(Option<TimerResponse>),
}

/// Decides a UAS's answer to a request's session-timer headers (RFC 4028 section 9).
pub fn uas_decide(config: &TimerConfig, request: &TimerRequest) -> UasDecision {
    if !config.enabled {
        return UasDecision::Accept(None);
    }
    let floor = config.floor();
    // The interval may not go below what the request's Min-SE demands.
    let request_floor = request.min_se.unwrap_or(0).max(MIN_SE_FLOOR);

    let (interval, asked_refresher) = match request.session_expires {
        Some(se) => {
            if se.interval < floor && request.supports_timer {
                return UasDecision::Reject { min_se: floor };
            }
            // The UAS may lower the interval (to its own preference, not below the
            // request's Min-SE) but never raise it. Without UAC support a 422 would not
            // be understood; a value under the RFC floor is invalid and read as 90.
            let lowered = config.session_expires.max(request_floor).max(floor);
            (se.interval.min(lowered).max(MIN_SE_FLOOR), se.refresher)
        }
        None => (config.session_expires.max(request_floor).max(floor), None),
    };

    let refresher = if request.supports_timer {
        asked_refresher.unwrap_or(config.preferred_refresher)
    } else {
        // Only we can refresh: the UAC does not know the extension.
        Refresher::Uas
    };

    UasDecision::Accept(Some(TimerResponse {
        session_expires: SessionExpires { interval, refresher: Some(refresher) },
        require_timer: request.supports_timer,
    }))
}

/// The UAC side of negotiating an interval: the headers to send, and the reaction to
/// 422 and 2xx responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UacNegotiator {
    config: TimerConfig,
    /// The largest Min-SE seen so far (RFC 4028 section 7.1: sent on every retry).
    min_se: u32,
    /// For a refresh of a running session: its current interval, which the
    /// request keeps, with us as the refresher.
    refreshing: Option<u32>,
}

impl UacNegotiator {
    /// A negotiator for one INVITE (and its 422 retries).
    pub fn new(config: TimerConfig) -> Self {
        UacNegotiator { config, min_se: config.floor(), refreshing: None }
    }

    /// A negotiator for the refresh (re-INVITE or UPDATE) of a session whose
    /// current interval is `interval` seconds: the request carries that interval
    /// and `refresher=uac` (RFC 4028 section 7.4), not our initial preference.
    pub fn refresh(config: TimerConfig, interval: u32) -> Self {
        UacNegotiator { config, min_se: config.floor(), refreshing: Some(interval) }
    }

    /// The interval this request asks for.
    fn asked(&self) -> u32 {
        self.refreshing.unwrap_or(self.config.session_expires).max(self.min_se)
    }

    /// Headers for the request: `Supported: timer` is always sent; `Session-Expires`
    /// and `Min-SE` when timers are enabled.
    pub fn request(&self) -> TimerRequest {
        if !self.config.enabled {
            return TimerRequest { supports_timer: true, session_expires: None, min_se: None };
        }
        TimerRequest {
            supports_timer: true,
            session_expires: Some(SessionExpires {
                interval: self.asked(),
                refresher: self.refreshing.map(|_| Refresher::Uac),
            }),
            min_se: Some(self.min_se),
        }
    }

    /// A 422 arrived with this `Min-SE`: raise our interval to it, then retry with
    /// [`UacNegotiator::request`]. Errors when retrying cannot help.
    pub fn handle_422(&mut self, min_se: Option<u32>) -> Result<(), TimerError> {
        let sent = self.asked();
        match min_se {
            Some(asked) if asked > sent && asked <= MAX_INTERVAL => {
                self.min_se = asked;
                Ok(())
            }
            _ => Err(TimerError::Useless422),
        }
    }

    /// A 2xx arrived with this `Session-Expires` (if any): the agreement, relative to
    /// our request. Without one, we still refresh ourselves at the interval we asked
    /// (RFC 4028 section 7.2 allows it), which keeps dead calls from lingering.
    pub fn handle_2xx(&self, session_expires: Option<SessionExpires>) -> Option<Negotiated> {
        if !self.config.enabled {
            return session_expires.map(|se| Negotiated {
                interval: se.interval.max(MIN_SE_FLOOR),
                refresher: se.refresher.unwrap_or(Refresher::Uac),
            });
        }
        Some(match session_expires {
            Some(se) => Negotiated {
                interval: se.interval.max(MIN_SE_FLOOR),
                // A UAS must say; when it does not, refreshing ourselves is the safe side.
                refresher: se.refresher.unwrap_or(Refresher::Uac),
            },
            None => Negotiated { interval: self.asked(), refresher: Refresher::Uac },
        })
    }
}

/// What the dialog must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Send a refresh (re-INVITE or UPDATE) now.
    Refresh,
    /// The session has expired without a refresh: send BYE.
    Expire,
}

/// The running session timer of one dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    interval: Duration,
    we_refresh: bool,
    last_refresh: Instant,
    refresh_sent: bool,
    expired: bool,
}

impl SessionTimer {
    /// Starts the timer when the 2xx of the negotiating transaction is sent or
    /// received; `role` is our role in that transaction.
    pub fn new(now: Instant, negotiated: Negotiated, role: Role) -> Self {
        SessionTimer {
            interval: Duration::from_secs(u64::from(negotiated.interval.max(1))),
            we_refresh: we_refresh(negotiated.refresher, role),
            last_refresh: now,
            refresh_sent: false,
            expired: false,
        }
    }

    /// Whether we are the refresher.
    pub fn we_refresh(&self) -> bool {
        self.we_refresh
    }

    /// The session interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When we must send a refresh: half the interval after the last one
    /// (RFC 4028 section 10), or `None` if the peer refreshes.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.we_refresh.then(|| self.last_refresh + self.interval / 2)
    }

    /// When to give up and send BYE: the interval minus the lesser of 32 seconds and
    /// a third of it, after the last refresh (RFC 4028 section 10).
    pub fn expires_at(&self) -> Instant {
        let margin = Duration::from_secs(32).min(self.interval / 3);
        self.last_refresh + (self.interval - margin)
    }

    /// The next deadline at which [`SessionTimer::handle_timeout`] has work, or `None`
    /// once expired.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.expired {
            return None;
        }
        match self.refresh_at() {
            Some(at) if !self.refresh_sent => Some(at),
            _ => Some(self.expires_at()),
        }
    }

    /// Time has passed; returns what to do, if anything. Each action is returned once.
    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if self.expired {
            return None;
        }
        if now >= self.expires_at() {
            self.expired = true;
            return Some(TimerAction::Expire);
        }
        match self.refresh_at() {
            Some(at) if !self.refresh_sent && now >= at => {
                self.refresh_sent = true;
                Some(TimerAction::Refresh)
            }
            _ => None,
        }
    }

    /// A refresh succeeded (a 2xx to a re-INVITE or UPDATE, sent by either side):
    /// restart with its agreement; `role` is our role in that transaction. A `now`
    /// earlier than the last refresh (a clock step back) is ignored.
    pub fn handle_refresh(&mut self, now: Instant, negotiated: Negotiated, role: Role) {
        if self.expired {
            return;
        }
        self.interval = Duration::from_secs(u64::from(negotiated.interval.max(1)));
        self.we_refresh = we_refresh(negotiated.refresher, role);
        self.last_refresh = self.last_refresh.max(now);
        self.refresh_sent = false;
    }
}

fn we_refresh(refresher: Refresher, role: Role) -> bool {
    matches!((refresher, role), (Refresher::Uac, Role::Uac) | (Refresher::Uas, Role::Uas))
}

#[cfg(test)]
mod tests;
