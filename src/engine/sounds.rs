//! What the engine plays by itself: prompts, entry sounds, music on hold, and
//! the stored sounds of a conference. Files are read and converted off the
//! async runtime.

use std::path::PathBuf;

use tutti_api::live::{PlaybackMedia, Target};
use tutti_api::model::Conference;
use tutti_api::ops::sounds::resolve_wav;
use tutti_media::io::LegKey;
use tutti_media::room::{PlayTarget, RoomHandle};
use tutti_media::source::FrameSource;
use tutti_media::tone::Tone;
use tutti_media::wav::{self, Player, Prompt as Audio};

use super::core::{Engine, LivePlayback};
use super::prompts::{self, PromptName};

/// Reads a WAV file and converts it for playing, on a blocking thread: a long
/// file on a slow disk must not hold up the tasks that mix.
pub(super) async fn read_sound(path: PathBuf) -> Result<Audio, String> {
    tokio::task::spawn_blocking(move || {
        let audio = wav::read(&path).map_err(|e| e.to_string())?;
        let rate = audio.sample_rate;
        Audio::from_audio(audio, rate).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

impl Engine {
    /// One of the engine's prompts (a replacement in the sounds directory, or
    /// the bundled one), read and converted on a blocking thread.
    pub(super) async fn prompt(&self, name: PromptName) -> Result<Audio, String> {
        let dir = self.inner.config.sounds_dir.clone();
        tokio::task::spawn_blocking(move || prompts::load(name, &dir).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Plays one of the engine's prompts to one member; returns its length in ms.
    pub(super) async fn play_prompt(
        &self,
        room: &RoomHandle,
        key: LegKey,
        name: PromptName,
    ) -> u64 {
        match self.prompt(name).await {
            Ok(prompt) => {
                let ms = prompt.duration_ms();
                let player: Box<dyn tutti_media::source::FrameSource> =
                    Box::new(Player::new(prompt, false));
                self.play_internal(room, PlayTarget::Member(key), Some(player)).await;
                ms
            }
            Err(e) => {
                tracing::error!(prompt = name.file_name(), error = %e, "prompt unusable");
                0
            }
        }
    }

    /// A stored sound (the PBX's `enter_sound`, `music_on_hold_sound`), read
    /// from `<data-dir>/sounds/`.
    async fn stored_sound(&self, id: i64) -> Result<Audio, String> {
        let sound = self.inner.store.sound(id).await.map_err(|e| e.to_string())?;
        // The same resolution PLAYWAV uses: plain relative names, and the file
        // (after symbolic links) inside the sounds directory.
        let path = resolve_wav(&self.inner.config.sounds_dir, &sound.file_name)
            .await
            .map_err(|e| format!("{:?}: {e}", sound.file_name))?;
        read_sound(path).await
    }

    /// The conference's music on hold: its `music_on_hold_sound` when that is
    /// set and readable, else the bundled one (replaceable in `<data-dir>/sounds/`)
    /// unless `--music-on-hold off` asks for silence.
    pub(super) async fn music_on_hold(&self, conference: &Conference) -> Option<Audio> {
        if let Some(id) = conference.music_on_hold_sound {
            match self.stored_sound(id).await {
                Ok(prompt) => return Some(prompt),
                Err(e) => tracing::warn!(
                    conference = %conference.uid, sound = id, error = %e,
                    "music on hold unusable; falling back to the default"
                ),
            }
        }
        if !self.inner.config.default_music_on_hold {
            return None;
        }
        match self.prompt(PromptName::MusicOnHold).await {
            Ok(prompt) => Some(prompt),
            Err(e) => {
                tracing::error!(error = %e, "default music on hold unusable");
                None
            }
        }
    }

    /// What the room hears when someone enters: the conference's `enter_sound`
    /// when set and readable, else the entry beep.
    /// Also says how long it lasts, in ms.
    pub(super) async fn entry_sound(
        &self,
        conference: &Conference,
    ) -> (Option<Box<dyn FrameSource>>, u64) {
        if let Some(id) = conference.enter_sound {
            match self.stored_sound(id).await {
                Ok(sound) => {
                    let ms = sound.duration_ms();
                    return (Some(Box::new(Player::new(sound, false))), ms);
                }
                Err(e) => tracing::warn!(
                    conference = %conference.uid, sound = id, error = %e,
                    "enter sound unusable; beeping instead"
                ),
            }
        }
        (entry_beep(), u64::from(tutti_media::tone::BEEP_NOTE_MS) * 2)
    }

    /// Plays the music on hold to a caller alone in the conference's main room,
    /// and stops it when someone joins it or the caller leaves. The registry
    /// decides and the room commands are queued while the table is locked, so
    /// two callers joining and leaving at once cannot leave music playing to a
    /// caller who is no longer alone.
    pub(super) fn update_music_on_hold(&self, conference_uid: &str) {
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(change) = state.live.music_change(conference_uid) else { return };
        let Some(conf) = state.live.conferences.get(conference_uid) else { return };
        let (room, music) = (conf.io.room.clone(), conf.io.music_on_hold.clone());
        let call_uid = conf.call_uid.clone();
        if let Some(id) = change.stop {
            let _ = room.try_stop_playback(id);
        }
        let mut playing = None;
        if let (Some(leg), Some(prompt)) = (change.start, music) {
            let id = self.next_id();
            match room.try_play(id, PlayTarget::Member(leg), Box::new(Player::new(prompt, true))) {
                Ok(()) => {
                    playing = Some((leg, id));
                    state.playbacks.insert(
                        id,
                        LivePlayback {
                            conference_uid: conference_uid.to_owned(),
                            call_uid,
                            target: Target::Conference(conference_uid.to_owned()),
                            media: PlaybackMedia::Tts,
                            reported: false,
                        },
                    );
                }
                Err(e) => tracing::warn!(error = %e, "music on hold not started"),
            }
        }
        state.live.music_now(conference_uid, playing);
    }

    /// Plays one of the engine's own sounds (beeps, prompts): not reported.
    pub(super) async fn play_internal(
        &self,
        room: &RoomHandle,
        target: PlayTarget,
        source: Option<Box<dyn tutti_media::source::FrameSource>>,
    ) {
        let Some(source) = source else { return };
        let id = self.next_id();
        self.state().playbacks.insert(
            id,
            LivePlayback {
                conference_uid: String::new(),
                call_uid: String::new(),
                target: Target::Conference(String::new()),
                media: PlaybackMedia::Tts,
                reported: false,
            },
        );
        let _ = room.play(id, target, source).await;
    }
}

fn entry_beep() -> Option<Box<dyn FrameSource>> {
    // The room converts the tone's rate to its own.
    Tone::entry_beep(8000).ok().map(|t| Box::new(t) as Box<dyn FrameSource>)
}
