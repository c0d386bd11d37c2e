//! Caller name announcements (the PBX's `announce_caller_name`): before
//! entering, the caller is asked to say its name, alone in a room of its own;
//! the few seconds are recorded, trimmed of silence and kept in memory only
//! (the temporary file is removed at once). The room then hears "*name* has
//! joined the conference", and "*name* has left the conference" when it goes,
//! while entry notifications are on (`*94`/`*95`).

use std::time::Duration;

use tokio::sync::mpsc;
use tutti_media::io::LegIo;
use tutti_media::record::RecordLimits;
use tutti_media::room::{PlayTarget, RoomHandle};
use tutti_media::source::FrameSource;
use tutti_media::tone::{Tone, ToneSegment};
use tutti_media::wav::{self, Player, Prompt};

use super::core::{CallInput, Engine};
use super::prompts::PromptName;

/// How long the caller may speak its name.
pub const NAME_MS: u64 = 2500;
/// The cue to start speaking: one short note.
const CUE: ToneSegment = ToneSegment::single(880.0, -13.0, 200);
/// The rate announcements are assembled at (the prompts' rate).
const ANNOUNCE_RATE: u32 = 16_000;
/// Samples quieter than this at the start and end of a name are cut.
const SILENCE: u16 = 400;
/// Kept around the spoken part of a name, so its edges are not clipped.
const MARGIN_MS: usize = 60;
/// Silence between the entry sound and an announcement.
const LEAD_IN_MS: usize = 100;

impl Engine {
    /// Asks for and records the caller's name. Gives the leg back with the name
    /// (`None` when nothing usable was said or recording failed), or `None`
    /// when the caller hung up meanwhile.
    pub(super) async fn record_name(
        &self,
        leg: LegIo,
        inputs: &mut mpsc::Receiver<CallInput>,
    ) -> Option<(LegIo, Option<Prompt>)> {
        let key = leg.key();
        let room = self.new_room().ok()?;
        room.join(leg).await.ok()?;
        let ms = self.play_prompt(&room, key, PromptName::SayName).await;
        let mut present = wait_unless_hangup(inputs, ms + 200).await;
        if present {
            let cue = Tone::new(vec![CUE], ANNOUNCE_RATE)
                .ok()
                .map(|t| Box::new(t) as Box<dyn FrameSource>);
            self.play_internal(&room, PlayTarget::Member(key), cue).await;
            present = wait_unless_hangup(inputs, 250).await;
        }
        let mut name = None;
        if present {
            let dir = self.inner.config.recordings_dir.join("names");
            let file = format!("name-{key}-{}", rand::random::<u32>());
            let started = match std::fs::create_dir_all(&dir) {
                Ok(()) => {
                    let limits = RecordLimits {
                        min_free_bytes: self.inner.config.recording_min_free_bytes,
                        ..RecordLimits::NONE
                    };
                    room.record(dir, file, limits).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match started {
                Ok(path) => {
                    present = wait_unless_hangup(inputs, NAME_MS).await;
                    let _ = room.stop_recording().await;
                    // A short file, but read off the runtime all the same.
                    let read = tokio::task::spawn_blocking(move || {
                        let name = wav::read(&path).ok().and_then(|audio| {
                            let rate = audio.sample_rate;
                            trim_silence(&audio.samples, rate)
                                .and_then(|samples| Prompt::from_samples(samples, rate).ok())
                        });
                        let _ = std::fs::remove_file(&path);
                        name
                    });
                    name = read.await.ok().flatten();
                }
                Err(e) => tracing::warn!(error = %e, "name not recorded"),
            }
        }
        let leg = room.leave(key).await.ok().flatten()?;
        present.then_some((leg, name))
    }

    /// Plays "*name* has joined/left the conference" to a conference's room,
    /// after `after_ms` of something else (the entry sound) has played.
    pub(super) async fn announce(
        &self,
        room: &RoomHandle,
        name: &Prompt,
        joined: bool,
        after_ms: u64,
    ) {
        let what = if joined { PromptName::HasJoined } else { PromptName::HasLeft };
        let sentence = match self.prompt(what).await {
            Ok(sentence) => sentence,
            Err(e) => {
                tracing::error!(error = %e, "announcement prompt unusable");
                return;
            }
        };
        // Capped: a long custom entry sound should not hold the name back long.
        let lead_ms = after_ms.min(10_000) as usize + LEAD_IN_MS;
        let lead_in =
            Prompt::from_samples(vec![0; ANNOUNCE_RATE as usize * lead_ms / 1000], ANNOUNCE_RATE);
        let Ok(lead_in) = lead_in else { return };
        match join_audio(&[&lead_in, name, &sentence]) {
            Some(both) => {
                let player: Box<dyn FrameSource> = Box::new(Player::new(both, false));
                self.play_internal(room, PlayTarget::Room, Some(player)).await;
            }
            None => tracing::warn!("announcement not assembled"),
        }
    }
}

/// Waits `ms`; `false` if the caller hung up first. Digits are ignored.
pub(super) async fn wait_unless_hangup(inputs: &mut mpsc::Receiver<CallInput>, ms: u64) -> bool {
    let sleep = tokio::time::sleep(Duration::from_millis(ms));
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            input = inputs.recv() => match input {
                Some(CallInput::Hangup(_) | CallInput::Silent { .. }) | None => return false,
                Some(_) => {}
            },
        }
    }
}

/// The spoken part of a recording with a short margin, or `None` when it is
/// all silence.
fn trim_silence(samples: &[i16], rate: u32) -> Option<Vec<i16>> {
    let loud = |s: &i16| s.unsigned_abs() >= SILENCE;
    let first = samples.iter().position(loud)?;
    let last = samples.iter().rposition(loud)?;
    let margin = rate as usize * MARGIN_MS / 1000;
    let start = first.saturating_sub(margin);
    let end = (last + margin).min(samples.len() - 1);
    Some(samples[start..=end].to_vec())
}

/// Pieces of audio one after another, at [`ANNOUNCE_RATE`].
fn join_audio(parts: &[&Prompt]) -> Option<Prompt> {
    let mut samples = Vec::new();
    for part in parts {
        let audio = wav::WavAudio {
            sample_rate: part.sample_rate(),
            channels: 1,
            samples: part.samples().to_vec(),
        };
        samples.extend_from_slice(Prompt::from_audio(audio, ANNOUNCE_RATE).ok()?.samples());
    }
    Prompt::from_samples(samples, ANNOUNCE_RATE).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_trimmed_and_a_silent_name_is_none() {
        let mut samples = vec![0i16; 8000];
        samples[3000..4000].fill(5000);
        let trimmed = trim_silence(&samples, 8000).expect("speech");
        // 1000 loud samples and 60 ms (480 samples) each side.
        assert_eq!(trimmed.len(), 1000 + 2 * 480);
        assert_eq!(trim_silence(&[10; 8000], 8000), None);
        assert_eq!(trim_silence(&[], 8000), None);
    }

    #[test]
    fn pieces_are_joined_at_one_rate() {
        let a = Prompt::from_samples(vec![100; 800], 8000).expect("a");
        let b = Prompt::from_samples(vec![200; 1600], 16_000).expect("b");
        let both = join_audio(&[&a, &b]).expect("joined");
        assert_eq!(both.sample_rate(), ANNOUNCE_RATE);
        assert_eq!(both.duration_ms(), 200);
    }
}
