//! The files customers keep on the server: uploaded sounds (the PBX's
//! `enter_sound` and `music_on_hold_sound` ids) and recordings. Names are
//! labels, never paths: sound files are stored under a random name in
//! `<sounds-dir>/uploads/`, recordings under the engine's own names.

use std::path::{Path, PathBuf};

use super::{Conflict, Kind, Ops, OpsError, OpsResult, Scope};
use crate::model::{Conference, Recording, Sound};
use crate::store::StoreError;
use crate::time::Time;

/// The directory under the sounds directory that uploads go to.
const UPLOADS: &str = "uploads";
/// The longest sound name.
pub const MAX_SOUND_NAME: usize = 100;

/// A sound with what its file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundInfo {
    pub sound: Sound,
    /// Bytes of the file; 0 when it is missing.
    pub size: u64,
    pub sample_rate: u32,
    pub duration_ms: u64,
}

/// A recording with what its file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingInfo {
    pub recording: Recording,
    /// The conference's dial-in number (or name).
    pub room: String,
    pub size: u64,
    pub duration_ms: u64,
}

/// Checks a sound's name: a label of 1 to 100 characters that cannot be
/// mistaken for a path.
pub fn check_sound_name(name: &str) -> OpsResult<()> {
    let refuse = |why: &str| Err(OpsError::invalid("name", why.to_owned()));
    if name.trim().is_empty() {
        return refuse("a name is required");
    }
    if name.chars().count() > MAX_SOUND_NAME {
        return refuse("at most 100 characters");
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return refuse("no '/', '\\' or control characters: a name is a label, not a path");
    }
    if name == "." || name == ".." {
        return refuse("not '.' or '..'");
    }
    Ok(())
}

/// Size, rate and length of a 16-bit PCM WAV file, from its header.
async fn describe_wav(path: &Path) -> (u64, u32, u64) {
    let Ok(size) = tokio::fs::metadata(path).await.map(|m| m.len()) else { return (0, 0, 0) };
    let mut head = vec![0u8; 4096];
    let read = match tokio::fs::File::open(path).await {
        Ok(mut file) => {
            use tokio::io::AsyncReadExt;
            file.read(&mut head).await.unwrap_or(0)
        }
        Err(_) => 0,
    };
    head.truncate(read);
    let (rate, frame_bytes, data) = wav_layout(&head, size);
    let duration_ms = match (rate, frame_bytes) {
        (0, _) | (_, 0) => 0,
        _ => data / u64::from(frame_bytes) * 1000 / u64::from(rate),
    };
    (size, rate, duration_ms)
}

/// Rate, bytes per frame and data bytes of a WAV file whose first bytes are
/// `head` and whose length is `size` (a data chunk still growing, or whose
/// header was never fixed, runs to the end of the file).
fn wav_layout(head: &[u8], size: u64) -> (u32, u16, u64) {
    let le16 = |at: usize| head.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let le32 =
        |at: usize| head.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if head.get(0..4) != Some(b"RIFF") || head.get(8..12) != Some(b"WAVE") {
        return (0, 0, 0);
    }
    let (mut at, mut rate, mut frame) = (12usize, 0u32, 0u16);
    while let (Some(id), Some(len)) = (head.get(at..at + 4), le32(at + 4)) {
        let body = at + 8;
        if id == b"fmt " {
            rate = le32(body + 4).unwrap_or(0);
            frame = le16(body + 12).unwrap_or(0);
        } else if id == b"data" {
            let rest = size.saturating_sub(body as u64);
            let len = u64::from(len);
            return (rate, frame, if len == 0 || len > rest { rest } else { len });
        }
        at = body.saturating_add(len as usize + (len as usize & 1));
    }
    (rate, frame, 0)
}

impl Ops {
    /// Checks an uploaded WAV file, converts it to what the engine plays,
    /// stores it under a random name and records it for the requester's
    /// customer. Nothing is kept when anything fails.
    pub async fn upload_sound(
        &self,
        scope: &Scope,
        name: &str,
        bytes: Vec<u8>,
    ) -> OpsResult<SoundInfo> {
        check_sound_name(name)?;
        let customer = self.creating_customer(scope).await?;
        let converted = self.live.convert_sound(bytes).await?;
        let size = converted.wav.len() as u64;
        let _one_at_a_time = self.uploads.lock().await;
        let used = self.uploaded_bytes(&customer.uid).await?;
        let quota = self.settings.sound_quota_bytes;
        if used.saturating_add(size) > quota {
            tracing::info!(customer = %customer.uid, used, size, quota, "sound upload over quota");
            return Err(OpsError::Conflict(Conflict::SoundQuota { quota, used, size }));
        }
        let dir = self.settings.sounds_dir.join(UPLOADS);
        let file_name = format!("{UPLOADS}/{}.wav", crate::secret::new_uid());
        let path = self.settings.sounds_dir.join(&file_name);
        let partial = path.with_extension("part");
        let written = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(&partial, &converted.wav).await?;
            tokio::fs::rename(&partial, &path).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(OpsError::internal("sound upload not written", e));
        }
        let sound = match self.store.add_sound(Some(&customer.uid), name.trim(), &file_name).await {
            Ok(sound) => sound,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e.into());
            }
        };
        tracing::info!(sound = sound.id, customer = %customer.uid, encoding = converted.encoding, "sound uploaded");
        Ok(SoundInfo {
            sound,
            size: converted.wav.len() as u64,
            sample_rate: converted.sample_rate,
            duration_ms: converted.duration_ms,
        })
    }

    /// Bytes the files of a customer's own uploaded sounds take.
    async fn uploaded_bytes(&self, customer_uid: &str) -> OpsResult<u64> {
        let sounds = self.store.sounds_for(customer_uid).await?;
        let own: Vec<&str> = sounds
            .iter()
            .filter(|s| s.customer_uid.as_deref() == Some(customer_uid))
            .map(|s| s.file_name.as_str())
            .collect();
        Ok(bytes_on_disk(&self.settings.sounds_dir, &own).await)
    }

    /// A sound the requester may use (its own or a shared one).
    pub async fn sound(&self, scope: &Scope, id: i64) -> OpsResult<Sound> {
        let sound = match self.store.sound(id).await {
            Err(StoreError::NotFound(_)) => return Err(OpsError::NotFound(Kind::Sound)),
            other => other?,
        };
        match (&sound.customer_uid, scope) {
            (None, _) | (_, Scope::Server) => Ok(sound),
            (Some(owner), Scope::Customer(uid)) if owner == uid => Ok(sound),
            _ => Err(OpsError::NotFound(Kind::Sound)),
        }
    }

    /// [`Ops::sound`] with what its file holds.
    pub async fn sound_info(&self, scope: &Scope, id: i64) -> OpsResult<SoundInfo> {
        let sound = self.sound(scope, id).await?;
        Ok(self.describe_sound(sound).await)
    }

    async fn describe_sound(&self, sound: Sound) -> SoundInfo {
        let (size, sample_rate, duration_ms) =
            match super::sounds::resolve_wav(&self.settings.sounds_dir, &sound.file_name).await {
                Ok(path) => describe_wav(&path).await,
                Err(_) => (0, 0, 0),
            };
        SoundInfo { sound, size, sample_rate, duration_ms }
    }

    /// The sounds the requester may use, oldest first.
    pub async fn sounds(&self, scope: &Scope) -> OpsResult<Vec<SoundInfo>> {
        let customer = self.creating_customer(scope).await?;
        let mut out = Vec::new();
        for sound in self.store.sounds_for(&customer.uid).await? {
            out.push(self.describe_sound(sound).await);
        }
        Ok(out)
    }

    /// Where a sound's file is, resolved inside the sounds directory.
    pub async fn sound_file(&self, scope: &Scope, id: i64) -> OpsResult<PathBuf> {
        let sound = self.sound(scope, id).await?;
        super::sounds::resolve_wav(&self.settings.sounds_dir, &sound.file_name).await
    }

    /// Deletes one of the requester's sounds and its file; refused while a
    /// conference uses it, and for shared sounds.
    pub async fn delete_sound(&self, scope: &Scope, id: i64) -> OpsResult<()> {
        let sound = self.sound(scope, id).await?;
        if sound.customer_uid.is_none() && !matches!(scope, Scope::Server) {
            return Err(OpsError::NotAllowed("a shared sound cannot be deleted"));
        }
        let rooms = self.store.rooms_using_sound(id).await?;
        if !rooms.is_empty() {
            return Err(OpsError::Conflict(Conflict::SoundInUse(rooms)));
        }
        let path = super::sounds::resolve_wav(&self.settings.sounds_dir, &sound.file_name).await;
        self.store.delete_sound(id).await?;
        if let Ok(path) = path
            && let Err(e) = tokio::fs::remove_file(&path).await
        {
            tracing::warn!(sound = id, error = %e, "sound file not removed");
        }
        tracing::info!(sound = id, "sound deleted");
        Ok(())
    }

    /// Checks that the conference may play the sounds it names: ones its
    /// customer may use. Reports the field as `enter_sound` or
    /// `music_on_hold_sound`.
    pub async fn check_conference_sounds(&self, conference: &Conference) -> OpsResult<()> {
        let scope = Scope::Customer(conference.customer_uid.clone());
        for (field, id) in [
            ("enter_sound", conference.enter_sound),
            ("music_on_hold_sound", conference.music_on_hold_sound),
        ] {
            let Some(id) = id else { continue };
            match self.sound(&scope, id).await {
                Ok(_) => {}
                Err(OpsError::NotFound(_)) => {
                    return Err(OpsError::invalid(field, format!("no sound {id}")));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The recordings of the requester's conferences (of one, if given),
    /// oldest first.
    pub async fn recordings(
        &self,
        scope: &Scope,
        conference_uid: Option<&str>,
    ) -> OpsResult<Vec<RecordingInfo>> {
        if let Some(uid) = conference_uid {
            self.conference(scope, uid).await?;
        }
        let customer = match scope {
            Scope::Server => None,
            Scope::Customer(uid) => Some(uid.as_str()),
        };
        let mut rooms = std::collections::HashMap::new();
        let mut out = Vec::new();
        for recording in self.store.recordings_for(customer, conference_uid).await? {
            if !rooms.contains_key(&recording.conference_uid) {
                let room = self
                    .store
                    .find::<Conference>(&recording.conference_uid)
                    .await?
                    .map(|c| c.dial_in_number.unwrap_or(c.name))
                    .unwrap_or_default();
                rooms.insert(recording.conference_uid.clone(), room);
            }
            let room = rooms.get(&recording.conference_uid).cloned().unwrap_or_default();
            out.push(self.describe_recording(recording, room).await);
        }
        Ok(out)
    }

    async fn describe_recording(&self, recording: Recording, room: String) -> RecordingInfo {
        let path = self.settings.recordings_dir.join(&recording.file_name);
        let (size, _, from_file) = describe_wav(&path).await;
        // A finished recording's length is its stored times; a running one's
        // is what the file holds so far.
        let duration_ms = match recording.ended_at {
            Some(end) => end.millis_since(recording.started_at).max(0).unsigned_abs(),
            None => from_file,
        };
        RecordingInfo { recording, room, size, duration_ms }
    }

    /// One recording of the requester's conferences.
    pub async fn recording(&self, scope: &Scope, uid: &str) -> OpsResult<RecordingInfo> {
        let owner = self.store.owner_of_recording(uid).await?;
        self.visible(scope, owner, Kind::Recording)?;
        let recording: Recording =
            self.store.find(uid).await?.ok_or(OpsError::NotFound(Kind::Recording))?;
        let room = self
            .store
            .find::<Conference>(&recording.conference_uid)
            .await?
            .map(|c| c.dial_in_number.unwrap_or(c.name))
            .unwrap_or_default();
        Ok(self.describe_recording(recording, room).await)
    }

    /// Where a finished recording's file is.
    pub async fn recording_file(&self, scope: &Scope, uid: &str) -> OpsResult<PathBuf> {
        let info = self.recording(scope, uid).await?;
        if info.recording.ended_at.is_none() {
            return Err(OpsError::Conflict(Conflict::StillRecording));
        }
        Ok(self.settings.recordings_dir.join(&info.recording.file_name))
    }

    /// Deletes a finished recording and its file; refused while it runs.
    pub async fn delete_recording(&self, scope: &Scope, uid: &str) -> OpsResult<()> {
        let info = self.recording(scope, uid).await?;
        if info.recording.ended_at.is_none() {
            return Err(OpsError::Conflict(Conflict::StillRecording));
        }
        let owner = self.store.owner_of_recording(uid).await?;
        self.store.delete::<Recording>(uid).await?;
        let freed = remove_recording_file(&self.settings.recordings_dir, &info.recording).await;
        if let Some(owner) = owner {
            self.live.recording_bytes_freed(&owner.customer_uid, freed);
        }
        tracing::info!(recording = uid, "recording deleted");
        Ok(())
    }
}

/// The bytes the files `names` under `dir` take on disk now, as a quota counts
/// them; a missing file takes none.
pub async fn bytes_on_disk(dir: &Path, names: &[&str]) -> u64 {
    let mut used = 0u64;
    for name in names {
        let len = tokio::fs::metadata(dir.join(name)).await.map(|m| m.len()).unwrap_or(0);
        used = used.saturating_add(len);
    }
    used
}

/// Removes a recording's file and returns the bytes that freed; a file
/// already gone is fine (and frees none).
pub(super) async fn remove_recording_file(dir: &Path, recording: &Recording) -> u64 {
    let path = dir.join(&recording.file_name);
    let len = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
    match tokio::fs::remove_file(&path).await {
        Ok(()) => len,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::warn!(recording = %recording.uid, error = %e, "recording file not removed");
            0
        }
    }
}

/// How long ago `earlier` was, for durations.
trait MillisSince {
    fn millis_since(self, earlier: Time) -> i64;
}

impl MillisSince for Time {
    fn millis_since(self, earlier: Time) -> i64 {
        self.timestamp().as_millisecond() - earlier.timestamp().as_millisecond()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_labels() {
        for ok in ["Chime", "hold music (v2).wav", "é"] {
            assert!(check_sound_name(ok).is_ok(), "{ok}");
        }
        for bad in
            ["", "  ", "../../etc/passwd", "a/b", "a\\b", "..", ".", "a\nb", &"x".repeat(101)]
        {
            assert!(
                matches!(check_sound_name(bad), Err(OpsError::Invalid { field: "name", .. })),
                "{bad:?}"
            );
        }
    }

    /// Deleting a recording, or a conference with its recordings, tells the
    /// engine how many bytes of the customer's quota the files gave back.
    #[tokio::test]
    async fn deleted_recordings_give_their_bytes_back_to_the_customer() {
        use crate::ops::testing::{FakeLive, ops_with};
        let (ops, live, dir) = ops_with(FakeLive::default()).await;
        let conference = ops.new_conference(&Scope::Server, "Kept").await.expect("new");
        let conference = ops.create_conference(&Scope::Server, conference).await.expect("create");
        let recordings_dir = dir.path().join("recordings");
        std::fs::create_dir_all(&recordings_dir).expect("recordings dir");
        let now = crate::time::Time::now();
        for (uid, len) in [("rec-a", 1000usize), ("rec-b", 300), ("rec-c", 20)] {
            let recording = Recording {
                uid: uid.into(),
                conference_uid: conference.uid.clone(),
                call_uid: None,
                caller_uid: None,
                file_name: format!("{uid}.wav"),
                started_at: now,
                ended_at: Some(now),
            };
            std::fs::write(recordings_dir.join(&recording.file_name), vec![0u8; len]).expect("w");
            ops.store.insert(&recording).await.expect("recording");
        }
        let customer = &conference.customer_uid;
        ops.delete_recording(&Scope::Server, "rec-a").await.expect("delete");
        assert!(!recordings_dir.join("rec-a.wav").exists());
        // A file already gone frees nothing.
        std::fs::remove_file(recordings_dir.join("rec-c.wav")).expect("remove");
        ops.delete_conference(&Scope::Server, &conference.uid).await.expect("delete");
        let freed: Vec<String> =
            live.calls().into_iter().filter(|c| c.starts_with("recording_bytes_freed")).collect();
        assert_eq!(
            freed,
            [
                format!("recording_bytes_freed {customer} 1000"),
                format!("recording_bytes_freed {customer} 300")
            ]
        );
    }

    #[test]
    fn wav_layout_reads_rate_frame_and_data() {
        let mut head = Vec::new();
        head.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        head.extend_from_slice(&16u32.to_le_bytes());
        head.extend_from_slice(&[1, 0, 1, 0]);
        head.extend_from_slice(&16_000u32.to_le_bytes());
        head.extend_from_slice(&32_000u32.to_le_bytes());
        head.extend_from_slice(&[2, 0, 16, 0]);
        head.extend_from_slice(b"data");
        head.extend_from_slice(&3200u32.to_le_bytes());
        assert_eq!(wav_layout(&head, 44 + 3200), (16_000, 2, 3200));
        // A header never fixed (size 0) runs to the end of the file.
        head[40..44].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(wav_layout(&head, 44 + 6400), (16_000, 2, 6400));
        assert_eq!(wav_layout(b"junk", 100), (0, 0, 0));
        assert_eq!(wav_layout(&head[..20], 100), (0, 0, 0));
    }
}
