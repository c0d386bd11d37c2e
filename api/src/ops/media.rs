//! What is heard and kept: playbacks of files and speech, recordings of a room
//! or of one caller, and outbound calls into a conference.

use super::sounds::resolve_wav_named;
use super::{Kind, Ops, OpsError, OpsResult, Scope};
use crate::live::{DialRequest, Media, PlayRequest, Target};
use crate::model::{ConferenceStatus, Role};
use crate::rules::admit;
use crate::time::Time;

/// The longest telephone number or SIP URI dialled.
pub const MAX_DIAL_LEN: usize = 256;
/// The longest text spoken by text-to-speech.
pub const MAX_SPEECH_LEN: usize = 2000;

/// An outbound call a client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOut {
    pub conference_uid: String,
    /// A telephone number (through the outbound proxy) or a SIP URI.
    pub number: String,
    pub name: Option<String>,
    pub role: Role,
    /// TCP 4011 remote-command (`!LeaveRecording` records the conference).
    pub remote_command: Option<String>,
}

impl Ops {
    /// Checks that the requester may aim at `target`.
    async fn check_target(&self, scope: &Scope, target: &Target) -> OpsResult<()> {
        match (scope, target) {
            (Scope::Server, Target::Caller(_)) => Ok(()),
            (_, Target::Caller(uid)) => self.caller_owner(scope, uid).await.map(drop),
            (_, Target::Conference(uid)) => self.conference(scope, uid).await.map(drop),
        }
    }

    /// Plays a WAV file from the sounds directory, named as the client named it.
    pub async fn play_file(
        &self,
        scope: &Scope,
        target: Target,
        name: &str,
        looped: bool,
    ) -> OpsResult<()> {
        self.check_target(scope, &target).await?;
        let (path, name) = resolve_wav_named(&self.settings.sounds_dir, name).await?;
        let media = Media::File { path, name };
        self.live.play(PlayRequest { target, media, looped }).await
    }

    /// Plays one of the stored sounds (the Conductor's playTone: an Audio clip
    /// of the conference), the customer's own or a shared one.
    pub async fn play_sound(&self, scope: &Scope, target: Target, sound_id: i64) -> OpsResult<()> {
        self.check_target(scope, &target).await?;
        let sound = match self.store.sound(sound_id).await {
            Ok(sound) => sound,
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(OpsError::NotFound(Kind::Sound));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(owner) = &sound.customer_uid
            && !scope.sees(owner)
        {
            return Err(OpsError::NotFound(Kind::Sound));
        }
        let (path, _) = resolve_wav_named(&self.settings.sounds_dir, &sound.file_name).await?;
        let media = Media::File { path, name: sound.name };
        self.live.play(PlayRequest { target, media, looped: false }).await
    }

    /// Speaks `text` through text-to-speech.
    pub async fn play_speech(&self, scope: &Scope, target: Target, text: &str) -> OpsResult<()> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_SPEECH_LEN {
            return Err(OpsError::invalid("text", format!("1 to {MAX_SPEECH_LEN} bytes")));
        }
        self.check_target(scope, &target).await?;
        let media = Media::Tts(text.to_owned());
        self.live.play(PlayRequest { target, media, looped: false }).await
    }

    /// Stops what plays to a target.
    pub async fn stop_playback(&self, scope: &Scope, target: Target) -> OpsResult<()> {
        self.check_target(scope, &target).await?;
        self.live.stop_playback(target).await
    }

    /// Places an outbound call that joins the conference once answered; returns
    /// the new caller's UID (progress follows as events). The conference's
    /// admission rules apply now, and again, with the seats of callers on their
    /// way, when the engine places the call.
    pub async fn dial_out(&self, scope: &Scope, request: DialOut) -> OpsResult<String> {
        let number = request.number.trim();
        let valid = !number.is_empty()
            && number.len() <= MAX_DIAL_LEN
            && !number.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(OpsError::invalid("number", "a telephone number or SIP URI"));
        }
        let conference = self.conference(scope, &request.conference_uid).await?;
        if conference.status == ConferenceStatus::Cancel {
            return Err(OpsError::Ended(Kind::Conference));
        }
        if !conference.place_call {
            return Err(OpsError::NotAllowed("outbound calls are disabled for this conference"));
        }
        let reservations = self.store.reservations_of(&conference.uid).await?;
        let members = self.store.active_member_count(&conference.uid).await?;
        let members = usize::try_from(members).unwrap_or(usize::MAX);
        if let Some(refusal) = admit(&conference, &reservations, Time::now(), members).refusal() {
            return Err(refusal);
        }
        self.live
            .dial(DialRequest {
                conference_uid: conference.uid,
                number: number.to_owned(),
                name: request.name,
                role: request.role,
                remote_command: request.remote_command,
            })
            .await
    }

    /// Starts recording a live conference, or one caller of it; returns the
    /// recording's UID. One recording of a room, and one of a caller, at a time.
    pub async fn start_recording(
        &self,
        scope: &Scope,
        conference_uid: &str,
        caller_uid: Option<&str>,
    ) -> OpsResult<String> {
        let conference = self.conference(scope, conference_uid).await?;
        if let Some(caller) = caller_uid {
            let owner = self.caller_owner(scope, caller).await?;
            if owner.conference_uid != conference.uid {
                return Err(OpsError::invalid("caller", "not in this conference"));
            }
        }
        self.live.start_recording(conference.uid, caller_uid.map(str::to_owned)).await
    }

    /// Stops a recording; the file is complete when this returns.
    pub async fn stop_recording(&self, scope: &Scope, recording_uid: &str) -> OpsResult<()> {
        let owner = self.store.owner_of_recording(recording_uid).await?;
        self.visible(scope, owner, Kind::Recording)?;
        self.live.stop_recording(recording_uid.to_owned()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Call, Caller, Direction, Reservation};
    use crate::ops::testing::{FakeLive, ops_with};

    fn dial(conference_uid: &str, number: &str, remote: Option<&str>) -> DialOut {
        DialOut {
            conference_uid: conference_uid.into(),
            number: number.into(),
            name: None,
            role: Role::Participant,
            remote_command: remote.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn dialling_out_keeps_the_admission_rules_and_records_once() {
        let (ops, live, _dir) = ops_with(FakeLive::default()).await;
        let mut conf = ops.new_conference(&Scope::Server, "Board").await.expect("new");
        conf.max_members = Some(1);
        let conf = ops.create_conference(&Scope::Server, conf).await.expect("created");
        let server = Scope::Server;

        ops.dial_out(&server, dial(&conf.uid, "sip:bob@example.com", Some("!LeaveRecording")))
            .await
            .expect("placed");
        assert_eq!(
            live.calls(),
            vec![format!("dial {} sip:bob@example.com record=true", conf.uid)]
        );
        for bad in ["", "  ", "12 34", "a\u{7}b"] {
            assert!(matches!(
                ops.dial_out(&server, dial(&conf.uid, bad, None)).await,
                Err(OpsError::Invalid { field: "number", .. })
            ));
        }

        // One connected caller fills a conference of one.
        let call = Call::new(&conf, Time::now());
        ops.store.start_call(&call).await.expect("call");
        let caller = Caller::new(&call.uid, Direction::Inbound, Role::Participant, Time::now());
        ops.store.insert(&caller).await.expect("caller");
        assert_eq!(ops.dial_out(&server, dial(&conf.uid, "123", None)).await, Err(OpsError::Full));

        let closed = ops
            .modify_conference(&server, &conf.uid, |c| {
                c.place_call = false;
                Ok(())
            })
            .await
            .expect("no outbound calls");
        assert!(matches!(
            ops.dial_out(&server, dial(&closed.uid, "123", None)).await,
            Err(OpsError::NotAllowed(_))
        ));
        assert_eq!(live.calls().iter().filter(|c| c.starts_with("dial")).count(), 1);
    }

    #[tokio::test]
    async fn a_reserved_conference_before_its_start_has_not_started() {
        let (ops, _live, _dir) = ops_with(FakeLive::default()).await;
        let mut conf = ops.new_conference(&Scope::Server, "Later").await.expect("new");
        conf.reserved = true;
        conf.max_members = Some(10);
        let conf = ops.create_conference(&Scope::Server, conf).await.expect("created");
        let later = Reservation::new(&conf.uid, Time::now().plus_minutes(60), 30);
        ops.store.insert(&later).await.expect("reservation");
        assert_eq!(
            ops.dial_out(&Scope::Server, dial(&conf.uid, "123", None)).await,
            Err(OpsError::NotStarted),
            "not started, not full"
        );
    }

    #[tokio::test]
    async fn files_play_by_the_name_the_client_gave() {
        let (ops, live, _dir) = ops_with(FakeLive::default()).await;
        std::fs::write(ops.settings.sounds_dir.join("hello.wav"), b"RIFF").expect("wav");
        let conf = ops.new_conference(&Scope::Server, "x").await.expect("new");
        let conf = ops.create_conference(&Scope::Server, conf).await.expect("created");
        let target = Target::Conference(conf.uid.clone());
        ops.play_file(&Scope::Server, target.clone(), "hello", true).await.expect("play");
        let played = live.calls().pop().expect("played");
        assert!(played.contains("name: \"hello.wav\""), "{played}");
        assert_eq!(
            ops.play_file(&Scope::Server, target.clone(), "missing", false).await,
            Err(OpsError::NotFound(Kind::File))
        );
        assert!(matches!(
            ops.play_speech(&Scope::Server, target, "   ").await,
            Err(OpsError::Invalid { field: "text", .. })
        ));
    }
}
