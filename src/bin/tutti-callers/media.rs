//! The callers' media: a few threads, each owning some UDP sockets shared by
//! many calls. Every 20 ms a thread reads what arrived (recvmmsg, with the
//! kernel's arrival time of each datagram, so its own scheduling does not
//! blur what it measures), then sends one G.711 packet per call
//! (sendmmsg). Calls on one socket are told apart by the server's address
//! they come from, which is each call's own media port at the server.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn};
use tutti_media::codec::{CodecKind, g711};

use crate::stats::{self, CLICK_AT, ClickDetector, FRAME, Goertzel, Histogram, Jitter, RATE};

pub const PTIME: Duration = Duration::from_millis(20);
const HEADER: usize = 12;
/// Datagrams per sendmmsg.
const SEND_BATCH: usize = 64;
/// The tones talkers send, by their place in the room: whole hertz, so a
/// one-second Goertzel window tells them apart exactly, and far below the
/// click's 2 kHz.
pub const TONES: [f64; 5] = [350.0, 480.0, 620.0, 770.0, 940.0];
/// How loud a talker's tone is (peak; about -14 dBFS).
pub const TONE_AMPLITUDE: f64 = 6000.0;
/// A listener hears a talker when the talker's tone is at least this loud in
/// a second of what it receives...
pub const HEARD: f64 = 500.0;
/// ...and does not hear itself when its own tone stays below this.
pub const NOT_HEARD: f64 = 100.0;
/// The frame of each second (of 50) that carries the click.
const CLICK_FRAME: usize = 25;

/// The codec every call offers (and nothing else).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Wire {
    /// G.711 mu-law, 8 kHz.
    Pcmu,
    /// Opus, 48 kHz, tutti's default Opus settings.
    Opus,
}

impl Wire {
    pub fn kind(self) -> CodecKind {
        match self {
            Self::Pcmu => CodecKind::Pcmu,
            Self::Opus => CodecKind::Opus,
        }
    }

    /// RTP clock (and sample) rate.
    fn rate(self) -> u32 {
        self.kind().sample_rate()
    }

    /// Samples in one 20 ms frame at the codec's rate.
    fn frame(self) -> usize {
        self.kind().samples_per_frame()
    }

    /// Samples at the codec's rate per sample at the analysis rate (8 kHz).
    fn decimation(self) -> usize {
        (self.rate() / RATE) as usize
    }
}

/// What a call does.
#[derive(Clone, Copy, Debug)]
pub struct Role {
    /// Index into [`TONES`] for a talker; `None` for a silent listener.
    pub tone: Option<usize>,
    /// Adds a click to its tone once a second.
    pub clicker: bool,
}

/// A connected call, handed to the thread that owns its socket.
pub struct CallMedia {
    pub index: usize,
    pub room: usize,
    pub role: Role,
    /// The socket (index in the thread's list) the call's SDP named.
    pub socket: usize,
    /// Where the server wants its RTP.
    pub remote: SocketAddr,
    pub send_pt: u8,
    pub recv_pt: u8,
    /// Comfort noise's payload type towards us, when negotiated.
    pub recv_cn: Option<u8>,
    /// Comfort noise's payload type towards the server, when negotiated.
    pub send_cn: Option<u8>,
}

pub enum Command {
    Add(CallMedia),
    Remove(usize),
}

/// What all threads and the signalling share.
pub struct Shared {
    pub wire: Wire,
    pub epoch: Instant,
    pub measuring: AtomicBool,
    pub stop: AtomicBool,
    /// Per room: when its clicker last sent a click (nanoseconds after
    /// `epoch`, plus one; 0 before the first).
    pub clicks: Vec<AtomicU64>,
    /// Per room: the tones of its connected talkers (bit i: `TONES[i]`).
    pub talkers: Vec<AtomicU64>,
    /// Silent callers send as an Opus sender in DTX does: a TOC-only packet
    /// every [`DTX_EVERY`] frames, nothing between.
    pub dtx: bool,
    /// Silent callers that agreed to comfort noise send as a phone with
    /// voice activity detection does: a comfort-noise packet every
    /// [`VAD_EVERY`] frames, nothing between.
    pub vad: bool,
}

/// How often a silent caller in DTX sends (every 400 ms, as libopus does).
pub const DTX_EVERY: u64 = 20;
/// How often a silent caller with voice activity detection sends comfort
/// noise (every 500 ms, as tutti does).
pub const VAD_EVERY: u64 = 25;
/// An RFC 3389 comfort-noise payload: the noise level alone, -90 dBov.
const COMFORT_NOISE: [u8; 1] = [90];

impl Shared {
    pub fn new(rooms: usize, wire: Wire, dtx: bool, vad: bool) -> Self {
        Self {
            wire,
            dtx,
            vad,
            epoch: Instant::now(),
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            clicks: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
            talkers: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// One thread's findings over the measuring window.
#[derive(Default)]
pub struct Report {
    pub packets: u64,
    /// Comfort-noise packets (not in `packets`).
    pub comfort_noise: u64,
    pub lost: u64,
    pub late_or_duplicate: u64,
    pub foreign: u64,
    pub lateness: Histogram,
    pub jitter_ms: Vec<f64>,
    pub clicks_sent: u64,
    pub click_latency: Histogram,
    pub clicks_found: u64,
    pub own_clicks_heard: u64,
    /// Seconds of listening checked, talker by talker: heard, and not.
    pub pairs_heard: u64,
    pub pairs_missed: u64,
    /// Seconds in which a talker heard its own tone.
    pub self_heard: u64,
    pub self_checked: u64,
    pub weakest_heard: Option<f64>,
    pub loudest_self: f64,
    pub send_lateness: Histogram,
    pub ticks_skipped: u64,
    pub send_errors: u64,
    pub decode_errors: u64,
}

impl Report {
    pub fn merge(&mut self, other: Report) {
        self.packets += other.packets;
        self.comfort_noise += other.comfort_noise;
        self.lost += other.lost;
        self.late_or_duplicate += other.late_or_duplicate;
        self.foreign += other.foreign;
        self.lateness.merge(&other.lateness);
        self.jitter_ms.extend(other.jitter_ms);
        self.clicks_sent += other.clicks_sent;
        self.click_latency.merge(&other.click_latency);
        self.clicks_found += other.clicks_found;
        self.own_clicks_heard += other.own_clicks_heard;
        self.pairs_heard += other.pairs_heard;
        self.pairs_missed += other.pairs_missed;
        self.self_heard += other.self_heard;
        self.self_checked += other.self_checked;
        self.weakest_heard = match (self.weakest_heard, other.weakest_heard) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.loudest_self = self.loudest_self.max(other.loudest_self);
        self.send_lateness.merge(&other.send_lateness);
        self.ticks_skipped += other.ticks_skipped;
        self.send_errors += other.send_errors;
        self.decode_errors += other.decode_errors;
    }
}

/// The sending half of a call.
struct Sender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    pt: u8,
    /// Comfort noise's payload type, when agreed.
    cn: Option<u8>,
    remote: SockaddrIn,
}

/// The receiving half: what the call has heard so far.
struct Receiver {
    recv_pt: u8,
    recv_cn: Option<u8>,
    /// Decodes Opus (G.711 is a table lookup).
    decoder: Option<Box<dyn tutti_media::codec::Codec>>,
    /// Highest extended sequence number and timestamp seen.
    seq: Option<i64>,
    ext_timestamp: i64,
    last_timestamp: u32,
    /// The earliest (arrival - timestamp) offset seen: the ideal grid.
    grid: Option<f64>,
    jitter: Jitter,
    /// One filter per tone, over the current second of received audio.
    bank: [Goertzel; TONES.len()],
    window_samples: usize,
    window_measured: bool,
    clicks: ClickDetector,
}

/// Buffers for decoding, reused for every packet.
struct Scratch {
    /// One frame at 8 kHz.
    pcm: [f64; FRAME],
    /// What a decoder returns, at the codec's rate.
    decoded: Vec<i16>,
}

struct Slot {
    media: CallMedia,
    sender: Sender,
    receiver: Receiver,
    active: bool,
}

/// Pre-encoded payloads: one second (50 frames) of each tone, with and
/// without the click in frame [`CLICK_FRAME`], and of silence, encoded in
/// order by one encoder each so that a loop is a continuous stream.
struct Frames {
    /// `tones[tone][clicked as usize][frame]`.
    tones: Vec<[Vec<Vec<u8>>; 2]>,
    silence: Vec<Vec<u8>>,
}

impl Frames {
    fn new(wire: Wire) -> Self {
        let rate = wire.rate();
        let encode_loop = |tone: Option<f64>, clicked: bool| -> Vec<Vec<u8>> {
            let mut codec = wire.kind().new_codec();
            let mut out = Vec::new();
            // Encoded twice, the second pass kept: the encoder has settled.
            for _pass in 0..2 {
                out.clear();
                for index in 0..50 {
                    let mut frame = match tone {
                        Some(f) => stats::tone(f, TONE_AMPLITUDE, index, rate),
                        None => vec![0.0; wire.frame()],
                    };
                    if clicked && index == CLICK_FRAME {
                        stats::add_click(&mut frame, rate);
                    }
                    let pcm: Vec<i16> =
                        frame.iter().map(|s| s.round().clamp(-32768.0, 32767.0) as i16).collect();
                    let mut payload = vec![0u8; tutti_media::opus::MAX_PAYLOAD_BYTES];
                    let n = codec.encode(&pcm, &mut payload).expect("encode a frame");
                    payload.truncate(n);
                    out.push(payload);
                }
            }
            out
        };
        let tones = TONES
            .iter()
            .map(|&f| [encode_loop(Some(f), false), encode_loop(Some(f), true)])
            .collect();
        Self { tones, silence: encode_loop(None, false) }
    }
}

/// Binds `count` sockets on `address` with room for a burst of packets.
pub fn bind_sockets(address: std::net::IpAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    (0..count)
        .map(|_| {
            let socket = UdpSocket::bind(SocketAddr::new(address, 0))?;
            socket.set_nonblocking(true)?;
            tutti_media::recv::enable_timestamps(&socket)?;
            // Best effort: the kernel caps it at net.core.rmem_max.
            let _ = socket::setsockopt(&socket, socket::sockopt::RcvBuf, &(1 << 20));
            Ok(socket)
        })
        .collect()
}

/// Runs one media thread until `shared.stop`; returns what it measured.
pub fn run(
    shared: Arc<Shared>,
    sockets: Vec<UdpSocket>,
    commands: mpsc::Receiver<Command>,
) -> Report {
    let wire = shared.wire;
    let frames = Frames::new(wire);
    let mut report = Report::default();
    let mut slots: Vec<Slot> = Vec::new();
    let mut by_source: HashMap<SocketAddr, usize> = HashMap::new();
    let mut by_index: HashMap<usize, usize> = HashMap::new();
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(SEND_BATCH, None);
    // Per socket: this tick's packets, back to back, their ends, their targets.
    let mut packets: Vec<(Vec<u8>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); sockets.len()];
    let mut targets: Vec<Vec<Option<SockaddrIn>>> = vec![Vec::new(); sockets.len()];
    let mut scratch =
        Scratch { pcm: [0.0; FRAME], decoded: vec![0; tutti_media::opus::MAX_PACKET_SAMPLES] };
    let mut tick: u64 = 0;
    // From when the frames are ready (encoding them takes a while unoptimised).
    let mut next = Instant::now() + PTIME;
    loop {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let woke = Instant::now();
        if measuring {
            report.send_lateness.record(woke.saturating_duration_since(next));
        }
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Add(media) => {
                    let slot = slots.len();
                    by_source.insert(media.remote, slot);
                    by_index.insert(media.index, slot);
                    slots.push(Slot::new(media, wire));
                }
                Command::Remove(index) => {
                    if let Some(&slot) = by_index.get(&index) {
                        slots[slot].active = false;
                        by_source.remove(&slots[slot].media.remote);
                    }
                }
            }
        }

        // What arrived since the last tick.
        for socket in &sockets {
            loop {
                let read = tutti_media::recv::drain(socket, |at, from, data| {
                    let Some(&slot) = by_source.get(&from) else {
                        if measuring {
                            report.foreign += 1;
                        }
                        return;
                    };
                    let slot = &mut slots[slot];
                    slot.receive(&shared, measuring, at, data, &mut scratch, &mut report);
                });
                match read {
                    Ok(n) if n == tutti_media::recv::MAX_PER_DRAIN => continue,
                    _ => break,
                }
            }
        }

        // One packet per call.
        let phase = (tick % 50) as usize;
        for ((bytes, ends), targets) in packets.iter_mut().zip(targets.iter_mut()) {
            bytes.clear();
            ends.clear();
            targets.clear();
        }
        let mut clicked_rooms = Vec::new();
        for slot in slots.iter_mut().filter(|s| s.active) {
            let role = slot.media.role;
            let mut pt = slot.sender.pt;
            let payload = match role.tone {
                Some(tone) => {
                    if role.clicker && phase == CLICK_FRAME {
                        clicked_rooms.push(slot.media.room);
                    }
                    &frames.tones[tone][usize::from(role.clicker)][phase]
                }
                // In DTX: the frame's table-of-contents byte alone, now and then.
                None if shared.dtx && !tick.is_multiple_of(DTX_EVERY) => {
                    let s = &mut slot.sender;
                    s.timestamp = s.timestamp.wrapping_add(wire.frame() as u32);
                    continue;
                }
                None if shared.dtx => &frames.silence[phase][..1],
                // With voice activity detection: comfort noise, now and then.
                None if shared.vad && slot.sender.cn.is_some() => {
                    let s = &mut slot.sender;
                    if !tick.is_multiple_of(VAD_EVERY) {
                        s.timestamp = s.timestamp.wrapping_add(wire.frame() as u32);
                        continue;
                    }
                    pt = s.cn.unwrap_or(pt);
                    &COMFORT_NOISE
                }
                None => &frames.silence[phase],
            };
            let s = &mut slot.sender;
            let (bytes, ends) = &mut packets[slot.media.socket];
            bytes.extend_from_slice(&[0x80, pt & 0x7f]);
            bytes.extend_from_slice(&s.seq.to_be_bytes());
            bytes.extend_from_slice(&s.timestamp.to_be_bytes());
            bytes.extend_from_slice(&s.ssrc.to_be_bytes());
            bytes.extend_from_slice(payload);
            ends.push(bytes.len());
            s.seq = s.seq.wrapping_add(1);
            s.timestamp = s.timestamp.wrapping_add(wire.frame() as u32);
            targets[slot.media.socket].push(Some(s.remote));
        }
        // The click's time is taken before it leaves.
        let sent_at = Instant::now();
        for room in clicked_rooms {
            let nanos = sent_at.duration_since(shared.epoch).as_nanos() as u64 + 1;
            shared.clicks[room].store(nanos, Ordering::Relaxed);
            if measuring {
                report.clicks_sent += 1;
            }
        }
        for ((socket, (bytes, ends)), targets) in sockets.iter().zip(&packets).zip(&targets) {
            report.send_errors += send_all(socket, &mut headers, bytes, ends, targets);
        }

        tick += 1;
        next += PTIME;
        let behind = Instant::now().saturating_duration_since(next);
        if behind > 5 * PTIME {
            // Fell behind (the machine is overloaded): skip, do not burst.
            let missed = (behind.as_nanos() / PTIME.as_nanos()) as u64;
            report.ticks_skipped += missed;
            tick += missed;
            next += PTIME * missed as u32;
        }
    }
    for slot in slots.iter().filter(|s| s.active) {
        report.jitter_ms.push(slot.receiver.jitter.ms(wire.rate()));
    }
    report
}

/// Sends the packets (`bytes`, each ending at its `ends` entry) to `targets`
/// in batches; returns how many could not be sent.
fn send_all(
    socket: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrIn>,
    bytes: &[u8],
    ends: &[usize],
    targets: &[Option<SockaddrIn>],
) -> u64 {
    let mut errors = 0;
    let mut done = 0;
    let mut retries = 0;
    while done < ends.len() {
        let end = (done + SEND_BATCH).min(ends.len());
        let slices: Vec<[IoSlice<'_>; 1]> = (done..end)
            .map(|i| {
                let start = if i == 0 { 0 } else { ends[i - 1] };
                [IoSlice::new(&bytes[start..ends[i]])]
            })
            .collect();
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let result = socket::sendmmsg(
            socket.as_raw_fd(),
            headers,
            &slices,
            &targets[done..end],
            no_cmsgs,
            MsgFlags::MSG_DONTWAIT,
        );
        match result {
            Ok(results) => done += results.count().max(1),
            // An ICMP error from an earlier datagram is reported once; or a
            // signal: try again, a few times.
            Err(Errno::ECONNREFUSED | Errno::EINTR) if retries < 4 => retries += 1,
            Err(_) => {
                // The socket's buffer is full or the packet is refused: lose one.
                errors += 1;
                done += 1;
            }
        }
    }
    errors
}

impl Slot {
    fn new(media: CallMedia, wire: Wire) -> Self {
        let remote = match media.remote {
            SocketAddr::V4(v4) => v4,
            SocketAddr::V6(_) => SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0),
        };
        let sender = Sender {
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            pt: media.send_pt,
            cn: media.send_cn,
            remote: SockaddrIn::from(remote),
        };
        let receiver = Receiver {
            recv_pt: media.recv_pt,
            recv_cn: media.recv_cn,
            decoder: (wire == Wire::Opus).then(|| wire.kind().new_codec()),
            seq: None,
            ext_timestamp: 0,
            last_timestamp: 0,
            grid: None,
            jitter: Jitter::default(),
            bank: TONES.map(Goertzel::new),
            window_samples: 0,
            window_measured: false,
            clicks: ClickDetector::default(),
        };
        Self { media, sender, receiver, active: true }
    }

    fn receive(
        &mut self,
        shared: &Shared,
        measuring: bool,
        at: Instant,
        data: &[u8],
        scratch: &mut Scratch,
        report: &mut Report,
    ) {
        let wire = shared.wire;
        let Scratch { pcm, decoded } = scratch;
        let Some((pt, seq, timestamp, payload)) = parse_rtp(data) else { return };
        let r = &mut self.receiver;
        let comfort_noise = Some(pt) == r.recv_cn;
        if (pt != r.recv_pt && !comfort_noise) || !self.active {
            // RTCP (multiplexed), telephone events: not audio.
            return;
        }
        // Sequence: gaps are losses, anything not ahead is late or repeated.
        let ext_seq = match r.seq {
            None => i64::from(seq),
            Some(last) => last + i64::from(seq.wrapping_sub(last as u16) as i16),
        };
        let ahead = r.seq.is_none_or(|last| ext_seq > last);
        if let Some(last) = r.seq
            && measuring
        {
            if ext_seq > last + 1 {
                report.lost += (ext_seq - last - 1) as u64;
            } else if ext_seq <= last {
                report.late_or_duplicate += 1;
            }
        }
        if ahead {
            r.seq = Some(ext_seq);
        }
        if comfort_noise {
            // Silence announced: the packets it replaces are not lost, and
            // there is nothing to time or to hear.
            if measuring {
                report.comfort_noise += 1;
            }
            return;
        }
        let since = at.saturating_duration_since(shared.epoch).as_secs_f64();
        let clock = f64::from(wire.rate());
        r.jitter.update(since * clock, timestamp);
        // Lateness against the ideal 20 ms grid: the server's clock is the
        // timestamp, the earliest packet (for its timestamp) is on time.
        if r.grid.is_some() {
            r.ext_timestamp += i64::from(timestamp.wrapping_sub(r.last_timestamp) as i32);
        }
        r.last_timestamp = timestamp;
        let offset = since - r.ext_timestamp as f64 / clock;
        let grid = r.grid.map_or(offset, |g| g.min(offset));
        r.grid = Some(grid);
        if measuring {
            report.packets += 1;
            report.lateness.record(Duration::from_secs_f64(offset - grid));
        }

        // The audio: decode (at 8 kHz), then the tone bank and the click detector.
        let samples = match &mut r.decoder {
            None => {
                for (out, &code) in pcm.iter_mut().zip(payload) {
                    *out = f64::from(g711::ulaw_to_linear(code));
                }
                payload.len().min(FRAME)
            }
            Some(decoder) => {
                let Ok(n) = decoder.decode(payload, decoded) else {
                    report.decode_errors += 1;
                    return;
                };
                // To 8 kHz by averaging: the tones and the click are far
                // below 4 kHz, and nothing above it is sent.
                let step = wire.decimation();
                let n = (n / step).min(FRAME);
                for (out, chunk) in pcm.iter_mut().zip(decoded.chunks(step)).take(n) {
                    *out = chunk.iter().map(|&v| f64::from(v)).sum::<f64>() / step as f64;
                }
                n
            }
        };
        if r.window_samples == 0 {
            r.window_measured = measuring;
        }
        for &sample in &pcm[..samples] {
            for filter in &mut r.bank {
                filter.push(sample);
            }
        }
        r.window_samples += samples;
        if r.window_samples >= RATE as usize {
            let levels = r.bank.each_mut().map(|f| f.take(RATE as usize));
            let counted = r.window_measured && measuring;
            r.window_samples = 0;
            if counted {
                let talkers = shared.talkers[self.media.room].load(Ordering::Relaxed);
                for (tone, level) in levels.iter().enumerate() {
                    if Some(tone) == self.media.role.tone {
                        report.self_checked += 1;
                        report.loudest_self = report.loudest_self.max(*level);
                        if *level >= NOT_HEARD {
                            report.self_heard += 1;
                        }
                    } else if talkers & (1 << tone) != 0 {
                        if *level >= HEARD {
                            report.pairs_heard += 1;
                            report.weakest_heard =
                                Some(report.weakest_heard.map_or(*level, |w: f64| w.min(*level)));
                        } else {
                            report.pairs_missed += 1;
                        }
                    }
                }
            }
        }
        if samples == FRAME
            && let Some(onset) = r.clicks.frame(pcm, at)
            && measuring
        {
            if self.media.role.clicker {
                report.own_clicks_heard += 1;
                return;
            }
            let sent = shared.clicks[self.media.room].load(Ordering::Relaxed);
            if sent == 0 {
                return;
            }
            let sent = shared.epoch
                + Duration::from_nanos(sent - 1)
                + Duration::from_secs_f64(CLICK_AT as f64 / f64::from(RATE));
            if let Some(latency) = onset.checked_duration_since(sent)
                && latency < Duration::from_secs(1)
            {
                report.clicks_found += 1;
                report.click_latency.record(latency);
            }
        }
    }
}

/// Payload type, sequence number, timestamp and payload of an RTP packet.
fn parse_rtp(data: &[u8]) -> Option<(u8, u16, u32, &[u8])> {
    if data.len() < HEADER || data[0] >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(data[0] & 0x0f);
    let mut start = HEADER + 4 * csrc;
    if data[0] & 0x10 != 0 {
        let words = data.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    let mut end = data.len();
    if data[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*data.last()?))?;
    }
    let payload = data.get(start..end)?;
    let pt = data[1] & 0x7f;
    let seq = u16::from_be_bytes([data[2], data[3]]);
    let timestamp = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    Some((pt, seq, timestamp, payload))
}

/// The amplitude of each tone in `samples` (for tests).
#[cfg(test)]
fn levels(samples: &[f64]) -> Vec<f64> {
    TONES.iter().map(|&f| crate::stats::amplitude(samples, f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_headers_with_csrcs_extensions_and_padding_parse() {
        let mut p = vec![0x80, 0, 0x12, 0x34, 0, 0, 1, 0, 1, 2, 3, 4];
        p.extend([7u8; 160]);
        let (pt, seq, ts, payload) = parse_rtp(&p).expect("plain");
        assert_eq!((pt, seq, ts, payload.len()), (0, 0x1234, 256, 160));
        // One CSRC, a one-word extension, two bytes of padding.
        let mut q = vec![0xB1, 0x80, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 5];
        q.extend([0xBE, 0xDE, 0, 1, 1, 2, 3, 4]);
        q.extend([5u8; 10]);
        q.extend([0, 2]);
        let (pt, _, _, payload) = parse_rtp(&q).expect("extended");
        assert_eq!((pt, payload), (0, &[5u8; 10][..]));
        assert!(parse_rtp(&[0x80, 0, 0]).is_none());
        assert!(parse_rtp(&[0x40; 20]).is_none(), "version 1");
        let mut bad_padding = p.clone();
        bad_padding[0] |= 0x20;
        *bad_padding.last_mut().expect("byte") = 255;
        assert!(parse_rtp(&bad_padding).is_none());
    }

    #[test]
    fn the_encoded_tone_tables_keep_their_tones_apart() {
        let frames = Frames::new(Wire::Pcmu);
        let second: Vec<f64> = frames.tones[1][0]
            .iter()
            .flatten()
            .map(|&c| f64::from(g711::ulaw_to_linear(c)))
            .collect();
        let heard = levels(&second);
        assert!((heard[1] - TONE_AMPLITUDE).abs() < 200.0, "{heard:?}");
        for (i, level) in heard.iter().enumerate() {
            if i != 1 {
                assert!(*level < NOT_HEARD, "{heard:?}");
            }
        }
    }
}
