//! A conference room's media task: the tokio shell around one [`Mixer`]. Every
//! 20 ms on a drift-free clock it pulls each member's frame from its leg, adds
//! what is playing, runs the mixer, sends each distinct mix once per member
//! that shares it, hands the recordings their frames (written on their own
//! threads, never in the tick) and reports talking, energy levels (at most
//! once a second per member) and finished playbacks. The call engine steers it with [`RoomCommand`]s; a room without
//! members and without anything playing sleeps and costs nothing. A room
//! whose tick takes half of its 20 ms on one thread shares its members' reads
//! and sends out over the machine's cores ([`SplitPolicy`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::codec::MAX_FRAME_SAMPLES;
use crate::io::{LegIo, LegKey};
use crate::mixer::{
    BreakoutId, Delivery, InjectTarget, MAX_ROOM_FRAME, MemberId, Mixer, MixerConfig, MixerError,
    MixerEvent, TickClock, VolumeStep,
};
use crate::record::{Finished, FrameSink, RecordError, RecordLimits, Recording, RecordingWriter};
use crate::resample::{FrameResampler, ResampleError, check_rate};
use crate::source::{FrameSource, SourceState};
use crate::timing::{SPLIT_TICKS, TICK_WORK, TICKS};

/// When a room's tick shares out its members' reads and sends over several
/// threads (docs/media.md, "Big rooms").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPolicy {
    /// A tick whose work took longer than this on one thread makes the next
    /// ones split; split ticks that take under a third of it go back to one.
    pub after: Duration,
    /// The fewest members a thread is given.
    pub members: usize,
}

impl SplitPolicy {
    /// Rooms whose tick takes half of its 20 ms on one thread: they would
    /// fall behind soon after, and nothing smaller gains from it (measured in
    /// docs/performance.md: a split room of 1000 that did not need it used a
    /// little more CPU and sent no more punctually).
    pub const DEFAULT: SplitPolicy = SplitPolicy { after: Duration::from_millis(10), members: 32 };
    /// Every tick of two members or more (tests).
    pub const ALWAYS: SplitPolicy = SplitPolicy { after: Duration::ZERO, members: 1 };
}

/// How many commands may wait for a busy room.
const COMMAND_BACKLOG: usize = 256;
/// Largest RTP packet a room writes (SRTP tag included).
const PACKET_BUFFER: usize = 1500;
/// Ticks between energy reports (1 s): what a caller's level is worth to a
/// client is a meter, not a waveform.
const ENERGY_TICKS: u32 = 50;

/// The engine's name for one playback, echoed in [`RoomEvent::PlaybackDone`].
pub type PlaybackId = u64;

/// Who hears a playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlayTarget {
    Room,
    Member(LegKey),
}

/// A change to one member's mixing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Mute(bool),
    Deaf(bool),
    Mike(bool),
    ListenOnly(bool),
    VolumeIn(VolumeStep),
    VolumeOut(VolumeStep),
    Breakout(Option<BreakoutId>),
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("no member {0} in this room")]
    UnknownMember(LegKey),
    #[error("member {0} is already in this room")]
    AlreadyMember(LegKey),
    #[error(transparent)]
    Mixer(#[from] MixerError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("no recording is running")]
    NotRecording,
    #[error("a recording is already running")]
    AlreadyRecording,
    #[error("the room task has ended")]
    Gone,
    #[error("the room's command queue is full")]
    Busy,
}

pub enum RoomCommand {
    /// Adds a leg; its audio is mixed from the next tick on.
    Join {
        leg: LegIo,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    /// Removes a leg and hands it back (to hang up, or to move it to another room).
    Leave {
        key: LegKey,
        reply: oneshot::Sender<Option<LegIo>>,
    },
    Change {
        key: LegKey,
        change: MemberChange,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    BreakoutPrivate {
        breakout: BreakoutId,
        private: bool,
    },
    /// Plays a source (prompt, tone, speech) to the room or one member.
    Play {
        id: PlaybackId,
        target: PlayTarget,
        source: Box<dyn FrameSource>,
    },
    /// Stops what plays to a target; each stopped playback reports done.
    Stop {
        target: PlayTarget,
    },
    /// Stops one playback; it reports done.
    StopPlayback {
        id: PlaybackId,
    },
    /// Starts recording the room mix to `<dir>/<name>.wav`, until `limits`.
    Record {
        dir: PathBuf,
        name: String,
        limits: RecordLimits,
        reply: oneshot::Sender<Result<PathBuf, RoomError>>,
    },
    /// Starts recording the room mix into a sink `open` makes (on the
    /// recording's own thread).
    RecordInto {
        open: SinkOpener,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    StopRecording {
        reply: oneshot::Sender<Result<Recording, RoomError>>,
    },
    /// Starts recording one member's side of the conference (what it says and
    /// what it hears, mixed) to `<dir>/<name>.wav` at its codec's rate.
    RecordMember {
        key: LegKey,
        dir: PathBuf,
        name: String,
        limits: RecordLimits,
        reply: oneshot::Sender<Result<PathBuf, RoomError>>,
    },
    StopRecordingMember {
        key: LegKey,
        reply: oneshot::Sender<Result<Recording, RoomError>>,
    },
}

/// Makes the sink a recording writes into; runs on the recording's thread.
pub type SinkOpener = Box<dyn FnOnce() -> Result<Box<dyn FrameSink>, RecordError> + Send>;

/// What the room tells the engine. Sent without waiting; when the engine falls
/// behind, events are dropped and logged rather than stalling the mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    Talking {
        key: LegKey,
        talking: bool,
    },
    /// A member's loudest frame energy (RMS, 0..32767) over the last second,
    /// when it changed noticeably since the last report.
    Energy {
        key: LegKey,
        level: u16,
    },
    PlaybackDone {
        id: PlaybackId,
        target: PlayTarget,
    },
    /// A recording of the room or of a member ended without being asked to
    /// (its limits, a write error); its file `path` is closed and whole.
    RecordingEnded {
        path: PathBuf,
    },
}

/// The runtime every room task runs on: worker threads of their own (one per
/// core, named `tutti-media`), so that a mixer tick never waits behind control
/// work (an HTTP handler, a SIP transaction, a database reply) holding the
/// process's main workers (docs/media.md, "Where the rooms run", has the
/// before and after). A room reads and sends on its members' sockets with
/// plain system calls and exchanges channel messages, so it needs nothing of
/// a particular runtime. The threads take the nice value of
/// [`start_media_threads`] as they start. `None` (rooms on the caller's
/// runtime) only if the threads cannot be started.
fn media_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            let nice = *MEDIA_NICE.get_or_init(MediaNice::default);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("tutti-media")
                .on_thread_start(move || nice.apply())
                .enable_time()
                .build()
                .inspect_err(|e| {
                    tracing::error!(error = %e, "no media threads; rooms share the main runtime");
                })
                .ok()
        })
        .as_ref()
}

/// The nice value the media threads ask for, fixed when they start.
static MEDIA_NICE: std::sync::OnceLock<MediaNice> = std::sync::OnceLock::new();

/// The scheduling priority of the media threads: a nice value (-20 to 19;
/// lower runs first), and whether an operator asked for it (a refusal is then
/// a warning, not a note).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaNice {
    /// The nice value; 0 leaves the threads as the process is.
    pub nice: i32,
    /// Given explicitly rather than by default.
    pub explicit: bool,
}

impl MediaNice {
    /// Gives the calling thread this nice value (Linux sets it per thread).
    /// A thread that may not (a negative value needs root, `CAP_SYS_NICE` or
    /// an `RLIMIT_NICE` of at least 20 minus it) runs on at its priority; the
    /// first outcome is logged once.
    fn apply(self) {
        static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if self.nice == 0 {
            return;
        }
        let nice = self.nice.clamp(-20, 19);
        let result = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice);
        if REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        match result {
            Ok(()) => tracing::info!(nice, "media threads run at nice {nice}"),
            Err(e) => {
                let note = format!(
                    "media threads keep the process's priority: nice {nice} needs root, \
                     CAP_SYS_NICE or an RLIMIT_NICE of at least {} (ulimit -e; docker \
                     compose: ulimits nice); --media-nice 0 asks for nothing",
                    20 - nice
                );
                if self.explicit {
                    tracing::warn!(nice, error = %e, "{note}");
                } else {
                    tracing::info!(nice, error = %e, "{note}");
                }
            }
        }
    }
}

/// Starts the media threads now (rooms would start them when the first one
/// opens) at `nice`, so the start-up log says whether they got it. Threads
/// already started keep the nice value asked first.
pub fn start_media_threads(nice: MediaNice) {
    let _ = MEDIA_NICE.set(nice);
    media_runtime();
}

/// The engine's end of a room task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    commands: mpsc::Sender<RoomCommand>,
}

impl RoomHandle {
    /// Starts a room task.
    pub fn spawn(config: MixerConfig, events: mpsc::Sender<RoomEvent>) -> Result<Self, RoomError> {
        Self::spawn_splitting(config, events, SplitPolicy::DEFAULT)
    }

    /// [`RoomHandle::spawn`], with its tick shared out over threads as
    /// `split` says instead of [`SplitPolicy::DEFAULT`].
    pub fn spawn_splitting(
        config: MixerConfig,
        events: mpsc::Sender<RoomEvent>,
        split: SplitPolicy,
    ) -> Result<Self, RoomError> {
        let mixer = Mixer::new(config)?;
        let (commands, rx) = mpsc::channel(COMMAND_BACKLOG);
        let room = Room::new(mixer, events, split).run(rx);
        match media_runtime() {
            Some(runtime) => drop(runtime.spawn(room)),
            None => drop(tokio::spawn(room)),
        }
        Ok(Self { commands })
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> RoomCommand,
    ) -> Result<T, RoomError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| RoomError::Gone)?;
        rx.await.map_err(|_| RoomError::Gone)
    }

    pub async fn join(&self, leg: LegIo) -> Result<(), RoomError> {
        self.ask(|reply| RoomCommand::Join { leg, reply }).await?
    }

    pub async fn leave(&self, key: LegKey) -> Result<Option<LegIo>, RoomError> {
        self.ask(|reply| RoomCommand::Leave { key, reply }).await
    }

    pub async fn change(&self, key: LegKey, change: MemberChange) -> Result<(), RoomError> {
        self.ask(|reply| RoomCommand::Change { key, change, reply }).await?
    }

    pub async fn breakout_private(
        &self,
        breakout: BreakoutId,
        private: bool,
    ) -> Result<(), RoomError> {
        self.send(RoomCommand::BreakoutPrivate { breakout, private }).await
    }

    pub async fn play(
        &self,
        id: PlaybackId,
        target: PlayTarget,
        source: Box<dyn FrameSource>,
    ) -> Result<(), RoomError> {
        self.send(RoomCommand::Play { id, target, source }).await
    }

    pub async fn stop(&self, target: PlayTarget) -> Result<(), RoomError> {
        self.send(RoomCommand::Stop { target }).await
    }

    /// Queues a playback without waiting: commands queued this way are carried
    /// out in the order they were queued, so a caller holding a lock can start
    /// and stop playbacks without racing another task. Fails when the room's
    /// queue is full or the room is gone.
    pub fn try_play(
        &self,
        id: PlaybackId,
        target: PlayTarget,
        source: Box<dyn FrameSource>,
    ) -> Result<(), RoomError> {
        self.try_send(RoomCommand::Play { id, target, source })
    }

    /// Queues a member change without waiting for the room's answer (see
    /// [`Self::try_play`]); a change the room cannot apply is logged there.
    pub fn try_change(&self, key: LegKey, change: MemberChange) -> Result<(), RoomError> {
        // Nobody waits for this answer.
        let (reply, _) = oneshot::channel();
        self.try_send(RoomCommand::Change { key, change, reply })
    }

    /// Queues a breakout's privacy without waiting (see [`Self::try_play`]).
    pub fn try_breakout_private(
        &self,
        breakout: BreakoutId,
        private: bool,
    ) -> Result<(), RoomError> {
        self.try_send(RoomCommand::BreakoutPrivate { breakout, private })
    }

    /// Queues the stop of one playback without waiting (see [`Self::try_play`]).
    pub fn try_stop_playback(&self, id: PlaybackId) -> Result<(), RoomError> {
        self.try_send(RoomCommand::StopPlayback { id })
    }

    fn try_send(&self, command: RoomCommand) -> Result<(), RoomError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RoomError::Busy,
            mpsc::error::TrySendError::Closed(_) => RoomError::Gone,
        })
    }

    /// Records the room mix to `<dir>/<name>.wav` until it is stopped, the
    /// room ends, or `limits` stop it ([`RoomEvent::RecordingEnded`]).
    pub async fn record(
        &self,
        dir: PathBuf,
        name: String,
        limits: RecordLimits,
    ) -> Result<PathBuf, RoomError> {
        self.ask(|reply| RoomCommand::Record { dir, name, limits, reply }).await?
    }

    /// Records the room mix into any sink (a file is [`Self::record`]).
    pub async fn record_into(&self, open: SinkOpener) -> Result<(), RoomError> {
        self.ask(|reply| RoomCommand::RecordInto { open, reply }).await?
    }

    pub async fn stop_recording(&self) -> Result<Recording, RoomError> {
        self.ask(|reply| RoomCommand::StopRecording { reply }).await?
    }

    /// Records one member: its voice and what it hears, mixed, at its codec's
    /// rate. A member that leaves ends its recording (the file is finalised).
    pub async fn record_member(
        &self,
        key: LegKey,
        dir: PathBuf,
        name: String,
        limits: RecordLimits,
    ) -> Result<PathBuf, RoomError> {
        self.ask(|reply| RoomCommand::RecordMember { key, dir, name, limits, reply }).await?
    }

    pub async fn stop_recording_member(&self, key: LegKey) -> Result<Recording, RoomError> {
        self.ask(|reply| RoomCommand::StopRecordingMember { key, reply }).await?
    }

    async fn send(&self, command: RoomCommand) -> Result<(), RoomError> {
        self.commands.send(command).await.map_err(|_| RoomError::Gone)
    }
}

struct Member {
    id: MemberId,
    leg: LegIo,
    recording: Option<MemberRecording>,
    /// What decides whether the room hears its voice, and so whether its own
    /// recording keeps it: muted or listen-only silence it; without the mike it
    /// speaks only in a breakout.
    muted: bool,
    listen_only: bool,
    mike: bool,
    in_breakout: bool,
    /// The loudest energy since the last report, and the level last reported.
    energy_peak: u16,
    energy_reported: u16,
    /// This tick's decoded frame (`said` samples of it), read by
    /// [`Member::read`], possibly on another thread than the room's.
    frame: Vec<i16>,
    said: Option<usize>,
}

impl Member {
    fn heard_by_room(&self) -> bool {
        !self.muted && !self.listen_only && (self.mike || self.in_breakout)
    }

    /// Reads the leg's socket and decodes this tick's frame into `frame`.
    fn read(&mut self, now: Instant) {
        self.said = match self.leg.pull_frame(now, &mut self.frame) {
            Ok(said) => said,
            Err(e) => {
                tracing::debug!(leg = self.leg.key(), error = %e, "undecodable frame");
                None
            }
        };
    }
}

/// One packet of a tick's mix for one member's leg.
struct Outgoing<'a> {
    leg: &'a LegIo,
    payload: &'a [u8],
    speech: bool,
    silent: bool,
}

impl Outgoing<'_> {
    fn send(&self, packet: &mut [u8]) {
        if let Err(e) = self.leg.send_mix(self.payload, self.speech, self.silent, packet) {
            tracing::debug!(leg = self.leg.key(), error = %e, "frame not sent");
        }
    }
}

/// What the mixer's deliveries of this tick send, one per listening member.
fn outgoing<'a>(
    mixer: &'a Mixer,
    keys: &'a HashMap<MemberId, LegKey>,
    members: &'a HashMap<LegKey, Member>,
) -> impl Iterator<Item = Outgoing<'a>> + 'a {
    mixer.deliveries().flat_map(move |delivery| {
        let (shared, personal, frame, speech): (&[MemberId], _, _, bool) = match delivery {
            Delivery::Shared { members, frame, .. } => (members, None, frame, false),
            Delivery::Personal { member, frame } => (&[], Some(member), frame, true),
        };
        // Nobody heard and no prompt: legs whose peers agreed to comfort
        // noise send it instead of this frame.
        let silent = frame.pcm.iter().all(|&s| s == 0);
        shared.iter().copied().chain(personal).filter_map(move |id| {
            let member = keys.get(&id).and_then(|key| members.get(key))?;
            Some(Outgoing { leg: &member.leg, payload: frame.payload, speech, silent })
        })
    })
}

/// The machine's threads, the most a room's tick is shared out over.
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `work` on `items` cut into `parts` runs of about equal length, all but
/// the first on threads of their own (which inherit the media thread's nice
/// value), and returns once all are done. False when a thread could not be
/// started: its run was left out.
fn in_parts<T: Send>(items: &mut [T], parts: usize, work: impl Fn(&mut [T]) + Sync) -> bool {
    let size = items.len().div_ceil(parts.max(1)).max(1);
    let mut started = true;
    std::thread::scope(|scope| {
        let mut runs = items.chunks_mut(size);
        let first = runs.next();
        for run in runs {
            let work = &work;
            let spawned = std::thread::Builder::new()
                .name("tutti-media-part".into())
                .spawn_scoped(scope, move || work(run));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no thread for part of a big room's tick");
                started = false;
            }
        }
        if let Some(first) = first {
            work(first);
        }
    });
    started
}

/// One member's recording: the frame it said this tick (silence without one) is
/// added to what it heard.
/// Finalises a leaving member's recording, if it has one.
fn finish_member_recording(member: &mut Member) {
    if let Some(recording) = member.recording.take() {
        recording.recorder.stop(log_failure("member recording not finalised"));
    }
}

/// A [`Finished`] that only logs a failure.
fn log_failure(what: &'static str) -> Finished {
    Box::new(move |result| {
        if let Err(e) = result {
            tracing::error!(error = %e, "{what}");
        }
    })
}

/// A [`Finished`] for a recording the room ended by itself (a write error, a
/// [`RecordLimits`]): once the file is closed, the engine hears which it was.
fn report_end(events: mpsc::Sender<RoomEvent>) -> Finished {
    Box::new(move |result| {
        let path = match result {
            Ok(recording) => recording.path,
            Err(e) => {
                tracing::error!(error = %e, "recording not finalised");
                return;
            }
        };
        if events.try_send(RoomEvent::RecordingEnded { path }).is_err() {
            tracing::warn!("engine behind: the end of a recording not reported");
        }
    })
}

/// A [`Finished`] that answers a stop command.
fn reply_with(reply: oneshot::Sender<Result<Recording, RoomError>>) -> Finished {
    Box::new(move |result| {
        let _ = reply.send(result.map_err(RoomError::from));
    })
}

/// Starts writing `<dir>/<name>.wav` at `rate`; `reply` learns its path once the
/// file is open.
fn start_writer(
    dir: &Path,
    name: &str,
    rate: u32,
    limits: RecordLimits,
    reply: oneshot::Sender<Result<PathBuf, RoomError>>,
) -> RecordingWriter {
    let path = dir.join(format!("{name}.wav"));
    RecordingWriter::start_file(
        dir.to_owned(),
        name.to_owned(),
        rate,
        limits,
        Box::new(move |opened: Result<(), RecordError>| {
            let _ = reply.send(opened.map(|()| path).map_err(RoomError::from));
        }),
    )
}

struct MemberRecording {
    recorder: RecordingWriter,
    said: Vec<i16>,
}

/// Converts 20 ms frames between two rates either of which may change from
/// one frame to the next, since a room's rate follows its members (an 8 kHz
/// room becomes 16 kHz when a G.722 phone joins): the resampler is made again
/// only when the rates change; equal rates pass the frame through.
#[derive(Default)]
struct RateConverter {
    resampler: Option<FrameResampler>,
    out: Vec<i16>,
}

impl RateConverter {
    /// `input`, a frame at `from`, as a frame at `to`.
    fn convert<'a>(
        &'a mut self,
        input: &'a [i16],
        from: u32,
        to: u32,
    ) -> Result<&'a [i16], ResampleError> {
        if from == to {
            return Ok(input);
        }
        let resampler = match &mut self.resampler {
            Some(r) if r.from_rate() == from && r.to_rate() == to => r,
            slot => {
                let made = FrameResampler::new(from, to)?;
                self.out = vec![0; made.output_len()];
                slot.insert(made)
            }
        };
        let n = resampler.process(input, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

/// The room's recording. Its file keeps the rate it started at; the mix is
/// converted to it while the room's rate differs.
struct RoomRecording {
    writer: RecordingWriter,
    rate: u32,
    converter: RateConverter,
}

impl RoomRecording {
    fn new(writer: RecordingWriter, rate: u32) -> Self {
        RoomRecording { writer, rate, converter: RateConverter::default() }
    }

    /// Hands one frame of the mix, at `mix_rate`, to the writer.
    fn write(&mut self, mix: &[i16], mix_rate: u32) {
        match self.converter.convert(mix, mix_rate, self.rate) {
            Ok(frame) => self.writer.write_frame(frame),
            Err(e) => tracing::debug!(error = %e, "recording: frame not resampled"),
        }
    }
}

struct Playback {
    id: PlaybackId,
    target: PlayTarget,
    source: Box<dyn FrameSource>,
    /// From the source's rate to the room's, which may change as it plays.
    converter: RateConverter,
}

struct Room {
    mixer: Mixer,
    members: HashMap<LegKey, Member>,
    keys: HashMap<MemberId, LegKey>,
    playbacks: Vec<Playback>,
    recorder: Option<RoomRecording>,
    events: mpsc::Sender<RoomEvent>,
    /// Ticks since the last energy report.
    energy_ticks: u32,
    clock: TickClock,
    epoch: Instant,
    source_pcm: Vec<i16>,
    packet: Vec<u8>,
    /// When the tick is shared out over threads; `None` once a thread could
    /// not be started (the room then stays on one).
    split: Option<SplitPolicy>,
    /// Whether it is now.
    splitting: bool,
}

impl Room {
    fn new(mixer: Mixer, events: mpsc::Sender<RoomEvent>, split: SplitPolicy) -> Self {
        let now = Instant::now();
        Self {
            mixer,
            members: HashMap::new(),
            keys: HashMap::new(),
            playbacks: Vec::new(),
            recorder: None,
            events,
            energy_ticks: 0,
            clock: TickClock::new(now),
            epoch: now,
            source_pcm: vec![0; MAX_ROOM_FRAME * 4],
            packet: vec![0; PACKET_BUFFER],
            split: Some(split),
            splitting: false,
        }
    }

    /// Something to do every tick: members to mix, or a playback (a room-wide
    /// announcement may run before anyone can hear it, and must still end).
    fn active(&self) -> bool {
        !self.mixer.is_idle() || !self.playbacks.is_empty()
    }

    async fn run(mut self, mut commands: mpsc::Receiver<RoomCommand>) {
        loop {
            let active = self.active();
            let deadline = self.clock.next_deadline();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        let was_active = self.active();
                        self.handle(command);
                        if !was_active && self.active() {
                            // Waking from idle: start the clock now, not in the past.
                            self.clock = TickClock::new(Instant::now());
                        }
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline.into()), if active => {
                    let now = Instant::now();
                    let skipped = self.clock.skipped();
                    let due = self.clock.due(now);
                    if due > 0 {
                        TICKS.record(now.saturating_duration_since(deadline));
                        TICKS.add_skipped(self.clock.skipped() - skipped);
                    }
                    for _ in 0..due {
                        let started = Instant::now();
                        self.tick(now);
                        let work = started.elapsed();
                        TICK_WORK.record(work);
                        self.adapt(work);
                    }
                }
            }
        }
        if let Some(recorder) = self.recorder.take() {
            recorder.writer.stop(log_failure("room ended: recording not finalised"));
        }
        for member in self.members.values_mut() {
            finish_member_recording(member);
        }
        // Whoever started these learns they are over.
        for playback in std::mem::take(&mut self.playbacks) {
            self.emit(RoomEvent::PlaybackDone { id: playback.id, target: playback.target });
        }
    }

    fn handle(&mut self, command: RoomCommand) {
        match command {
            RoomCommand::Join { leg, reply } => {
                let _ = reply.send(self.join(leg));
            }
            RoomCommand::Leave { key, reply } => {
                let _ = reply.send(self.leave(key));
            }
            RoomCommand::Change { key, change, reply } => {
                let result = self.change(key, change);
                if let Err(e) = &result
                    && reply.is_closed()
                {
                    tracing::debug!(leg = key, error = %e, "member change not applied");
                }
                let _ = reply.send(result);
            }
            RoomCommand::BreakoutPrivate { breakout, private } => {
                self.mixer.set_breakout_private(breakout, private);
            }
            RoomCommand::Play { id, target, source } => {
                if let Err(e) = check_rate(source.sample_rate()) {
                    tracing::warn!(error = %e, id, "playback at an unusable rate: reported done");
                    self.emit(RoomEvent::PlaybackDone { id, target });
                    return;
                }
                let converter = RateConverter::default();
                self.playbacks.push(Playback { id, target, source, converter });
            }
            RoomCommand::Stop { target } => {
                for playback in self.playbacks.iter_mut().filter(|p| p.target == target) {
                    playback.source.stop();
                }
            }
            RoomCommand::StopPlayback { id } => {
                for playback in self.playbacks.iter_mut().filter(|p| p.id == id) {
                    playback.source.stop();
                }
            }
            RoomCommand::Record { dir, name, limits, reply } => {
                if self.recorder.as_ref().is_some_and(|r| !r.writer.has_failed()) {
                    let _ = reply.send(Err(RoomError::AlreadyRecording));
                    return;
                }
                let rate = self.mixer.room_rate();
                let writer = start_writer(&dir, &name, rate, limits, reply);
                self.recorder = Some(RoomRecording::new(writer, rate));
            }
            RoomCommand::RecordInto { open, reply } => {
                if self.recorder.as_ref().is_some_and(|r| !r.writer.has_failed()) {
                    let _ = reply.send(Err(RoomError::AlreadyRecording));
                    return;
                }
                let started = Box::new(move |opened: Result<(), RecordError>| {
                    let _ = reply.send(opened.map_err(RoomError::from));
                });
                let writer = RecordingWriter::spawn(open, started);
                self.recorder = Some(RoomRecording::new(writer, self.mixer.room_rate()));
            }
            RoomCommand::StopRecording { reply } => match self.recorder.take() {
                Some(recorder) => recorder.writer.stop(reply_with(reply)),
                None => {
                    let _ = reply.send(Err(RoomError::NotRecording));
                }
            },
            RoomCommand::RecordMember { key, dir, name, limits, reply } => {
                self.record_member(key, &dir, &name, limits, reply);
            }
            RoomCommand::StopRecordingMember { key, reply } => match self.members.get_mut(&key) {
                Some(member) => match member.recording.take() {
                    Some(recording) => recording.recorder.stop(reply_with(reply)),
                    None => {
                        let _ = reply.send(Err(RoomError::NotRecording));
                    }
                },
                None => {
                    let _ = reply.send(Err(RoomError::UnknownMember(key)));
                }
            },
        }
    }

    /// Starts recording one member; one recording per member at a time.
    fn record_member(
        &mut self,
        key: LegKey,
        dir: &Path,
        name: &str,
        limits: RecordLimits,
        reply: oneshot::Sender<Result<PathBuf, RoomError>>,
    ) {
        let Some(member) = self.members.get_mut(&key) else {
            let _ = reply.send(Err(RoomError::UnknownMember(key)));
            return;
        };
        if member.recording.as_ref().is_some_and(|r| !r.recorder.has_failed()) {
            let _ = reply.send(Err(RoomError::AlreadyRecording));
            return;
        }
        let rate = member.leg.codec().sample_rate();
        let recorder = start_writer(dir, name, rate, limits, reply);
        let said = vec![0; crate::resample::frame_len(rate)];
        member.recording = Some(MemberRecording { recorder, said });
    }

    fn join(&mut self, leg: LegIo) -> Result<(), RoomError> {
        let key = leg.key();
        if self.members.contains_key(&key) {
            return Err(RoomError::AlreadyMember(key));
        }
        let id = self.mixer.add_member(leg.codec())?;
        self.keys.insert(id, key);
        leg.set_room_reads(true);
        self.members.insert(
            key,
            Member {
                id,
                leg,
                recording: None,
                muted: false,
                listen_only: false,
                mike: true,
                in_breakout: false,
                energy_peak: 0,
                energy_reported: 0,
                frame: vec![0; MAX_FRAME_SAMPLES],
                said: None,
            },
        );
        Ok(())
    }

    fn leave(&mut self, key: LegKey) -> Option<LegIo> {
        let mut member = self.members.remove(&key)?;
        self.keys.remove(&member.id);
        // The id was valid a moment ago; removal cannot fail for a present member.
        let _ = self.mixer.remove_member(member.id);
        for playback in self.playbacks.iter_mut().filter(|p| p.target == PlayTarget::Member(key)) {
            playback.source.stop();
        }
        finish_member_recording(&mut member);
        member.leg.set_room_reads(false);
        Some(member.leg)
    }

    fn change(&mut self, key: LegKey, change: MemberChange) -> Result<(), RoomError> {
        let member = self.members.get_mut(&key).ok_or(RoomError::UnknownMember(key))?;
        let id = member.id;
        match change {
            MemberChange::Mute(on) => member.muted = on,
            MemberChange::ListenOnly(on) => member.listen_only = on,
            MemberChange::Mike(on) => member.mike = on,
            MemberChange::Breakout(group) => member.in_breakout = group.is_some(),
            _ => {}
        }
        match change {
            MemberChange::Mute(on) => self.mixer.set_muted(id, on),
            MemberChange::Deaf(on) => self.mixer.set_deaf(id, on),
            MemberChange::Mike(on) => self.mixer.set_mike(id, on),
            MemberChange::ListenOnly(on) => self.mixer.set_listen_only(id, on),
            MemberChange::VolumeIn(step) => self.mixer.set_volume_in(id, step),
            MemberChange::VolumeOut(step) => self.mixer.set_volume_out(id, step),
            MemberChange::Breakout(group) => self.mixer.set_breakout(id, group),
        }?;
        Ok(())
    }

    /// Each recorded member's frame: what it said plus what it heard, limited.
    fn write_member_recordings(&mut self) {
        for member in self.members.values_mut() {
            let Some(recording) = &mut member.recording else { continue };
            if let Ok(heard) = self.mixer.output(member.id)
                && heard.pcm.len() == recording.said.len()
            {
                for (said, &heard) in recording.said.iter_mut().zip(heard.pcm) {
                    *said = said.saturating_add(heard);
                }
            }
            if recording.recorder.has_failed() {
                tracing::info!(leg = member.leg.key(), "member recording ended by itself");
                if let Some(failed) = member.recording.take() {
                    failed.recorder.stop(report_end(self.events.clone()));
                }
                continue;
            }
            recording.recorder.write_frame(&recording.said);
        }
    }

    fn emit(&self, event: RoomEvent) {
        if let Err(e) = self.events.try_send(event) {
            let event = e.into_inner();
            tracing::warn!(?event, "engine behind: room event dropped");
        }
    }

    /// How many threads this tick's reads and sends are shared out over.
    fn parts(&self) -> usize {
        match self.split {
            Some(split) if self.splitting => {
                (self.members.len() / split.members.max(1)).clamp(1, threads())
            }
            _ => 1,
        }
    }

    /// Whether the next ticks split, after one whose work took `work`.
    fn adapt(&mut self, work: Duration) {
        if let Some(split) = self.split {
            self.splitting =
                if self.splitting { work >= split.after / 3 } else { work > split.after };
        }
    }

    fn tick(&mut self, now: Instant) {
        let parts = self.parts();
        if parts > 1 {
            SPLIT_TICKS.fetch_add(1, Ordering::Relaxed);
            let mut members: Vec<&mut Member> = self.members.values_mut().collect();
            let read = |run: &mut [&mut Member]| run.iter_mut().for_each(|m| m.read(now));
            if !in_parts(&mut members, parts, read) {
                self.split = None;
            }
        } else {
            self.members.values_mut().for_each(|m| m.read(now));
        }
        for member in self.members.values_mut() {
            // Taken, so that a member a failed split left unread has nothing.
            let said = member.said.take();
            if let Some(n) = said
                && let Err(e) = self.mixer.push_frame(member.id, &member.frame[..n])
            {
                tracing::debug!(leg = member.leg.key(), error = %e, "frame not mixed");
            }
            let heard = member.heard_by_room();
            if let Some(recording) = &mut member.recording {
                match said.filter(|&n| n == recording.said.len() && heard) {
                    Some(n) => recording.said.copy_from_slice(&member.frame[..n]),
                    None => recording.said.fill(0),
                }
            }
        }
        self.play_sources();
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.mixer.tick(now_ms);
        self.send_deliveries(parts);
        if let Some(recorder) = &mut self.recorder {
            if recorder.writer.has_failed() {
                tracing::info!("room recording ended by itself");
                if let Some(failed) = self.recorder.take() {
                    failed.writer.stop(report_end(self.events.clone()));
                }
            } else {
                recorder.write(self.mixer.room_mix(), self.mixer.room_rate());
            }
        }
        self.write_member_recordings();
        self.measure_energy();
        while let Some(event) = self.mixer.poll_event() {
            let (member, talking) = match event {
                MixerEvent::TalkingStarted { member, .. } => (member, true),
                MixerEvent::TalkingStopped { member, .. } => (member, false),
            };
            if let Some(&key) = self.keys.get(&member) {
                self.emit(RoomEvent::Talking { key, talking });
            }
        }
    }

    /// Keeps each member's loudest energy and, once a second, reports the
    /// levels that moved by more than about 1 dB (or from or to silence).
    fn measure_energy(&mut self) {
        for member in self.members.values_mut() {
            let level = self.mixer.energy(member.id).unwrap_or(0);
            member.energy_peak = member.energy_peak.max(level);
        }
        self.energy_ticks += 1;
        if self.energy_ticks < ENERGY_TICKS {
            return;
        }
        self.energy_ticks = 0;
        for (&key, member) in &mut self.members {
            let (level, last) = (member.energy_peak, member.energy_reported);
            member.energy_peak = 0;
            let moved = level.abs_diff(last) > last / 8 || (level == 0) != (last == 0);
            if moved {
                member.energy_reported = level;
                if self.events.try_send(RoomEvent::Energy { key, level }).is_err() {
                    tracing::debug!(leg = key, "engine behind: energy report dropped");
                }
            }
        }
    }

    fn play_sources(&mut self) {
        let room_len = self.mixer.room_frame_len();
        let room_rate = self.mixer.room_rate();
        let mut finished = Vec::new();
        for (index, playback) in self.playbacks.iter_mut().enumerate() {
            let state = match playback.source.next_frame(&mut self.source_pcm) {
                Ok(state) => state,
                Err(_) => SourceState::Done,
            };
            let input = playback.source.samples_per_frame().min(self.source_pcm.len());
            let from = playback.source.sample_rate();
            let frame = playback
                .converter
                .convert(&self.source_pcm[..input], from, room_rate)
                .unwrap_or(&[]);
            let target = match playback.target {
                PlayTarget::Room => Some(InjectTarget::Room),
                PlayTarget::Member(key) => {
                    self.members.get(&key).map(|m| InjectTarget::Member(m.id))
                }
            };
            if state == SourceState::Playing
                && let Some(target) = target
                && frame.len() == room_len
            {
                let _ = self.mixer.inject(target, frame);
            }
            if state == SourceState::Done {
                finished.push(index);
            }
        }
        for index in finished.into_iter().rev() {
            let playback = self.playbacks.swap_remove(index);
            self.emit(RoomEvent::PlaybackDone { id: playback.id, target: playback.target });
        }
    }

    fn send_deliveries(&mut self, parts: usize) {
        let all = outgoing(&self.mixer, &self.keys, &self.members);
        if parts > 1 {
            let mut packets: Vec<Outgoing<'_>> = all.collect();
            let send = |run: &mut [Outgoing<'_>]| {
                let mut packet = [0u8; PACKET_BUFFER];
                run.iter().for_each(|p| p.send(&mut packet));
            };
            if !in_parts(&mut packets, parts, send) {
                self.split = None;
            }
        } else {
            all.for_each(|p| p.send(&mut self.packet));
        }
    }
}
