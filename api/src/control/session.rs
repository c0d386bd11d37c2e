//! One connection's state (logged in or not, failed LOGINs) and the translation
//! of each command into one call of the operations layer ([`crate::ops`]),
//! where every rule lives. What a line produces is an [`Outcome`]; the server
//! only writes it out.

use std::time::Duration;

use super::codec::{FrameError, quoted, token};
use super::command::{Command, ConferenceFields, Request, Verb, parse_line};
use super::error::{CommandError, ControlError};
use super::events::{conference_config, user_line};
use crate::live::{CallerUpdate, Target};
use crate::model::{Conference, Role};
use crate::ops::media::DialOut;
use crate::ops::{Ops, Scope};
use crate::time::Time;

/// How long a failed LOGIN waits before its answer, to slow password guessing.
pub const LOGIN_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Failed LOGINs after which the connection is closed.
pub const MAX_LOGIN_FAILURES: u32 = 3;
/// How long a command may take (the store or the call engine being stuck) before
/// it is answered with an error, so that a connection never hangs on one command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What one line asks the connection to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Answer lines, without line ends.
    pub lines: Vec<String>,
    /// Wait this long before writing the answer.
    pub delay: Option<Duration>,
    /// Close the connection after the answer.
    pub close: bool,
    /// After a LOGIN whose password was checked: whether it was right. The server
    /// counts failures per client address with it (see [`super::guard`]).
    pub login_verified: Option<bool>,
}

impl Outcome {
    fn lines(lines: Vec<String>) -> Self {
        Self { lines, ..Self::default() }
    }

    fn error(error: &ControlError) -> Self {
        Self::lines(vec![error.to_line()])
    }
}

/// A connection's login state.
#[derive(Debug, Default)]
pub struct Session {
    logged_in: bool,
    failures: u32,
}

impl Session {
    /// Whether LOGIN has succeeded; events are sent only then.
    pub fn is_logged_in(&self) -> bool {
        self.logged_in
    }

    /// Answers one line (or a framing error in its place).
    pub async fn handle_line(&mut self, ops: &Ops, line: Result<String, FrameError>) -> Outcome {
        let line = match line {
            Ok(line) => line,
            Err(FrameError::TooLong) => return Outcome::error(&ControlError::LineTooLong),
        };
        let Request { verb, command } = match parse_line(&line) {
            Ok(Some(request)) => request,
            Ok(None) => return Outcome::default(),
            // Before LOGIN, nothing (not even which names exist) is revealed.
            Err(_) if !self.logged_in => return Outcome::error(&ControlError::NotLoggedIn),
            Err(e) => return Outcome::error(&e),
        };
        if !self.logged_in && !verb.allowed_before_login() {
            return Outcome::error(&ControlError::NotLoggedIn);
        }
        let command = match command {
            Ok(command) => command,
            Err(e) => return Outcome::error(&e.on(verb)),
        };
        if let Command::Login { password } = &command {
            let verified = match ops.store.verify_control_password(password).await {
                Ok(verified) => verified,
                Err(e) => return Outcome::error(&CommandError::from(e).on(verb)),
            };
            let mut outcome = self.login_result(verified);
            outcome.login_verified = Some(verified);
            return outcome;
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, apply(ops, command)).await {
            Ok(Ok(lines)) => Outcome::lines(lines),
            Ok(Err(e)) => Outcome::error(&e.on(verb)),
            Err(_) => {
                tracing::warn!(command = %verb, "control: command timed out");
                Outcome::error(&CommandError::TimedOut.on(verb))
            }
        }
    }

    /// The login state after a LOGIN whose password was (not) right. A failure
    /// leaves the state as it was, answers after [`LOGIN_FAILURE_DELAY`] and, the
    /// [`MAX_LOGIN_FAILURES`]th time, closes the connection.
    pub fn login_result(&mut self, verified: bool) -> Outcome {
        if verified {
            self.logged_in = true;
            self.failures = 0;
            return Outcome::lines(vec!["LOGIN,OK".into()]);
        }
        self.failures = self.failures.saturating_add(1);
        // The server logs the failure at warn, with the client's address.
        tracing::debug!(failures = self.failures, "control: LOGIN with a wrong password");
        Outcome {
            lines: vec![CommandError::InvalidPassword.on(Verb::Login).to_line()],
            delay: Some(LOGIN_FAILURE_DELAY),
            close: self.failures >= MAX_LOGIN_FAILURES,
            ..Outcome::default()
        }
    }
}

/// TCP 4011 is the server operator's interface: it sees every conference.
const SCOPE: Scope = Scope::Server;

/// Applies a command and returns its answer lines. LOGIN is the session's own
/// business ([`Session::handle_line`]).
async fn apply(ops: &Ops, command: Command) -> Result<Vec<String>, CommandError> {
    let verb = command.verb();
    let ok = || Ok(vec![format!("{verb},OK")]);
    match command {
        // Never reached: LOGIN is answered by the session, which checks the password.
        Command::Login { .. } => Err(CommandError::InvalidPassword),
        Command::NewConf(fields) => {
            let schedule = fields.schedule.to_instants(&ops.settings.timezone)?;
            let mut conference = ops.new_conference(&SCOPE, &fields.company).await?;
            set_fields(&mut conference, &fields, schedule);
            ops.create_conference(&SCOPE, conference).await?;
            ok()
        }
        Command::ModConf { conference, fields } => {
            let schedule = fields.schedule.to_instants(&ops.settings.timezone)?;
            ops.modify_conference(&SCOPE, &conference, |c| {
                set_fields(c, &fields, schedule);
                Ok(())
            })
            .await?;
            ok()
        }
        Command::DelConf { conference } => {
            ops.delete_conference(&SCOPE, &conference).await?;
            ok()
        }
        Command::GetConf { conference } => {
            let conf = ops.conference(&SCOPE, &conference).await?;
            Ok(vec![
                format!("GETCONF,{}", conference_config(&conf, &ops.settings.timezone)),
                "GETCONF,OK".into(),
            ])
        }
        Command::ListConf => {
            let counts = ops.member_counts(&SCOPE).await?;
            let mut lines: Vec<String> = ops
                .conferences(&SCOPE)
                .await?
                .iter()
                .map(|c| {
                    format!(
                        "LISTCONF,{},{},{},{}",
                        token(&c.uid),
                        token(c.dial_in_number.as_deref().unwrap_or_default()),
                        quoted(&c.company),
                        counts.get(&c.uid).copied().unwrap_or(0)
                    )
                })
                .collect();
            lines.push("LISTCONF,OK".into());
            Ok(lines)
        }
        Command::ListUser { conference } => {
            let mut lines: Vec<String> = ops
                .live_callers(&SCOPE, &conference)
                .await?
                .iter()
                .map(|caller| user_line("LISTUSER", &conference, caller))
                .collect();
            lines.push("LISTUSER,OK".into());
            Ok(lines)
        }
        Command::CallUser { conference, number, remote_command } => {
            let dial = DialOut {
                conference_uid: conference.clone(),
                number,
                name: None,
                role: Role::Participant,
                remote_command,
            };
            let caller_uid = ops.dial_out(&SCOPE, dial).await?;
            Ok(vec![format!("CALLUSER,OK,{},{}", token(&conference), token(&caller_uid))])
        }
        Command::MoveUser { caller, conference } => {
            ops.move_caller(&SCOPE, &caller, &conference).await?;
            ok()
        }
        Command::DropUser { caller } => {
            ops.drop_caller(&SCOPE, &caller).await?;
            ok()
        }
        Command::MuteUser { caller, mute } => {
            ops.update_caller(&SCOPE, &caller, CallerUpdate::Mute(mute)).await?;
            ok()
        }
        Command::MuteAll { conference, mute } => {
            ops.update_everyone(&SCOPE, &conference, CallerUpdate::Mute(mute)).await?;
            ok()
        }
        Command::DtmfUser { caller, allowed } => {
            ops.update_caller(&SCOPE, &caller, CallerUpdate::DtmfAllowed(allowed)).await?;
            ok()
        }
        Command::DtmfAll { conference, allowed } => {
            ops.update_everyone(&SCOPE, &conference, CallerUpdate::DtmfAllowed(allowed)).await?;
            ok()
        }
        Command::PlayWav { caller, file, looped } => {
            ops.play_file(&SCOPE, Target::Caller(caller), &file, looped).await?;
            ok()
        }
        Command::PlayWavAll { conference, file, looped } => {
            ops.play_file(&SCOPE, Target::Conference(conference), &file, looped).await?;
            ok()
        }
        Command::StopWav { caller } => {
            ops.stop_playback(&SCOPE, Target::Caller(caller)).await?;
            ok()
        }
        Command::StopWavAll { conference } => {
            ops.stop_playback(&SCOPE, Target::Conference(conference)).await?;
            ok()
        }
        Command::PlayTts { caller, text } => {
            ops.play_speech(&SCOPE, Target::Caller(caller), &text).await?;
            ok()
        }
        Command::PlayTtsAll { conference, text } => {
            ops.play_speech(&SCOPE, Target::Conference(conference), &text).await?;
            ok()
        }
        Command::KeepAlive { text } => Ok(vec![match text {
            Some(text) => format!("KEEPALIVE,OK,{}", token(&text)),
            None => "KEEPALIVE,OK".into(),
        }]),
        Command::ConfBeep { conference, on } => {
            ops.modify_conference(&SCOPE, &conference, |c| {
                c.beep_on_entry = on;
                Ok(())
            })
            .await?;
            ok()
        }
    }
}

/// Writes NEWCONF/MODCONF fields, with the schedule as instants, into a
/// conference. The operations layer checks the result (a dial-in number in use,
/// PINs, limits).
fn set_fields(
    conference: &mut Conference,
    fields: &ConferenceFields,
    (start, end): (Option<Time>, Option<Time>),
) {
    // The name follows the company unless another interface gave it its own.
    if conference.name == conference.company {
        conference.name = fields.company.clone();
    }
    conference.dial_in_number = Some(fields.cn.clone());
    conference.company = fields.company.clone();
    conference.organiser = fields.organiser.clone();
    conference.max_members = fields.max_users;
    conference.scheduled_start = start;
    conference.scheduled_end = end;
    conference.participant_pin = fields.pin.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_failures_delay_and_the_third_closes() {
        let mut session = Session::default();
        for n in 1..=3 {
            let out = session.login_result(false);
            assert_eq!(out.lines, vec![r#"LOGIN,ERROR,"Invalid password""#.to_owned()]);
            assert_eq!(out.delay, Some(LOGIN_FAILURE_DELAY));
            assert_eq!(out.close, n == 3, "attempt {n}");
            assert!(!session.is_logged_in());
        }
    }

    #[test]
    fn a_good_login_resets_the_failure_count() {
        let mut session = Session::default();
        assert!(!session.login_result(false).close);
        assert!(!session.login_result(false).close);
        let out = session.login_result(true);
        assert_eq!(out, Outcome::lines(vec!["LOGIN,OK".into()]));
        assert!(session.is_logged_in());
        assert!(!session.login_result(false).close);
        assert!(session.is_logged_in(), "a failed LOGIN does not log out");
    }
}
