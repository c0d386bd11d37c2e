//! Every way a TCP 4011 line can fail, and the one place where a failure becomes
//! its protocol line: `ERROR,"..."` for the connection-level ones and
//! `<COMMAND>,ERROR,"<description>"` for a command's own.

use super::codec::{quoted, token};
use super::command::Verb;
use super::schedule::ScheduleError;
use crate::ops::{Conflict, Kind, OpsError};
use crate::store::StoreError;

/// A failure answered with one protocol line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("Not logged in")]
    NotLoggedIn,
    /// The first field names no command; carries it as sent.
    #[error("Unknown command")]
    UnknownCommand(String),
    #[error("Line too long")]
    LineTooLong,
    /// A line whose command cannot even be read (broken quoting in its first field).
    #[error("Syntax error")]
    Syntax,
    #[error("Too many connections")]
    TooManyConnections,
    /// No successful LOGIN in time; the connection is closed.
    #[error("Login timeout")]
    LoginTimeout,
    #[error("{verb}: {error}")]
    Command { verb: Verb, error: CommandError },
}

impl ControlError {
    /// The answer line, without its CR LF.
    pub fn to_line(&self) -> String {
        match self {
            Self::UnknownCommand(name) => {
                format!("ERROR,{},{}", quoted("Unknown command"), token(name))
            }
            Self::Command { verb, error } => {
                format!("{},ERROR,{}", verb.as_str(), quoted(&error.to_string()))
            }
            other => format!("ERROR,{}", quoted(&other.to_string())),
        }
    }
}

/// Why one command failed; the text is the description after `<COMMAND>,ERROR,`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Too many or too few fields, or broken quoting.
    #[error("Syntax error")]
    Syntax,
    /// A field that does not hold what it should; names the field.
    #[error("Invalid {0}")]
    Invalid(&'static str),
    #[error("{0}")]
    Schedule(#[from] ScheduleError),
    #[error("Invalid password")]
    InvalidPassword,
    #[error("Conference not found")]
    ConferenceNotFound,
    /// The conference exists but has no live call to act on.
    #[error("Conference not active")]
    ConferenceNotActive,
    #[error("User not found")]
    UserNotFound,
    #[error("File not found")]
    FileNotFound,
    #[error("Conference full")]
    ConferenceFull,
    #[error("Conference number already in use")]
    NumberInUse,
    /// What the call engine said, for refusals that have no variant here.
    #[error("{0}")]
    Live(String),
    /// The store or the call engine did not answer in time.
    #[error("Timed out")]
    TimedOut,
    /// A failure inside the server (database, call engine); logged under the
    /// incident number, never shown in detail.
    #[error("Temporarily unavailable (incident {0})")]
    Unavailable(u64),
}

impl CommandError {
    pub fn on(self, verb: Verb) -> ControlError {
        ControlError::Command { verb, error: self }
    }
}

impl From<OpsError> for CommandError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(Kind::Caller) => Self::UserNotFound,
            OpsError::NotFound(Kind::Conference) => Self::ConferenceNotFound,
            OpsError::NotFound(Kind::Call) => Self::ConferenceNotActive,
            OpsError::NotFound(Kind::File) => Self::FileNotFound,
            OpsError::NotFound(kind) => Self::Live(sentence(&format!("{kind} not found"))),
            OpsError::Invalid { field, reason } => {
                tracing::debug!(field, %reason, "control: invalid value");
                Self::Invalid(field)
            }
            OpsError::Full => Self::ConferenceFull,
            OpsError::Conflict(Conflict::NumberInUse) => Self::NumberInUse,
            OpsError::Unavailable { incident } => Self::Unavailable(incident),
            other @ (OpsError::Locked
            | OpsError::NotStarted
            | OpsError::Ended(_)
            | OpsError::Conflict(_)
            | OpsError::Reservation(_)
            | OpsError::NotAllowed(_)) => Self::Live(sentence(
                other.to_string().strip_prefix("the ").unwrap_or(&other.to_string()),
            )),
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        OpsError::from(e).into()
    }
}

/// `text` with its first letter capitalised, as the protocol's descriptions are.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_level_errors() {
        assert_eq!(ControlError::NotLoggedIn.to_line(), r#"ERROR,"Not logged in""#);
        assert_eq!(
            ControlError::UnknownCommand("LIST".into()).to_line(),
            r#"ERROR,"Unknown command",LIST"#
        );
        assert_eq!(
            ControlError::UnknownCommand("A,B".into()).to_line(),
            r#"ERROR,"Unknown command","A,B""#
        );
        assert_eq!(ControlError::LineTooLong.to_line(), r#"ERROR,"Line too long""#);
    }

    #[test]
    fn command_errors_name_their_command() {
        assert_eq!(
            CommandError::ConferenceNotFound.on(Verb::ListUser).to_line(),
            r#"LISTUSER,ERROR,"Conference not found""#
        );
        assert_eq!(
            CommandError::Syntax.on(Verb::ListUser).to_line(),
            r#"LISTUSER,ERROR,"Syntax error""#
        );
        assert_eq!(
            CommandError::Invalid("mute value").on(Verb::MuteUser).to_line(),
            r#"MUTEUSER,ERROR,"Invalid mute value""#
        );
    }

    #[test]
    fn operation_errors_read_as_protocol_descriptions() {
        let cases = [
            (OpsError::NotFound(Kind::Caller), "User not found"),
            (OpsError::NotFound(Kind::Conference), "Conference not found"),
            (OpsError::NotFound(Kind::Call), "Conference not active"),
            (OpsError::NotFound(Kind::Recording), "Recording not found"),
            (OpsError::NotFound(Kind::File), "File not found"),
            (OpsError::Locked, "Conference is locked"),
            (OpsError::Full, "Conference full"),
            (OpsError::NotStarted, "Conference has not started"),
            (OpsError::Ended(Kind::Recording), "Recording has ended"),
            (OpsError::invalid("wav-file", "unsupported WAV format"), "Invalid wav-file"),
            (OpsError::Conflict(Conflict::NumberInUse), "Conference number already in use"),
            (OpsError::Conflict(Conflict::AlreadyRecording), "A recording is already running"),
            (OpsError::NotAllowed("outbound calls are disabled"), "Outbound calls are disabled"),
            (OpsError::Unavailable { incident: 7 }, "Temporarily unavailable (incident 7)"),
        ];
        for (ops, text) in cases {
            assert_eq!(CommandError::from(ops).to_string(), text);
        }
    }

    #[test]
    fn store_errors_hide_database_details() {
        let e = CommandError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert!(matches!(e, CommandError::Unavailable(_)), "{e:?}");
        assert!(!e.to_string().contains("pool"));
        let e = CommandError::from(StoreError::Conflict("conferences.dial_in_number".into()));
        assert_eq!(e, CommandError::NumberInUse);
    }
}
