//! `<date>`, `<start>` and `<end>` of NEWCONF/MODCONF/GETCONF: the text forms
//! accepted and answered, and their meaning as UTC instants in the server's time
//! zone. Pure functions; the time zone is passed in.
//!
//! Accepted: `<date>` as `DD/MM/YYYY`, `DD.MM.YYYY`, `DD-MM-YYYY` (day first, as
//! in the UK where the protocol comes from) or `YYYY-MM-DD`, `YYYY/MM/DD` (one-digit
//! day and month too); `<start>` and `<end>` as `HH:MM` or `HH:MM:SS` (24-hour).
//! Answered: `DD/MM/YYYY` and `HH:MM`, in the server's time zone.

use jiff::civil;
use jiff::tz::TimeZone;

use crate::time::Time;

/// A schedule as the client wrote it, not yet placed in a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schedule {
    pub date: Option<civil::Date>,
    pub start: Option<civil::Time>,
    pub end: Option<civil::Time>,
}

/// Why a schedule was refused; the text is the protocol's error description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("Invalid date")]
    Date,
    #[error("Invalid start time")]
    Start,
    #[error("Invalid end time")]
    End,
    #[error("Start or end time without a date")]
    TimeWithoutDate,
}

impl Schedule {
    /// Parses the three fields; each may be empty.
    pub fn parse(date: &str, start: &str, end: &str) -> Result<Self, ScheduleError> {
        let date = optional(date, parse_date).map_err(|()| ScheduleError::Date)?;
        let start = optional(start, parse_time).map_err(|()| ScheduleError::Start)?;
        let end = optional(end, parse_time).map_err(|()| ScheduleError::End)?;
        if date.is_none() && (start.is_some() || end.is_some()) {
            return Err(ScheduleError::TimeWithoutDate);
        }
        Ok(Self { date, start, end })
    }

    /// The scheduled start and end as instants. No date: unscheduled. A date
    /// without a start starts at midnight; no end: open-ended; an end at or before
    /// the start is on the next day (a call from 23:00 to 01:00).
    pub fn to_instants(self, tz: &TimeZone) -> Result<(Option<Time>, Option<Time>), ScheduleError> {
        let Some(date) = self.date else { return Ok((None, None)) };
        let start_time = self.start.unwrap_or(civil::Time::midnight());
        let start = place(date.to_datetime(start_time), tz).ok_or(ScheduleError::Date)?;
        let end = match self.end {
            None => None,
            Some(end_time) => {
                let mut day = date;
                if end_time <= start_time {
                    day = day.tomorrow().map_err(|_| ScheduleError::Date)?;
                }
                Some(place(day.to_datetime(end_time), tz).ok_or(ScheduleError::End)?)
            }
        };
        Ok((Some(start), end))
    }
}

/// `(date, start, end)` as answered: `DD/MM/YYYY`, `HH:MM`, `HH:MM`, each empty
/// when not set. A conference with only an end (set through another API) shows
/// the end's date.
pub fn format_schedule(
    start: Option<Time>,
    end: Option<Time>,
    tz: &TimeZone,
) -> (String, String, String) {
    let local = |t: Time| t.timestamp().to_zoned(tz.clone()).datetime();
    let start = start.map(local);
    let end = end.map(local);
    let date = start.or(end).map(|dt| format_date(dt.date())).unwrap_or_default();
    let hhmm = |dt: Option<civil::DateTime>| {
        dt.map(|dt| format!("{:02}:{:02}", dt.hour(), dt.minute())).unwrap_or_default()
    };
    (date, hhmm(start), hhmm(end))
}

fn format_date(date: civil::Date) -> String {
    format!("{:02}/{:02}/{:04}", date.day(), date.month(), date.year())
}

/// A local date and time as an instant; in a DST gap the later offset is used,
/// in a repeated hour the earlier one (jiff's "compatible" rule, as RFC 5545).
fn place(dt: civil::DateTime, tz: &TimeZone) -> Option<Time> {
    dt.to_zoned(tz.clone()).ok().map(|z| Time::from_timestamp(z.timestamp()))
}

fn optional<T>(text: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    parse(text).map(Some).ok_or(())
}

/// Up to `max` ASCII digits as a number.
fn number(text: &str, min: usize, max: usize) -> Option<i16> {
    if text.len() < min || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_date(text: &str) -> Option<civil::Date> {
    let sep = text.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let mut parts = text.split(sep);
    let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (year, month, day) = if a.len() == 4 && sep != '.' {
        (number(a, 4, 4)?, number(b, 1, 2)?, number(c, 1, 2)?)
    } else {
        (number(c, 4, 4)?, number(b, 1, 2)?, number(a, 1, 2)?)
    };
    let month = i8::try_from(month).ok()?;
    let day = i8::try_from(day).ok()?;
    civil::Date::new(year, month, day).ok()
}

fn parse_time(text: &str) -> Option<civil::Time> {
    let mut parts = text.split(':');
    let hour = number(parts.next()?, 1, 2)?;
    let minute = number(parts.next()?, 2, 2)?;
    let second = match parts.next() {
        Some(s) => number(s, 2, 2)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    let narrow = |n: i16| i8::try_from(n).ok();
    civil::Time::new(narrow(hour)?, narrow(minute)?, narrow(second)?, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> TimeZone {
        TimeZone::get("Europe/London").expect("bundled tzdb")
    }

    fn utc(text: &str) -> Option<Time> {
        Some(text.parse().expect("valid"))
    }

    #[test]
    fn accepted_date_forms() {
        let want = civil::date(2026, 12, 3);
        for text in
            ["03/12/2026", "3/12/2026", "03.12.2026", "03-12-2026", "2026-12-03", "2026/12/3"]
        {
            assert_eq!(parse_date(text), Some(want), "{text}");
        }
    }

    #[test]
    fn refused_dates() {
        for text in
            ["31/02/2026", "12/2026", "2026-13-01", "03/12/26", "1/2/3/2026", "x", "2026.12.03"]
        {
            assert_eq!(parse_date(text), None, "{text}");
        }
    }

    #[test]
    fn accepted_and_refused_times() {
        assert_eq!(parse_time("9:05"), Some(civil::time(9, 5, 0, 0)));
        assert_eq!(parse_time("09:05:30"), Some(civil::time(9, 5, 30, 0)));
        for text in ["24:00", "12:60", "12", "12:5", "12:00:00:00", "ab:cd", "-1:00"] {
            assert_eq!(parse_time(text), None, "{text}");
        }
    }

    #[test]
    fn empty_fields_mean_unscheduled() {
        let s = Schedule::parse("", " ", "").expect("valid");
        assert_eq!(s, Schedule::default());
        assert_eq!(s.to_instants(&london()), Ok((None, None)));
    }

    #[test]
    fn a_time_needs_a_date() {
        assert_eq!(Schedule::parse("", "10:00", ""), Err(ScheduleError::TimeWithoutDate));
        assert_eq!(Schedule::parse("x", "", ""), Err(ScheduleError::Date));
        assert_eq!(Schedule::parse("01/01/2027", "x", ""), Err(ScheduleError::Start));
        assert_eq!(Schedule::parse("01/01/2027", "", "25:00"), Err(ScheduleError::End));
    }

    #[test]
    fn local_times_become_utc_in_the_servers_zone() {
        // British Summer Time: UTC+1.
        let s = Schedule::parse("01/07/2026", "10:00", "11:30").expect("valid");
        assert_eq!(
            s.to_instants(&london()),
            Ok((utc("2026-07-01T09:00:00Z"), utc("2026-07-01T10:30:00Z")))
        );
        // Winter: UTC+0.
        let s = Schedule::parse("2026-12-01", "10:00", "").expect("valid");
        assert_eq!(s.to_instants(&london()), Ok((utc("2026-12-01T10:00:00Z"), None)));
    }

    #[test]
    fn an_end_before_the_start_is_the_next_day() {
        let s = Schedule::parse("31/12/2026", "23:00", "01:00").expect("valid");
        assert_eq!(
            s.to_instants(&TimeZone::UTC),
            Ok((utc("2026-12-31T23:00:00Z"), utc("2027-01-01T01:00:00Z")))
        );
    }

    #[test]
    fn a_date_alone_starts_at_midnight() {
        let s = Schedule::parse("02/01/2027", "", "").expect("valid");
        assert_eq!(s.to_instants(&TimeZone::UTC), Ok((utc("2027-01-02T00:00:00Z"), None)));
    }

    #[test]
    fn answers_are_in_one_format_and_the_servers_zone() {
        let tz = london();
        let (start, end) = Schedule::parse("2026-07-01", "10:00:45", "11:30")
            .expect("valid")
            .to_instants(&tz)
            .expect("placed");
        assert_eq!(
            format_schedule(start, end, &tz),
            ("01/07/2026".into(), "10:00".into(), "11:30".into())
        );
        assert_eq!(format_schedule(None, None, &tz), (String::new(), String::new(), String::new()));
        assert_eq!(
            format_schedule(None, utc("2026-01-05T08:00:00Z"), &tz),
            ("05/01/2026".into(), String::new(), "08:00".into())
        );
    }
}
