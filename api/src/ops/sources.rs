//! Wrong credentials over HTTP, counted per source address across every HTTP
//! interface, and a lockout once an address has too many. The same counting as
//! TCP 4011's LOGIN ([`LoginGuard`]), with the limit `--http-auth-failures`.
//!
//! Unlike a LOGIN, a request is not counted while its credential is checked:
//! programs send requests in parallel, and a busy one with a right key must not
//! be refused for having many in flight. A guesser thus gets at most the limit
//! plus the requests it has in flight (bounded by `--http-connections-per-source`)
//! before the lockout.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{Ops, OpsError, OpsResult};
use crate::control::guard::{Failure, GuardLimits, LoginGuard};

/// `--http-auth-failures`' default: wrong credentials from one address within
/// ten minutes that lock it out for five. Higher than 4011's five: a program
/// with a stale key retries on its own, and the keys (190 bits) and tokens (128
/// bits) are beyond guessing; this bounds what a flood of guesses costs.
pub const DEFAULT_HTTP_AUTH_FAILURES: usize = 20;

/// What an interface says, in its own way, to a locked-out address.
pub const LOCKED_OUT: &str = "too many failed authentications from your address; try again later";

/// The address is locked out: the credential was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedOut;

/// The HTTP interfaces' shared count of wrong credentials.
#[derive(Debug)]
pub struct AuthGuard {
    /// `None`: switched off.
    guard: Option<Mutex<LoginGuard>>,
    /// Wrong credentials seen, lockouts started, requests refused unchecked.
    wrong: AtomicU64,
    lockouts: AtomicU64,
    refused: AtomicU64,
}

impl AuthGuard {
    /// A guard locking an address out after `max_failures` wrong credentials
    /// (0: never).
    pub fn new(max_failures: usize) -> Self {
        let limits = GuardLimits { max_failures, ..GuardLimits::default() };
        AuthGuard {
            guard: (max_failures > 0).then(|| Mutex::new(LoginGuard::new(limits))),
            wrong: AtomicU64::new(0),
            lockouts: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn with<T>(&self, ask: impl FnOnce(&mut LoginGuard) -> T) -> Option<T> {
        let guard = self.guard.as_ref()?;
        // A panic elsewhere while holding it leaves counts, not broken state.
        let mut guard = guard.lock().unwrap_or_else(|p| p.into_inner());
        Some(ask(&mut guard))
    }
}

impl Ops {
    /// The guard's counters, in the Prometheus text format (`/metrics`).
    pub fn render_auth_metrics(&self, out: &mut String) {
        let guard = &self.auth_guard;
        for (name, help, counter) in [
            (
                "tutti_http_auth_failures_total",
                "Wrong credentials (API keys, basic credentials, security tokens) over HTTP and the XMLSocket.",
                &guard.wrong,
            ),
            (
                "tutti_http_auth_lockouts_total",
                "Source addresses locked out for too many wrong credentials (--http-auth-failures).",
                &guard.lockouts,
            ),
            (
                "tutti_http_auth_refused_total",
                "Requests from a locked-out address, refused without checking their credentials.",
                &guard.refused,
            ),
        ] {
            let value = counter.load(Ordering::Relaxed);
            // Writing to a String cannot fail.
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        }
    }

    /// Runs `check`, the credential check of a request from `peer` to
    /// `interface`: refused unchecked while the address is locked out; a wrong
    /// credential (`NotFound`) counts against the address. Without an address
    /// (a request that did not come through tutti's listener) it only runs.
    pub async fn guarded<T>(
        &self,
        peer: Option<IpAddr>,
        interface: &'static str,
        check: impl Future<Output = OpsResult<T>>,
    ) -> Result<OpsResult<T>, LockedOut> {
        let counters = &self.auth_guard;
        let Some(ip) = peer else { return Ok(check.await) };
        let locked = self.auth_guard.with(|g| g.is_locked_out(Instant::now(), ip));
        if locked == Some(true) {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%ip, interface, "authentication refused unchecked: address locked out");
            return Err(LockedOut);
        }
        let result = check.await;
        if let Err(OpsError::NotFound(_)) = result {
            counters.wrong.fetch_add(1, Ordering::Relaxed);
            let failure = self.auth_guard.with(|g| g.failed_unannounced(Instant::now(), ip));
            if let Some(Failure::LockoutStarted { failures, lockout }) = failure {
                counters.lockouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    %ip,
                    interface,
                    failures,
                    lockout_secs = lockout.as_secs(),
                    "too many wrong credentials over HTTP: address locked out"
                );
            }
        }
        Ok(result)
    }
}
