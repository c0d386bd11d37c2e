//! Request floods from one source. Each source address has a token bucket:
//! `rate` requests per second, bursts of twice that. Two limiters use it:
//!
//! - new INVITEs: beyond the rate an INVITE gets 503 with Retry-After before
//!   any SDP is parsed or any call state is made, so a flood costs little and
//!   the calls in progress (whose re-INVITEs are in-dialog and not counted) go
//!   on;
//! - other requests outside a dialog (OPTIONS, REGISTER, SUBSCRIBE, MESSAGE,
//!   ...): beyond the rate they are dropped unanswered, so that a flood is not
//!   reflected back at whoever the source address claims to be.
//!
//! Refusals are logged once per second per source with how many there were.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sources remembered at most; idle ones are forgotten first.
const MAX_SOURCES: usize = 65_536;
/// How often refusals from one source are logged.
const LOG_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    refused: u64,
    logged: Option<Instant>,
}

/// The buckets of every source.
#[derive(Debug)]
pub struct SourceLimiter {
    /// Requests per second per source; 0: no limit.
    rate: u32,
    /// What the log says when a source goes over.
    what: &'static str,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl SourceLimiter {
    /// A limiter of `rate` per second per source; `what` names the refusal in
    /// the log.
    pub fn new(rate: u32, what: &'static str) -> Self {
        Self { rate, what, buckets: Mutex::new(HashMap::new()) }
    }

    /// New INVITEs: `rate` per second, refused with 503.
    pub fn invites(rate: u32) -> Self {
        Self::new(rate, "INVITE flood: new calls from this address refused with 503")
    }

    /// Other requests outside a dialog: four times the INVITE rate, dropped.
    pub fn other_requests(invite_rate: u32) -> Self {
        Self::new(
            invite_rate.saturating_mul(4),
            "request flood: out-of-dialog requests from this address dropped",
        )
    }

    fn burst(&self) -> f64 {
        f64::from(self.rate) * 2.0
    }

    /// Whether a request from `source` may go on now.
    pub fn allow(&self, source: IpAddr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_SOURCES && !buckets.contains_key(&source) {
            let burst = self.burst();
            let rate = f64::from(self.rate);
            // Forget sources whose buckets have filled up again.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_SOURCES {
                buckets.clear();
            }
        }
        let burst = self.burst();
        let bucket = buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            at: now,
            refused: 0,
            logged: None,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(self.rate)).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        bucket.refused += 1;
        if bucket.logged.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            tracing::warn!(
                %source,
                refused = bucket.refused,
                rate = self.rate,
                "{}",
                self.what
            );
            bucket.logged = Some(now);
            bucket.refused = 0;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = SourceLimiter::invites(5);
        let t0 = Instant::now();
        let allowed = (0..30).filter(|_| limiter.allow(ip(1), t0)).count();
        assert_eq!(allowed, 10, "a burst of twice the rate");
        // Another source has its own bucket.
        assert!(limiter.allow(ip(2), t0));
        // One second later, five more.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..30).filter(|_| limiter.allow(ip(1), t1)).count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn zero_is_no_limit() {
        let limiter = SourceLimiter::invites(0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limiter.allow(ip(1), t0)));
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = SourceLimiter::invites(1);
        let t0 = Instant::now();
        for n in 0..(MAX_SOURCES as u32 + 100) {
            limiter.allow(IpAddr::from(n.to_be_bytes()), t0);
        }
        assert!(limiter.buckets.lock().expect("lock").len() <= MAX_SOURCES);
    }
}
