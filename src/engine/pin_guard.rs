//! PIN guessing across calls. Three wrong PINs end one call; this keeps a
//! guesser from simply calling again. Wrong PINs (typed, or in the dialled
//! number) are counted per caller, the source address and caller ID together,
//! and per source address alone with a much higher bar, so that everyone
//! behind one SIP proxy is not locked out by one caller's mistakes, while a
//! guesser who changes its caller ID on every call is. A locked-out caller is
//! refused (403) before any PIN is checked, even the right one, until the
//! lockout ends; each lockout is logged.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far back wrong PINs count.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Wrong PINs in [`WINDOW`] that lock one caller (address and caller ID) out.
pub const CALLER_LIMIT: usize = 10;
/// Wrong PINs in [`WINDOW`] that lock a whole source address out.
pub const ADDRESS_LIMIT: usize = 100;
/// How long a lockout lasts.
pub const LOCKOUT: Duration = Duration::from_secs(10 * 60);
/// Sources remembered at most; the oldest are forgotten first.
const MAX_SOURCES: usize = 100_000;

/// Who is guessing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    Caller(Option<IpAddr>, String),
    Address(IpAddr),
}

#[derive(Debug, Default)]
struct Failures {
    at: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// The counts, shared by every call.
#[derive(Debug, Default)]
pub struct PinGuard {
    sources: Mutex<HashMap<Source, Failures>>,
}

fn sources(address: Option<IpAddr>, caller_id: &str) -> Vec<(Source, usize)> {
    let mut out = vec![(Source::Caller(address, caller_id.to_owned()), CALLER_LIMIT)];
    if let Some(address) = address {
        out.push((Source::Address(address), ADDRESS_LIMIT));
    }
    out
}

impl PinGuard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Source, Failures>> {
        self.sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a caller from `address` with `caller_id` is locked out now.
    pub fn locked_out(&self, address: Option<IpAddr>, caller_id: &str, now: Instant) -> bool {
        let table = self.lock();
        sources(address, caller_id).iter().any(|(source, _)| {
            table.get(source).and_then(|f| f.locked_until).is_some_and(|until| now < until)
        })
    }

    /// Counts a wrong PIN; says whether the caller is locked out now.
    pub fn wrong_pin(&self, address: Option<IpAddr>, caller_id: &str, now: Instant) -> bool {
        let mut table = self.lock();
        if table.len() >= MAX_SOURCES {
            forget_oldest(&mut table, now);
        }
        let mut locked = false;
        for (source, limit) in sources(address, caller_id) {
            let failures = table.entry(source.clone()).or_default();
            while failures.at.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                failures.at.pop_front();
            }
            failures.at.push_back(now);
            if failures.locked_until.is_some_and(|until| now < until) {
                locked = true;
            } else if failures.at.len() >= limit {
                failures.locked_until = Some(now + LOCKOUT);
                failures.at.clear();
                locked = true;
                tracing::warn!(
                    ?source,
                    wrong_pins = limit,
                    window_secs = WINDOW.as_secs(),
                    lockout_secs = LOCKOUT.as_secs(),
                    "PIN guessing: locked out"
                );
            }
        }
        locked
    }
}

/// Drops sources with nothing recent, then, if still full, half of the rest.
fn forget_oldest(table: &mut HashMap<Source, Failures>, now: Instant) {
    table.retain(|_, f| {
        f.locked_until.is_some_and(|until| now < until)
            || f.at.back().is_some_and(|t| now.duration_since(*t) < WINDOW)
    });
    if table.len() >= MAX_SOURCES {
        let mut keys: Vec<(Instant, Source)> =
            table.iter().map(|(k, f)| (f.at.back().copied().unwrap_or(now), k.clone())).collect();
        keys.sort_by_key(|(t, _)| *t);
        for (_, key) in keys.into_iter().take(MAX_SOURCES / 2) {
            table.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn a_caller_is_locked_out_after_its_limit_and_for_the_lockout_only() {
        let guard = PinGuard::default();
        let t0 = Instant::now();
        for n in 1..CALLER_LIMIT {
            assert!(!guard.wrong_pin(ip(1), "alice", t0), "try {n}");
        }
        assert!(!guard.locked_out(ip(1), "alice", t0));
        assert!(guard.wrong_pin(ip(1), "alice", t0), "the limit locks");
        assert!(guard.locked_out(ip(1), "alice", t0 + LOCKOUT / 2));
        // Others behind the same address are not.
        assert!(!guard.locked_out(ip(1), "bob", t0));
        assert!(!guard.locked_out(ip(2), "alice", t0));
        assert!(!guard.locked_out(ip(1), "alice", t0 + LOCKOUT), "the lockout ends");
    }

    #[test]
    fn old_failures_do_not_count() {
        let guard = PinGuard::default();
        let t0 = Instant::now();
        for _ in 1..CALLER_LIMIT {
            guard.wrong_pin(ip(1), "alice", t0);
        }
        assert!(!guard.wrong_pin(ip(1), "alice", t0 + WINDOW), "the window moved on");
    }

    #[test]
    fn a_guesser_changing_caller_id_is_caught_by_its_address() {
        let guard = PinGuard::default();
        let t0 = Instant::now();
        let mut locked = false;
        for n in 0..ADDRESS_LIMIT {
            locked = guard.wrong_pin(ip(3), &format!("spoof{n}"), t0);
        }
        assert!(locked);
        assert!(guard.locked_out(ip(3), "anyone", t0));
        assert!(!guard.locked_out(ip(4), "anyone", t0));
    }

    #[test]
    fn the_table_stays_bounded() {
        let guard = PinGuard::default();
        let t0 = Instant::now();
        for n in 0..(MAX_SOURCES + 10) {
            guard.wrong_pin(None, &n.to_string(), t0);
        }
        assert!(guard.lock().len() <= MAX_SOURCES);
    }
}
