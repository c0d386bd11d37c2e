//! Wrong credentials over HTTP, counted per source address across every HTTP
//! interface, and a lockout once an address has too many. The same counting as
//! TCP 4011's LOGIN ([`LoginGuard`]), with the limit `--http-auth-failures`.
//!
//! Unlike a LOGIN, a request is not counted while its credential is checked:
//! programs send requests in parallel, and a busy one with a right key must not
//! be refused for having many in flight. A guesser thus gets at most the limit
//! plus the requests it has in flight (bounded by `--http-connections-per-source`)
//! before the lockout.

use std::net::IpAddr;
use std::sync::Mutex;
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
}

impl AuthGuard {
    /// A guard locking an address out after `max_failures` wrong credentials
    /// (0: never).
    pub fn new(max_failures: usize) -> Self {
        let limits = GuardLimits { max_failures, ..GuardLimits::default() };
        AuthGuard { guard: (max_failures > 0).then(|| Mutex::new(LoginGuard::new(limits))) }
    }

    fn with<T>(&self, ask: impl FnOnce(&mut LoginGuard) -> T) -> Option<T> {
        let guard = self.guard.as_ref()?;
        // A panic elsewhere while holding it leaves counts, not broken state.
        let mut guard = guard.lock().unwrap_or_else(|p| p.into_inner());
        Some(ask(&mut guard))
    }
}

impl Ops {
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
        let Some(ip) = peer else { return Ok(check.await) };
        let locked = self.auth_guard.with(|g| g.is_locked_out(Instant::now(), ip));
        if locked == Some(true) {
            tracing::debug!(%ip, interface, "authentication refused unchecked: address locked out");
            return Err(LockedOut);
        }
        let result = check.await;
        if let Err(OpsError::NotFound(_)) = result {
            let failure = self.auth_guard.with(|g| g.failed_unannounced(Instant::now(), ip));
            if let Some(Failure::LockoutStarted { failures, lockout }) = failure {
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
