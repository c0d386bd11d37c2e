//! The one domain model behind every facade: customers, conferences, reservations,
//! persons, call sessions, callers, breakouts, tags, custom values, sounds and
//! recordings. Field names say what a thing is; each facade renames them to its own
//! document's vocabulary.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::time::Time;

/// An enum stored and exchanged as fixed text. Parsing ignores ASCII case, as the
/// protocols' users write `participant` as often as `PARTICIPANT`.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
        #[sqlx(type_name = "TEXT")]
        pub enum $name {
            $($(#[$vmeta])* #[sqlx(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| UnknownValue { kind: stringify!($name), value: s.to_owned() })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

/// A text value that names no variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind}: {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

text_enum! {
    pub enum CustomerStatus { Active = "ACTIVE", Suspend = "SUSPEND", Closed = "CLOSED", Hold = "HOLD" }
}

text_enum! {
    /// MaestroConference conference status.
    pub enum ConferenceStatus {
        /// Scheduled: exists, not yet running.
        Sched = "SCHED",
        Active = "ACTIVE",
        /// Between calls of a reservationless or multi-reservation conference.
        Idle = "IDLE",
        Closed = "CLOSED",
        Cancel = "CANCEL",
    }
}

text_enum! {
    /// Aculab reservation state.
    pub enum ReservationState { Reserved = "RESERVED", Holding = "HOLDING", Active = "ACTIVE", Completed = "COMPLETED" }
}

text_enum! {
    /// A caller's role. The first four are MaestroConference's; `Moderator` is what
    /// the PBX's moderator PIN gives.
    pub enum Role {
        Participant = "PARTICIPANT",
        Presenter = "PRESENTER",
        Assistant = "ASSISTANT",
        Operator = "OPERATOR",
        Moderator = "MODERATOR",
    }
}

text_enum! {
    pub enum CallStatus { Active = "ACTIVE", Closed = "CLOSED" }
}

text_enum! {
    /// Whether the caller dialled in or was dialled out to.
    pub enum Direction { Inbound = "INBOUND", Outbound = "OUTBOUND" }
}

text_enum! {
    /// Why a caller's call ended.
    pub enum EndReason {
        /// The caller hung up (BYE, or CANCEL before the answer).
        Hangup = "hangup",
        /// An operator, a program or a moderator's key dropped it.
        Dropped = "dropped",
        /// Its phone sent no RTP or RTCP for `--rtp-timeout` (vanished).
        RtpTimeout = "rtp-timeout",
        /// No session refresh came (RFC 4028).
        SessionExpired = "session-expired",
        /// The caller never acknowledged our answer.
        NoAck = "no-ack",
        /// The server stopped.
        Shutdown = "shutdown",
        /// Found open after the server restarted (it had crashed).
        ServerRestart = "server-restart",
        /// Signalling failed.
        Error = "error",
    }
}

text_enum! {
    /// The kinds of object that carry custom key/values.
    pub enum ObjectType {
        Customer = "customer",
        Conference = "conference",
        Call = "call",
        Caller = "caller",
        Person = "person",
    }
}

/// A struct stored as one row of one table, keyed by a text UID. The generic store
/// operations (insert, get, update, delete) work from this description.
pub trait Record: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin {
    const TABLE: &'static str;
    /// Column names, in field order; the first is the key.
    const COLUMNS: &'static [&'static str];

    fn uid(&self) -> &str;

    /// Binds every column, in `COLUMNS` order.
    fn bind_columns<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;
}

/// Defines a struct stored as a table row: the struct, its derives, and its
/// [`Record`] description, from one list of fields whose names are the columns.
macro_rules! record {
    ($(#[$meta:meta])* pub struct $name:ident in $table:literal {
        $(#[$kmeta:meta])* pub uid: String,
        $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
        pub struct $name {
            $(#[$kmeta])* pub uid: String,
            $($(#[$fmeta])* pub $field: $ty),*
        }

        impl Record for $name {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &["uid", $(stringify!($field)),*];

            fn uid(&self) -> &str {
                &self.uid
            }

            fn bind_columns<'q>(
                &'q self,
                query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
            ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
                query.bind(&self.uid)$(.bind(&self.$field))*
            }
        }
    };
}

record! {
    /// An account that owns conferences. Its API key is stored apart, hashed.
    pub struct Customer in "customers" {
        pub uid: String,
        pub name: String,
        pub status: CustomerStatus,
        /// The customer's inbound number: callers dialling it are asked for a
        /// person PIN (MaestroConference style).
        pub did: Option<String>,
        /// Defaults copied into new conferences.
        pub recording: bool,
        pub greenroom: bool,
        pub background_music: bool,
        /// Whether outbound calls may be placed.
        pub place_call: bool,
        /// Comma separated.
        pub contact_emails: String,
        pub affiliate_code: String,
        pub reminder: bool,
        pub pre_call: String,
        pub post_call: String,
        pub banner: String,
        pub caller_interface: String,
        pub reg_comment: String,
        pub created_at: Time,
        /// The most callers one reservation may be booked for; `None`: the
        /// server's `--max-calls`.
        pub max_callers: Option<i64>,
    }
}

impl Customer {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            uid: crate::secret::new_uid(),
            name: name.into(),
            status: CustomerStatus::Active,
            did: None,
            recording: false,
            greenroom: false,
            background_music: false,
            place_call: true,
            contact_emails: String::new(),
            affiliate_code: String::new(),
            reminder: false,
            pre_call: String::new(),
            post_call: String::new(),
            banner: String::new(),
            caller_interface: String::new(),
            reg_comment: String::new(),
            created_at: Time::now(),
            max_callers: None,
        }
    }
}

record! {
    /// A conference room: what callers dial, who may enter, and how they enter.
    pub struct Conference in "conferences" {
        pub uid: String,
        pub customer_uid: String,
        pub name: String,
        /// What callers dial (TCP 4011 `cn`, PBX number, Aculab conference_name).
        pub dial_in_number: Option<String>,
        pub company: String,
        pub organiser: String,
        pub status: ConferenceStatus,
        pub scheduled_start: Option<Time>,
        pub scheduled_end: Option<Time>,
        /// Reserved (entry only during reservations) or reservationless.
        pub reserved: bool,
        pub max_members: Option<i64>,
        /// The limit while `max_members` is `None` (the PBX's null means 100);
        /// `None`: no limit.
        pub default_max_members: Option<i64>,
        pub participant_pin: Option<String>,
        pub moderator_pin: Option<String>,
        pub security_token: String,
        pub recording: bool,
        pub greenroom: bool,
        pub background_music: bool,
        pub beep_on_entry: bool,
        pub mute_non_moderator: bool,
        pub announce_caller_name: bool,
        pub entry_notifications: bool,
        pub locked: bool,
        pub large_call: bool,
        pub place_call: bool,
        /// Sound ids.
        pub enter_sound: Option<i64>,
        pub music_on_hold_sound: Option<i64>,
        pub contact_email: String,
        pub register_text: String,
        pub notes: String,
        pub data: String,
        pub custom: String,
        pub reminder: bool,
        pub pre_call: String,
        pub post_call: String,
        pub banner: String,
        pub caller_interface: String,
        pub reg_comment: String,
        pub created_at: Time,
        pub updated_at: Time,
    }
}

impl Conference {
    /// The most members it takes: `max_members`, else its default; `None`:
    /// no limit.
    pub fn member_limit(&self) -> Option<i64> {
        self.max_members.or(self.default_max_members)
    }

    /// A reservationless conference with the customer's defaults.
    pub fn new(customer: &Customer, name: impl Into<String>) -> Self {
        let now = Time::now();
        Self {
            uid: crate::secret::new_uid(),
            customer_uid: customer.uid.clone(),
            name: name.into(),
            dial_in_number: None,
            company: String::new(),
            organiser: String::new(),
            status: ConferenceStatus::Sched,
            scheduled_start: None,
            scheduled_end: None,
            reserved: false,
            max_members: None,
            default_max_members: None,
            participant_pin: None,
            moderator_pin: None,
            security_token: crate::secret::new_security_token(),
            recording: customer.recording,
            greenroom: customer.greenroom,
            background_music: customer.background_music,
            beep_on_entry: true,
            mute_non_moderator: false,
            announce_caller_name: false,
            entry_notifications: true,
            locked: false,
            large_call: false,
            place_call: customer.place_call,
            enter_sound: None,
            music_on_hold_sound: None,
            contact_email: customer.contact_emails.clone(),
            register_text: String::new(),
            notes: String::new(),
            data: String::new(),
            custom: String::new(),
            reminder: customer.reminder,
            pre_call: customer.pre_call.clone(),
            post_call: customer.post_call.clone(),
            banner: customer.banner.clone(),
            caller_interface: customer.caller_interface.clone(),
            reg_comment: customer.reg_comment.clone(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// What a caller of one role gets on entry (MaestroConference RoleFlag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct RoleFlags {
    pub role: Role,
    /// May speak in the main room.
    pub mike: bool,
    pub mute: bool,
    pub deaf: bool,
}

impl RoleFlags {
    /// Everyone may speak and hear unless the conference says otherwise.
    pub fn default_for(role: Role) -> Self {
        Self { role, mike: true, mute: false, deaf: false }
    }
}

record! {
    /// A booked time window of a conference.
    pub struct Reservation in "reservations" {
        pub uid: String,
        pub conference_uid: String,
        pub token: String,
        pub start_time: Time,
        /// `None`: open-ended (the one reservation of a reservationless
        /// conference, which only holds its estimated size).
        pub duration_minutes: Option<i64>,
        pub estimated_callers: i64,
        /// Where early callers are sent instead of being refused.
        pub divert: Option<String>,
        pub state: ReservationState,
        pub created_at: Time,
    }
}

impl Reservation {
    pub fn new(conference_uid: &str, start_time: Time, duration_minutes: i64) -> Self {
        Self {
            duration_minutes: Some(duration_minutes),
            ..Self::open_ended(conference_uid, start_time)
        }
    }

    /// The reservation of a reservationless conference: from `start_time` on, no end.
    pub fn open_ended(conference_uid: &str, start_time: Time) -> Self {
        Self {
            uid: crate::secret::new_uid(),
            conference_uid: conference_uid.to_owned(),
            token: crate::secret::new_reservation_token(),
            start_time,
            duration_minutes: None,
            estimated_callers: 0,
            divert: None,
            state: ReservationState::Reserved,
            created_at: Time::now(),
        }
    }

    /// When it ends; `None` for an open-ended reservation.
    pub fn end_time(&self) -> Option<Time> {
        self.duration_minutes.map(|minutes| self.start_time.plus_minutes(minutes))
    }

    /// Whether it runs at `now`: reservations are half-open, `[start, end)`.
    pub fn runs_at(&self, now: Time) -> bool {
        self.start_time <= now && self.end_time().is_none_or(|end| now < end)
    }

    /// Whether it is over at `now`.
    pub fn is_past(&self, now: Time) -> bool {
        self.end_time().is_some_and(|end| end <= now)
    }
}

/// A tag in a conference's scope; persons carry them and call tags may derive from them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct ConferenceTag {
    pub id: i64,
    pub conference_uid: String,
    pub value: String,
}

record! {
    /// Someone registered for a conference, with the PIN that identifies them.
    pub struct Person in "persons" {
        pub uid: String,
        pub customer_uid: String,
        pub conference_uid: String,
        pub name: String,
        pub email: String,
        pub ani: String,
        pub pin: String,
        pub role: Role,
        pub notes: String,
        pub custom1: String,
        pub custom2: String,
        pub created_at: Time,
    }
}

impl Person {
    pub fn new(conference: &Conference, pin: impl Into<String>, role: Role) -> Self {
        Self {
            uid: crate::secret::new_uid(),
            customer_uid: conference.customer_uid.clone(),
            conference_uid: conference.uid.clone(),
            name: String::new(),
            email: String::new(),
            ani: String::new(),
            pin: pin.into(),
            role,
            notes: String::new(),
            custom1: String::new(),
            custom2: String::new(),
            created_at: Time::now(),
        }
    }
}

record! {
    /// A call session (MaestroConference "Call"): one live run of a conference.
    pub struct Call in "calls" {
        pub uid: String,
        pub conference_uid: String,
        pub name: String,
        pub status: CallStatus,
        pub actual_start: Time,
        pub actual_end: Option<Time>,
        pub notes: String,
        pub data: String,
        pub custom: String,
        /// Whether talking events are sent.
        pub talking: bool,
        pub greenroom: bool,
        pub entryway: bool,
        pub background_music: bool,
        pub link: String,
        pub message: String,
        pub feedback: String,
        pub enable_feedback: bool,
        pub enable_broadcast: bool,
    }
}

impl Call {
    pub fn new(conference: &Conference, actual_start: Time) -> Self {
        Self {
            uid: crate::secret::new_uid(),
            conference_uid: conference.uid.clone(),
            name: conference.name.clone(),
            status: CallStatus::Active,
            actual_start,
            actual_end: None,
            notes: String::new(),
            data: String::new(),
            custom: String::new(),
            talking: true,
            greenroom: conference.greenroom,
            entryway: false,
            background_music: conference.background_music,
            link: String::new(),
            message: String::new(),
            feedback: String::new(),
            enable_feedback: false,
            enable_broadcast: false,
        }
    }
}

/// A tag in a call's scope, possibly copied from a conference tag.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct CallTag {
    pub id: i64,
    pub call_uid: String,
    pub value: String,
    pub conference_tag_id: Option<i64>,
}

record! {
    /// A group of callers who hear each other apart from the main room.
    pub struct Breakout in "breakouts" {
        pub uid: String,
        pub call_uid: String,
        pub name: String,
        /// A private group does not hear the main room's speakers.
        pub private: bool,
        pub attention: bool,
        pub attention_time: Option<Time>,
        pub last_assisted_time: Option<Time>,
        pub data: String,
        pub created_at: Time,
    }
}

impl Breakout {
    pub fn new(call_uid: &str, name: impl Into<String>) -> Self {
        Self {
            uid: crate::secret::new_uid(),
            call_uid: call_uid.to_owned(),
            name: name.into(),
            private: false,
            attention: false,
            attention_time: None,
            last_assisted_time: None,
            data: String::new(),
            created_at: Time::now(),
        }
    }
}

record! {
    /// One telephone call into (or out of) a call session, live or past.
    pub struct Caller in "callers" {
        pub uid: String,
        pub call_uid: String,
        pub person_uid: Option<String>,
        pub direction: Direction,
        /// Display name.
        pub name: String,
        pub ani: String,
        pub did: String,
        pub pin: String,
        pub role: Role,
        pub breakout_uid: Option<String>,
        pub breakout_time: Option<Time>,
        pub mike: bool,
        pub mute: bool,
        pub deaf: bool,
        /// May mute and unmute themselves with keys 1 and 2.
        pub dtmf_allowed: bool,
        pub listen_only: bool,
        pub active: bool,
        pub tag: String,
        /// 0 (none) to 5.
        pub attention: i64,
        pub attention_time: Option<Time>,
        pub data: String,
        pub notes: String,
        pub custom1: String,
        pub custom2: String,
        pub volume_in: i64,
        pub volume_out: i64,
        pub energy: i64,
        pub start_time: Time,
        pub end_time: Option<Time>,
        /// Why it ended (`None` while connected).
        pub end_reason: Option<EndReason>,
    }
}

impl Caller {
    pub fn new(call_uid: &str, direction: Direction, role: Role, start_time: Time) -> Self {
        let flags = RoleFlags::default_for(role);
        Self {
            uid: crate::secret::new_uid(),
            call_uid: call_uid.to_owned(),
            person_uid: None,
            direction,
            name: String::new(),
            ani: String::new(),
            did: String::new(),
            pin: String::new(),
            role,
            breakout_uid: None,
            breakout_time: None,
            mike: flags.mike,
            mute: flags.mute,
            deaf: flags.deaf,
            dtmf_allowed: true,
            listen_only: false,
            active: true,
            tag: String::new(),
            attention: 0,
            attention_time: None,
            data: String::new(),
            notes: String::new(),
            custom1: String::new(),
            custom2: String::new(),
            volume_in: 0,
            volume_out: 0,
            energy: 0,
            start_time,
            end_time: None,
            end_reason: None,
        }
    }
}

/// An uploaded WAV file under `<data-dir>/sounds/`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct Sound {
    pub id: i64,
    /// `None`: usable by every customer.
    pub customer_uid: Option<String>,
    pub name: String,
    /// Relative to `<data-dir>/sounds/`.
    pub file_name: String,
    pub created_at: Time,
}

record! {
    /// A recording of a room, or of one member, under `<data-dir>/recordings/`.
    pub struct Recording in "recordings" {
        pub uid: String,
        pub conference_uid: String,
        pub call_uid: Option<String>,
        pub caller_uid: Option<String>,
        /// Relative to `<data-dir>/recordings/`.
        pub file_name: String,
        pub started_at: Time,
        pub ended_at: Option<Time>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enums_parse_case_insensitively_and_print_canonically() {
        assert_eq!("participant".parse::<Role>(), Ok(Role::Participant));
        assert_eq!(" Presenter ".parse::<Role>(), Ok(Role::Presenter));
        assert_eq!(Role::Moderator.to_string(), "MODERATOR");
        assert_eq!("CALL".parse::<ObjectType>(), Ok(ObjectType::Call));
        assert_eq!(ObjectType::Call.as_str(), "call");
        let err = "PARTICPANT".parse::<Role>().unwrap_err();
        assert_eq!(err.to_string(), "unknown Role: \"PARTICPANT\"");
    }

    #[test]
    fn every_variant_round_trips_through_text() {
        for s in ConferenceStatus::ALL {
            assert_eq!(s.as_str().parse::<ConferenceStatus>(), Ok(*s));
        }
        for s in ReservationState::ALL {
            assert_eq!(s.as_str().parse::<ReservationState>(), Ok(*s));
        }
    }

    #[test]
    fn reservation_end_is_start_plus_duration() {
        let start: Time = "2026-12-01T10:00:00Z".parse().expect("valid");
        let r = Reservation::new("c", start, 90);
        assert_eq!(
            r.end_time().map(|t| t.to_string()).as_deref(),
            Some("2026-12-01T11:30:00.000Z")
        );
        assert!(Reservation::open_ended("c", start).end_time().is_none());
    }

    #[test]
    fn new_conference_takes_customer_defaults() {
        let mut customer = Customer::new("Acme");
        customer.recording = true;
        customer.place_call = false;
        customer.contact_emails = "a@example.com".into();
        let conf = Conference::new(&customer, "Weekly");
        assert!(conf.recording);
        assert!(!conf.place_call);
        assert_eq!(conf.contact_email, "a@example.com");
        assert!(conf.beep_on_entry, "CONFBEEP defaults to on");
        assert_eq!(conf.status, ConferenceStatus::Sched);
        assert_eq!(conf.security_token.len(), 32);
    }
}
