//! Every way a TCP 4011 line can fail, and the one place where a failure becomes
//! its protocol line: `ERROR,"..."` for the connection-level ones and
//! `<COMMAND>,ERROR,"<description>"` for a command's own.

use super::codec::{quoted, token};
use super::command::Verb;
use super::schedule::ScheduleError;
use crate::live::LiveError;
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
    /// A database failure; logged where it happens, never shown in detail.
    #[error("Internal error")]
    Internal,
}

impl CommandError {
    pub fn on(self, verb: Verb) -> ControlError {
        ControlError::Command { verb, error: self }
    }
}

impl From<LiveError> for CommandError {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::NotFound("caller" | "user") => Self::UserNotFound,
            LiveError::NotFound("conference") => Self::ConferenceNotFound,
            LiveError::NotFound("call") => Self::ConferenceNotActive,
            LiveError::NotFound(what) => Self::Live(sentence(&format!("{what} not found"))),
            LiveError::Refused(text) | LiveError::Invalid(text) => Self::Live(sentence(&text)),
            LiveError::Unavailable(text) => {
                tracing::warn!(error = %text, "control: call engine unavailable");
                Self::Live(sentence(&text))
            }
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound("conferences") => Self::ConferenceNotFound,
            StoreError::NotFound("callers") => Self::UserNotFound,
            StoreError::NotFound(what) => Self::Live(sentence(&format!("{what} not found"))),
            StoreError::Conflict(columns) if columns.contains("dial_in_number") => {
                Self::NumberInUse
            }
            StoreError::Conflict(_) => Self::Live("Already in use".into()),
            StoreError::Invalid(text) => {
                tracing::debug!(error = %text, "control: store refused a value");
                Self::Live("Invalid value".into())
            }
            e @ (StoreError::Database(_) | StoreError::Migrate(_)) => {
                tracing::error!(error = %e, "control: store failed");
                Self::Internal
            }
        }
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
    fn live_errors_read_as_protocol_descriptions() {
        let cases = [
            (LiveError::NotFound("caller"), "User not found"),
            (LiveError::NotFound("conference"), "Conference not found"),
            (LiveError::NotFound("call"), "Conference not active"),
            (LiveError::NotFound("recording"), "Recording not found"),
            (LiveError::Refused("conference is locked".into()), "Conference is locked"),
            (LiveError::Invalid("unsupported WAV format".into()), "Unsupported WAV format"),
            (LiveError::Unavailable("text-to-speech missing".into()), "Text-to-speech missing"),
        ];
        for (live, text) in cases {
            assert_eq!(CommandError::from(live).to_string(), text);
        }
    }

    #[test]
    fn store_errors_hide_database_details() {
        let e = CommandError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(e, CommandError::Internal);
        let e = CommandError::from(StoreError::Conflict("conferences.dial_in_number".into()));
        assert_eq!(e, CommandError::NumberInUse);
    }
}
