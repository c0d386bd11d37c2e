//! Failed LOGINs counted per client address across connections, and a lockout once
//! an address has too many: the per-connection limit alone let 20 parallel
//! connections try 60 passwords in 4 s. Sans-IO: fed with the time and the address.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::codec::quoted;
use super::command::{Command, Request, parse_line};

/// Failed LOGINs from one address within [`FAILURE_WINDOW`] that start a lockout.
/// Five leaves room for a person mistyping (a connection is closed after three
/// anyway) and holds a guesser to five passwords per [`LOCKOUT`].
pub const MAX_FAILURES: usize = 5;
/// How long a failed LOGIN counts against its address.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long an address is refused once locked out: long enough to make guessing
/// useless (about 1 400 passwords a day at most), short enough that an operator who
/// locked themselves out waits only minutes.
pub const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Addresses tracked at once; beyond that the one seen longest ago is forgotten.
/// Each costs about a hundred bytes, so this bounds the guard to under a megabyte
/// whatever number of addresses a flood comes from.
pub const MAX_TRACKED: usize = 4096;

/// The description of the answer to a LOGIN from a locked-out address.
pub const LOCKED_OUT: &str = "Too many failed logins; try again later";

/// The numbers the guard works with; [`Default`] gives the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardLimits {
    /// See [`MAX_FAILURES`].
    pub max_failures: usize,
    /// See [`FAILURE_WINDOW`].
    pub failure_window: Duration,
    /// See [`LOCKOUT`].
    pub lockout: Duration,
    /// See [`MAX_TRACKED`].
    pub max_tracked: usize,
}

impl Default for GuardLimits {
    fn default() -> Self {
        GuardLimits {
            max_failures: MAX_FAILURES,
            failure_window: FAILURE_WINDOW,
            lockout: LOCKOUT,
            max_tracked: MAX_TRACKED,
        }
    }
}

/// Whether a LOGIN may have its password checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Attempt {
    /// Check it; it counts as failed until [`LoginGuard::succeeded`] says otherwise.
    Allowed,
    /// Refuse it unchecked: the address is locked out (or has as many attempts in
    /// progress as it may still fail).
    Refused,
}

/// What a failed LOGIN did to its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Failure {
    /// Counted: the address has `failures` within the window.
    Counted {
        /// Failed (or unfinished) LOGINs within the window, this one included.
        failures: usize,
    },
    /// This failure locked the address out for `lockout`.
    LockoutStarted {
        /// Failed LOGINs that led to it.
        failures: usize,
        /// How long the address is refused.
        lockout: Duration,
    },
    /// The address was already locked out (by another connection's failure).
    LockedOut,
}

/// The unit failures are counted by: an IPv4 address, or an IPv6 /64, since one
/// IPv6 host usually has a whole /64 to pick addresses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Source(IpAddr);

impl Source {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let mut segments = v6.segments();
                    segments[4..].fill(0);
                    Source(IpAddr::V6(segments.into()))
                }
            },
        }
    }
}

#[derive(Debug)]
struct Record {
    /// LOGINs not known to have succeeded, oldest first, at most `max_failures`.
    attempts: VecDeque<Instant>,
    locked_until: Option<Instant>,
    /// When the address last tried, for eviction.
    touched: Instant,
}

impl Record {
    fn new(now: Instant) -> Self {
        Record { attempts: VecDeque::new(), locked_until: None, touched: now }
    }

    /// Forgets what has expired by `now`.
    fn expire(&mut self, now: Instant, limits: &GuardLimits) {
        if self.locked_until.is_some_and(|until| now >= until) {
            self.locked_until = None;
        }
        while self
            .attempts
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= limits.failure_window)
        {
            self.attempts.pop_front();
        }
    }

    /// The failures counted now (the latest already pushed), and the lockout
    /// when they reach the limit.
    fn count(&mut self, now: Instant, limits: &GuardLimits) -> Failure {
        let failures = self.attempts.len();
        if failures < limits.max_failures {
            return Failure::Counted { failures };
        }
        // The lockout replaces the failures that led to it: once it is over the
        // address starts afresh.
        self.attempts.clear();
        self.locked_until = Some(now + limits.lockout);
        Failure::LockoutStarted { failures, lockout: limits.lockout }
    }

    fn is_locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Whether the record still means anything at `now`.
    fn matters(&self, now: Instant, limits: &GuardLimits) -> bool {
        self.is_locked(now)
            || self
                .attempts
                .back()
                .is_some_and(|&at| now.saturating_duration_since(at) < limits.failure_window)
    }
}

/// The per-address LOGIN failure count and lockouts of one control server.
#[derive(Debug)]
pub struct LoginGuard {
    limits: GuardLimits,
    records: HashMap<Source, Record>,
}

impl LoginGuard {
    /// An empty guard.
    pub fn new(limits: GuardLimits) -> Self {
        LoginGuard { limits, records: HashMap::new() }
    }

    /// A LOGIN from `ip` is about to have its password checked. It is counted as a
    /// failure at once, so that parallel connections cannot check more passwords
    /// than the limit before the first answer comes back.
    pub fn attempt(&mut self, now: Instant, ip: IpAddr) -> Attempt {
        let limits = self.limits;
        let record = self.record(now, ip);
        record.expire(now, &limits);
        if record.is_locked(now) || record.attempts.len() >= limits.max_failures {
            return Attempt::Refused;
        }
        record.attempts.push_back(now);
        Attempt::Allowed
    }

    /// The password of an allowed attempt from `ip` was wrong.
    pub fn failed(&mut self, now: Instant, ip: IpAddr) -> Failure {
        let limits = self.limits;
        let record = self.record(now, ip);
        record.expire(now, &limits);
        if record.is_locked(now) {
            return Failure::LockedOut;
        }
        if record.attempts.is_empty() {
            // Forgotten meanwhile (evicted, or a clock jump): count it again.
            record.attempts.push_back(now);
        }
        record.count(now, &limits)
    }

    /// Whether `ip` is locked out at `now`. For checks that are not held back
    /// while they run (HTTP requests, which a client sends in parallel): ask
    /// this first, then report a wrong credential with
    /// [`LoginGuard::failed_unannounced`].
    pub fn is_locked_out(&mut self, now: Instant, ip: IpAddr) -> bool {
        let limits = self.limits;
        let Some(record) = self.records.get_mut(&Source::of(ip)) else { return false };
        record.expire(now, &limits);
        record.is_locked(now)
    }

    /// A wrong credential from `ip` that no [`LoginGuard::attempt`] announced.
    pub fn failed_unannounced(&mut self, now: Instant, ip: IpAddr) -> Failure {
        let limits = self.limits;
        let record = self.record(now, ip);
        record.expire(now, &limits);
        if record.is_locked(now) {
            return Failure::LockedOut;
        }
        record.attempts.push_back(now);
        record.count(now, &limits)
    }

    /// The password of an allowed attempt from `ip` was right: that attempt no
    /// longer counts. Earlier failures still do, and a running lockout stays.
    pub fn succeeded(&mut self, now: Instant, ip: IpAddr) {
        if let Some(record) = self.records.get_mut(&Source::of(ip)) {
            record.touched = record.touched.max(now);
            record.attempts.pop_back();
        }
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.records.len()
    }

    /// The record of `ip`, made room for when new.
    fn record(&mut self, now: Instant, ip: IpAddr) -> &mut Record {
        let source = Source::of(ip);
        if !self.records.contains_key(&source) && self.records.len() >= self.limits.max_tracked {
            self.make_room(now);
        }
        let record = match self.records.entry(source) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Record::new(now)),
        };
        // A clock going backwards must not make a record look older than it is.
        record.touched = record.touched.max(now);
        record
    }

    /// Forgets records that no longer matter, or else the one touched longest ago.
    fn make_room(&mut self, now: Instant) {
        let limits = self.limits;
        self.records.retain(|_, record| record.matters(now, &limits));
        if self.records.len() < limits.max_tracked {
            return;
        }
        let oldest = self.records.iter().min_by_key(|(_, record)| record.touched);
        if let Some(source) = oldest.map(|(source, _)| *source) {
            self.records.remove(&source);
        }
    }
}

impl Default for LoginGuard {
    fn default() -> Self {
        LoginGuard::new(GuardLimits::default())
    }
}

/// Whether `line` is a well-formed LOGIN, the only command that checks a password.
pub fn is_login(line: &str) -> bool {
    matches!(parse_line(line), Ok(Some(Request { command: Ok(Command::Login { .. }), .. })))
}

/// The answer to a LOGIN refused by the guard; the connection is closed after it.
pub fn locked_out_line() -> String {
    format!("LOGIN,ERROR,{}", quoted(LOCKED_OUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// `n` attempts from `ip` at `now`, all failed; the last failure's verdict.
    fn fail(guard: &mut LoginGuard, now: Instant, ip: IpAddr, n: usize) -> Failure {
        let mut last = Failure::LockedOut;
        for _ in 0..n {
            assert_eq!(guard.attempt(now, ip), Attempt::Allowed);
            last = guard.failed(now, ip);
        }
        last
    }

    #[test]
    fn unannounced_failures_lock_out_as_announced_ones_do() {
        let t0 = Instant::now();
        let limits = GuardLimits { max_failures: 3, ..GuardLimits::default() };
        let mut guard = LoginGuard::new(limits);
        assert!(!guard.is_locked_out(t0, A));
        assert_eq!(guard.failed_unannounced(t0, A), Failure::Counted { failures: 1 });
        assert_eq!(guard.failed_unannounced(t0, A), Failure::Counted { failures: 2 });
        assert!(!guard.is_locked_out(t0, A));
        assert_eq!(
            guard.failed_unannounced(t0 + secs(1), A),
            Failure::LockoutStarted { failures: 3, lockout: LOCKOUT }
        );
        assert!(guard.is_locked_out(t0 + secs(2), A));
        assert!(!guard.is_locked_out(t0 + secs(2), B), "another address is not locked out");
        assert_eq!(guard.failed_unannounced(t0 + secs(3), A), Failure::LockedOut);
        // Over after the lockout, with a clean slate.
        let after = t0 + secs(1) + LOCKOUT;
        assert!(!guard.is_locked_out(after, A));
        assert_eq!(guard.failed_unannounced(after, A), Failure::Counted { failures: 1 });
        // Failures older than the window no longer count.
        let later = after + FAILURE_WINDOW;
        assert_eq!(guard.failed_unannounced(later, A), Failure::Counted { failures: 1 });
    }

    #[test]
    fn the_fifth_failure_locks_the_address_out_for_five_minutes() {
        let t0 = Instant::now();
        let mut guard = LoginGuard::default();
        assert_eq!(fail(&mut guard, t0, A, 4), Failure::Counted { failures: 4 });
        assert_eq!(
            fail(&mut guard, t0 + secs(60), A, 1),
            Failure::LockoutStarted { failures: 5, lockout: LOCKOUT }
        );
        assert_eq!(guard.attempt(t0 + secs(61), A), Attempt::Refused);
        // Other addresses are not concerned.
        assert_eq!(guard.attempt(t0 + secs(61), B), Attempt::Allowed);
        // Refused until the lockout is over, then five fresh attempts.
        assert_eq!(guard.attempt(t0 + secs(60) + LOCKOUT - secs(1), A), Attempt::Refused);
        let after = t0 + secs(60) + LOCKOUT;
        assert_eq!(fail(&mut guard, after, A, 4), Failure::Counted { failures: 4 });
    }

    #[test]
    fn failures_expire_after_the_window() {
        let t0 = Instant::now();
        let mut guard = LoginGuard::default();
        assert_eq!(fail(&mut guard, t0, A, 4), Failure::Counted { failures: 4 });
        let later = t0 + FAILURE_WINDOW;
        assert_eq!(fail(&mut guard, later, A, 1), Failure::Counted { failures: 1 });
    }

    #[test]
    fn attempts_in_progress_count_so_parallel_connections_cannot_overshoot() {
        let t0 = Instant::now();
        let mut guard = LoginGuard::default();
        for _ in 0..MAX_FAILURES {
            assert_eq!(guard.attempt(t0, A), Attempt::Allowed);
        }
        assert_eq!(guard.attempt(t0, A), Attempt::Refused, "a sixth check at once");
        // The first wrong password of the five completes the count.
        assert_eq!(
            guard.failed(t0, A),
            Failure::LockoutStarted { failures: MAX_FAILURES, lockout: LOCKOUT }
        );
        for _ in 1..MAX_FAILURES {
            assert_eq!(guard.failed(t0, A), Failure::LockedOut);
        }
    }

    #[test]
    fn success_forgives_only_itself_and_not_a_running_lockout() {
        let t0 = Instant::now();
        let mut guard = LoginGuard::default();
        assert_eq!(fail(&mut guard, t0, A, 3), Failure::Counted { failures: 3 });
        assert_eq!(guard.attempt(t0, A), Attempt::Allowed);
        guard.succeeded(t0, A);
        // The three failures still count.
        assert_eq!(fail(&mut guard, t0, A, 1), Failure::Counted { failures: 4 });
        assert!(matches!(fail(&mut guard, t0, A, 1), Failure::LockoutStarted { .. }));
        // A success from the same address (a connection that was checked before the
        // lockout) does not end it.
        guard.succeeded(t0 + secs(1), A);
        assert_eq!(guard.attempt(t0 + secs(2), A), Attempt::Refused);
    }

    #[test]
    fn a_failure_after_the_lockout_started_elsewhere_says_so() {
        let t0 = Instant::now();
        let mut guard = LoginGuard::default();
        assert_eq!(fail(&mut guard, t0, A, 4), Failure::Counted { failures: 4 });
        assert_eq!(guard.attempt(t0, A), Attempt::Allowed);
        assert_eq!(guard.attempt(t0, A), Attempt::Refused);
        assert!(matches!(guard.failed(t0, A), Failure::LockoutStarted { .. }));
        assert_eq!(guard.failed(t0, A), Failure::LockedOut);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut guard = LoginGuard::default();
        for host in 1..=5u16 {
            let ip = IpAddr::V6([0x2001, 0xdb8, 0, 1, 0, 0, 0, host].into());
            assert_eq!(guard.attempt(t0, ip), Attempt::Allowed);
            let _ = guard.failed(t0, ip);
        }
        let same_64 = IpAddr::V6([0x2001, 0xdb8, 0, 1, 0xffff, 1, 2, 3].into());
        assert_eq!(guard.attempt(t0, same_64), Attempt::Refused);
        let other_64 = IpAddr::V6([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1].into());
        assert_eq!(guard.attempt(t0, other_64), Attempt::Allowed);

        assert!(matches!(fail(&mut guard, t0, A, 5), Failure::LockoutStarted { .. }));
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(guard.attempt(t0, mapped), Attempt::Refused);
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_address_goes_first() {
        let t0 = Instant::now();
        let limits = GuardLimits { max_tracked: 3, ..GuardLimits::default() };
        let mut guard = LoginGuard::new(limits);
        let ip = |n: u8| IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, n));
        assert!(matches!(fail(&mut guard, t0, ip(1), 5), Failure::LockoutStarted { .. }));
        for n in 2..=3 {
            let _ = fail(&mut guard, t0 + secs(u64::from(n)), ip(n), 1);
        }
        assert_eq!(guard.tracked(), 3);
        // A fourth address evicts the one seen longest ago: ip(1), lockout and all.
        let _ = fail(&mut guard, t0 + secs(4), ip(4), 1);
        assert_eq!(guard.tracked(), 3);
        assert_eq!(guard.attempt(t0 + secs(5), ip(1)), Attempt::Allowed);
        // Records that no longer matter are dropped before anyone is evicted.
        let later = t0 + FAILURE_WINDOW + secs(10);
        for n in 10..13 {
            let _ = fail(&mut guard, later, ip(n), 1);
        }
        assert_eq!(guard.tracked(), 3);
    }

    #[test]
    fn only_well_formed_logins_are_guarded() {
        assert!(is_login("LOGIN,secret"));
        assert!(is_login("login,\"a, b\""));
        assert!(!is_login("LOGIN"));
        assert!(!is_login("LOGIN,a,b"));
        assert!(!is_login("KEEPALIVE"));
        assert!(!is_login(""));
        assert_eq!(locked_out_line(), r#"LOGIN,ERROR,"Too many failed logins; try again later""#);
    }
}
