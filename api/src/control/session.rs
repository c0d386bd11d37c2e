//! One connection's state (logged in or not, failed LOGINs) and the one place
//! where commands are applied: to the store for conference settings, to live
//! calls through [`LiveControl`](crate::live::LiveControl) for everything else.
//! What a line produces is an [`Outcome`]; the server only writes it out.

use std::time::Duration;

use super::ControlContext;
use super::codec::{FrameError, quoted, token};
use super::command::{Command, ConferenceFields, Request, Verb, parse_line};
use super::error::{CommandError, ControlError};
use super::events::{conference_config, user_line};
use super::sounds::resolve_wav;
use crate::live::{CallerUpdate, DialRequest, Event, LiveError, Media, PlayRequest, Target};
use crate::model::{CallStatus, Conference, Role};
use crate::store::StoreError;
use crate::time::Time;

/// How long a failed LOGIN waits before its answer, to slow password guessing.
pub const LOGIN_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Failed LOGINs after which the connection is closed.
pub const MAX_LOGIN_FAILURES: u32 = 3;
/// How long a command may take (the store or the call engine being stuck) before
/// it is answered with an error, so that a connection never hangs on one command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The CALLUSER remote-command that records the conference.
const LEAVE_RECORDING: &str = "!LeaveRecording";

/// What one line asks the connection to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Answer lines, without line ends.
    pub lines: Vec<String>,
    /// Wait this long before writing the answer.
    pub delay: Option<Duration>,
    /// Close the connection after the answer.
    pub close: bool,
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
    pub async fn handle_line(
        &mut self,
        ctx: &ControlContext,
        line: Result<String, FrameError>,
    ) -> Outcome {
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
            let verified = match ctx.store.verify_control_password(password).await {
                Ok(verified) => verified,
                Err(e) => return Outcome::error(&CommandError::from(e).on(verb)),
            };
            return self.login_result(verified);
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, apply(ctx, command)).await {
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
        tracing::warn!(failures = self.failures, "control: LOGIN with a wrong password");
        Outcome {
            lines: vec![CommandError::InvalidPassword.on(Verb::Login).to_line()],
            delay: Some(LOGIN_FAILURE_DELAY),
            close: self.failures >= MAX_LOGIN_FAILURES,
        }
    }
}

/// Applies a command and returns its answer lines. LOGIN is the session's own
/// business ([`Session::handle_line`]).
async fn apply(ctx: &ControlContext, command: Command) -> Result<Vec<String>, CommandError> {
    let verb = command.verb();
    let ok = || Ok(vec![format!("{verb},OK")]);
    let live = &ctx.live;
    match command {
        // Never reached: LOGIN is answered by the session, which checks the password.
        Command::Login { .. } => Err(CommandError::InvalidPassword),
        Command::NewConf(fields) => {
            new_conference(ctx, &fields).await?;
            ok()
        }
        Command::ModConf { conference, fields } => {
            let mut conf = conference_of(ctx, &conference).await?;
            set_fields(ctx, &mut conf, &fields).await?;
            save_changed(ctx, conf).await?;
            ok()
        }
        Command::DelConf { conference } => {
            delete_conference(ctx, &conference).await?;
            ok()
        }
        Command::GetConf { conference } => {
            let conf = conference_of(ctx, &conference).await?;
            Ok(vec![
                format!("GETCONF,{}", conference_config(&conf, &ctx.timezone)),
                "GETCONF,OK".into(),
            ])
        }
        Command::ListConf => {
            let counts: std::collections::HashMap<String, i64> =
                ctx.store.active_member_counts().await?.into_iter().collect();
            let mut lines: Vec<String> = ctx
                .store
                .list_conferences(None)
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
            let conf = conference_of(ctx, &conference).await?;
            let mut lines: Vec<String> = ctx
                .store
                .active_callers_of_conference(&conf.uid)
                .await?
                .iter()
                .map(|caller| user_line("LISTUSER", &conf.uid, caller))
                .collect();
            lines.push("LISTUSER,OK".into());
            Ok(lines)
        }
        Command::CallUser { conference, number, remote_command } => {
            let conf = conference_of(ctx, &conference).await?;
            if let Some(max) = conf.max_members
                && ctx.store.active_member_count(&conf.uid).await? >= max
            {
                return Err(CommandError::ConferenceFull);
            }
            let record =
                remote_command.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(LEAVE_RECORDING));
            let caller_uid = live
                .dial(DialRequest {
                    conference_uid: conf.uid.clone(),
                    number,
                    name: None,
                    role: Role::Participant,
                    remote_command,
                })
                .await?;
            if record && let Err(e) = live.start_recording(conf.uid.clone(), None).await {
                // The call is placed; the client learns of it either way.
                tracing::warn!(error = %e, conference = %conf.uid, "control: recording not started");
            }
            Ok(vec![format!("CALLUSER,OK,{},{}", token(&conf.uid), token(&caller_uid))])
        }
        Command::MoveUser { caller, conference } => {
            let conf = conference_of(ctx, &conference).await?;
            live.move_caller(caller, conf.uid).await?;
            ok()
        }
        Command::DropUser { caller } => {
            live.drop_caller(caller).await?;
            ok()
        }
        Command::MuteUser { caller, mute } => {
            live.update_caller(caller, CallerUpdate::Mute(mute)).await?;
            ok()
        }
        Command::MuteAll { conference, mute } => {
            update_everyone(ctx, &conference, CallerUpdate::Mute(mute)).await?;
            ok()
        }
        Command::DtmfUser { caller, allowed } => {
            live.update_caller(caller, CallerUpdate::DtmfAllowed(allowed)).await?;
            ok()
        }
        Command::DtmfAll { conference, allowed } => {
            update_everyone(ctx, &conference, CallerUpdate::DtmfAllowed(allowed)).await?;
            ok()
        }
        Command::PlayWav { caller, file, looped } => {
            let path = resolve_wav(&ctx.sounds_dir, &file).await?;
            live.play(PlayRequest {
                target: Target::Caller(caller),
                media: Media::File(path),
                looped,
            })
            .await?;
            ok()
        }
        Command::PlayWavAll { conference, file, looped } => {
            let conf = conference_of(ctx, &conference).await?;
            let path = resolve_wav(&ctx.sounds_dir, &file).await?;
            let target = Target::Conference(conf.uid);
            live.play(PlayRequest { target, media: Media::File(path), looped }).await?;
            ok()
        }
        Command::StopWav { caller } => {
            live.stop_playback(Target::Caller(caller)).await?;
            ok()
        }
        Command::StopWavAll { conference } => {
            let conf = conference_of(ctx, &conference).await?;
            live.stop_playback(Target::Conference(conf.uid)).await?;
            ok()
        }
        Command::PlayTts { caller, text } => {
            let target = Target::Caller(caller);
            live.play(PlayRequest { target, media: Media::Tts(text), looped: false }).await?;
            ok()
        }
        Command::PlayTtsAll { conference, text } => {
            let conf = conference_of(ctx, &conference).await?;
            let target = Target::Conference(conf.uid);
            live.play(PlayRequest { target, media: Media::Tts(text), looped: false }).await?;
            ok()
        }
        Command::KeepAlive { text } => Ok(vec![match text {
            Some(text) => format!("KEEPALIVE,OK,{}", token(&text)),
            None => "KEEPALIVE,OK".into(),
        }]),
        Command::ConfBeep { conference, on } => {
            let mut conf = conference_of(ctx, &conference).await?;
            conf.beep_on_entry = on;
            save_changed(ctx, conf).await?;
            ok()
        }
    }
}

/// The stored conference with this UID.
async fn conference_of(ctx: &ControlContext, uid: &str) -> Result<Conference, CommandError> {
    ctx.store.find::<Conference>(uid).await?.ok_or(CommandError::ConferenceNotFound)
}

async fn new_conference(
    ctx: &ControlContext,
    fields: &ConferenceFields,
) -> Result<(), CommandError> {
    let customer = ctx.store.default_customer().await.map_err(|e| match e {
        StoreError::NotFound(_) => CommandError::Live("No customer to own the conference".into()),
        other => other.into(),
    })?;
    let mut conference = Conference::new(&customer, fields.company.clone());
    set_fields(ctx, &mut conference, fields).await?;
    ctx.store.create_conference(&conference).await?;
    tracing::info!(conference = %conference.uid, "control: conference created");
    ctx.events.publish(Event::ConferenceCreated { conference });
    Ok(())
}

/// Writes NEWCONF/MODCONF fields into a conference, refusing a dial-in number that
/// another conference has.
async fn set_fields(
    ctx: &ControlContext,
    conference: &mut Conference,
    fields: &ConferenceFields,
) -> Result<(), CommandError> {
    if let Some(other) = ctx.store.conference_by_number(&fields.cn).await?
        && other.uid != conference.uid
    {
        return Err(CommandError::NumberInUse);
    }
    let (start, end) = fields.schedule.to_instants(&ctx.timezone)?;
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
    Ok(())
}

/// Stores a changed conference, tells the call engine and every facade.
async fn save_changed(
    ctx: &ControlContext,
    mut conference: Conference,
) -> Result<(), CommandError> {
    conference.updated_at = Time::now();
    ctx.store.update_conference(&conference).await?;
    match ctx.live.conference_changed(conference.uid.clone()).await {
        // Not live: the stored settings apply when it next starts.
        Ok(()) | Err(LiveError::NotFound(_)) => {}
        Err(e) => {
            tracing::warn!(error = %e, conference = %conference.uid, "control: change not applied live");
        }
    }
    ctx.events.publish(Event::ConferenceModified { conference });
    Ok(())
}

/// Ends the conference's live calls, then deletes it with everything it owns.
async fn delete_conference(ctx: &ControlContext, uid: &str) -> Result<(), CommandError> {
    let conference = conference_of(ctx, uid).await?;
    for call in ctx.store.calls_of(&conference.uid).await? {
        if call.status != CallStatus::Active {
            continue;
        }
        match ctx.live.close_call(call.uid.clone()).await {
            Ok(()) | Err(LiveError::NotFound(_)) => {}
            Err(e) => tracing::warn!(error = %e, call = %call.uid, "control: call not closed"),
        }
    }
    ctx.store.delete::<Conference>(&conference.uid).await?;
    tracing::info!(conference = %conference.uid, "control: conference deleted");
    ctx.events.publish(Event::ConferenceDeleted { conference });
    Ok(())
}

/// MUTEALL and DTMFALL: the update for every caller connected now. Callers that
/// left meanwhile are skipped; any other refusal is the answer.
async fn update_everyone(
    ctx: &ControlContext,
    conference: &str,
    update: CallerUpdate,
) -> Result<(), CommandError> {
    let conference = conference_of(ctx, conference).await?;
    let mut first_error = None;
    for caller in ctx.store.active_callers_of_conference(&conference.uid).await? {
        match ctx.live.update_caller(caller.uid.clone(), update.clone()).await {
            Ok(()) | Err(LiveError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, caller = %caller.uid, "control: caller not updated");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
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
