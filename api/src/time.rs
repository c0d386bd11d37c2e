//! Points in time as the store keeps them: UTC, millisecond precision, written as
//! RFC 3339 text so that stored times sort and compare as text. Protocol facades
//! convert to their own formats and to the configured `--timezone`.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Sqlite, Type};

/// A UTC instant, truncated to whole milliseconds so that it survives a round trip
/// through the store unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(jiff::Timestamp);

/// The test clock: off unless the server runs with `--test-clock`. Then the
/// wall clock every rule reads ([`Time::now`]) may be moved, or stopped, over
/// `POST /_test/clock`, so tests of schedules minutes or hours ahead run in
/// seconds. Timers of the media and SIP paths use the monotonic clock and are
/// not affected.
mod test_clock {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    static ENABLED: AtomicBool = AtomicBool::new(false);
    /// Added to the system clock, in milliseconds.
    static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
    /// A stopped clock's reading; `i64::MIN` while it runs.
    static FROZEN_MS: AtomicI64 = AtomicI64::new(i64::MIN);

    pub fn enable() {
        ENABLED.store(true, Ordering::SeqCst);
    }

    pub fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    /// The clock's reading, given the system's.
    pub fn read(system_ms: i64) -> i64 {
        let frozen = FROZEN_MS.load(Ordering::SeqCst);
        if frozen != i64::MIN { frozen } else { system_ms + OFFSET_MS.load(Ordering::SeqCst) }
    }

    pub fn set(at_ms: i64, system_ms: i64, frozen: bool) {
        OFFSET_MS.store(at_ms - system_ms, Ordering::SeqCst);
        FROZEN_MS.store(if frozen { at_ms } else { i64::MIN }, Ordering::SeqCst);
    }
}

impl Time {
    pub fn now() -> Self {
        let system = jiff::Timestamp::now();
        if !test_clock::enabled() {
            return Self::from_timestamp(system);
        }
        let ms = test_clock::read(system.as_millisecond());
        Self::from_unix_millis(ms).unwrap_or_else(|| Self::from_timestamp(system))
    }

    /// Turns the test clock on (`--test-clock`); it cannot be turned off.
    pub fn enable_test_clock() {
        test_clock::enable();
    }

    /// Whether the test clock is on.
    pub fn test_clock_enabled() -> bool {
        test_clock::enabled()
    }

    /// Sets the test clock to `at`, running from there or (`frozen`)
    /// standing still; refused unless the test clock is on.
    pub fn set_test_clock(at: Time, frozen: bool) -> bool {
        if !test_clock::enabled() {
            return false;
        }
        test_clock::set(at.unix_millis(), jiff::Timestamp::now().as_millisecond(), frozen);
        true
    }

    pub fn from_timestamp(ts: jiff::Timestamp) -> Self {
        let ms = ts.as_millisecond();
        // Every millisecond count that a valid Timestamp yields is itself valid.
        Self(jiff::Timestamp::from_millisecond(ms).unwrap_or(ts))
    }

    /// Milliseconds since the Unix epoch; `None` when out of jiff's range
    /// (years -9999..=9999).
    pub fn from_unix_millis(ms: i64) -> Option<Self> {
        jiff::Timestamp::from_millisecond(ms).ok().map(Self)
    }

    pub fn unix_millis(self) -> i64 {
        self.0.as_millisecond()
    }

    pub fn timestamp(self) -> jiff::Timestamp {
        self.0
    }

    /// This instant moved by whole minutes (saturating at jiff's range).
    pub fn plus_minutes(self, minutes: i64) -> Self {
        let ms = self.unix_millis().saturating_add(minutes.saturating_mul(60_000));
        Self::from_unix_millis(ms).unwrap_or(self)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always three fractional digits, so that text order equals time order.
        write!(f, "{:.3}", self.0)
    }
}

/// An instant that is not RFC 3339 text.
#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 time: {0}")]
pub struct TimeParseError(String);

impl FromStr for Time {
    type Err = TimeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<jiff::Timestamp>()
            .map(Self::from_timestamp)
            .map_err(|e| TimeParseError(format!("{s:?}: {e}")))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Type<Sqlite> for Time {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Time {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'_, Sqlite>>::encode(self.to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Time {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(text.parse()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_keeps_the_instant() {
        let t = Time::from_unix_millis(1_795_000_123_456).expect("in range");
        let text = t.to_string();
        assert_eq!(text, "2026-11-18T11:08:43.456Z");
        assert_eq!(text.parse::<Time>().expect("parses"), t);
    }

    #[test]
    fn sub_millisecond_precision_is_dropped_on_creation() {
        let ts: jiff::Timestamp = "2026-01-02T03:04:05.678999Z".parse().expect("valid");
        assert_eq!(Time::from_timestamp(ts).to_string(), "2026-01-02T03:04:05.678Z");
    }

    #[test]
    fn text_order_is_time_order() {
        let a = Time::from_unix_millis(999).expect("in range");
        let b = Time::from_unix_millis(1_000).expect("in range");
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t: Time = "2026-06-01T12:00:00+02:00".parse().expect("valid");
        assert_eq!(t.to_string(), "2026-06-01T10:00:00.000Z");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!("yesterday".parse::<Time>().is_err());
    }
}
