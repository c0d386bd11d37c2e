//! The tokio shell around a [`Leg`]. The room's tick reads each member's RTP
//! socket itself, right before it takes the leg's frame ([`LegIo::pull_frame`],
//! batched, with kernel arrival times: [`crate::recv`]), and sends through the
//! same leg: no task wakes for an RTP packet. Each leg still has a task, for
//! what is rare: the RTCP socket without rtcp-mux, RTCP reports, silence
//! limits and digit timeouts, and, while no room reads the leg (between rooms,
//! or a leg driven by hand as the test phones are), reading its RTP socket
//! every 20 ms. The leg sits behind a mutex held only for synchronous steps,
//! never across an await, so the two sides never wait on each other for long.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::counters::MEDIA;
use crate::dtmf::Digit;
use crate::jitter::JitterStats;
use crate::leg::{Leg, LegError, Output, RejectCounts, SilenceLimits};
use crate::ports::RtpSockets;
use crate::recv;
use crate::rtp::LegStats;

/// How often a leg's task reads its RTP socket while no room does.
const PARKED_POLL: Duration = Duration::from_millis(20);

/// The engine's name for a leg, carried in notices.
pub type LegKey = u64;

/// What a leg's task tells the engine. Sent without waiting: when the engine
/// falls behind by [`NOTICE_BACKLOG`] notices, the newest are dropped and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegNotice {
    Digit {
        leg: LegKey,
        digit: char,
    },
    /// The peer sent RTCP BYE.
    RemoteBye {
        leg: LegKey,
    },
    /// The peer sent nothing for the leg's silence limit.
    Silent {
        leg: LegKey,
        held: bool,
        for_ms: u64,
    },
}

/// How many notices may wait for the engine.
pub const NOTICE_BACKLOG: usize = 1024;

/// A running leg: its state machine, its sockets and its receive task. Dropping
/// it stops the task and releases the ports.
#[derive(Debug)]
pub struct LegIo {
    key: LegKey,
    leg: Arc<Mutex<Leg>>,
    rtp: Arc<StdUdpSocket>,
    rtcp: Option<Arc<UdpSocket>>,
    reader: Arc<Reader>,
    notices: mpsc::Sender<LegNotice>,
    task: JoinHandle<()>,
}

/// Who reads the leg's RTP socket: a room's tick, or the leg's own task.
#[derive(Debug, Default)]
struct Reader {
    room_reads: AtomicBool,
    changed: Notify,
}

impl Drop for LegIo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(leg: &Mutex<Leg>) -> MutexGuard<'_, Leg> {
    // A poisoned lock means a panic mid-step, which is a bug; the leg's state is
    // still memory-safe to use, and a call should not die with it.
    leg.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A handle on a running leg for whoever does not own it (the engine, while the
/// room owns the [`LegIo`]): re-INVITE changes and outgoing digits.
#[derive(Debug, Clone)]
pub struct LegHandle {
    leg: Arc<Mutex<Leg>>,
}

impl LegHandle {
    /// A re-INVITE or UPDATE: the peer's new address and whether we may send
    /// (not while the peer holds the call with sendonly or inactive).
    pub fn update_remote(
        &self,
        remote_rtp: SocketAddr,
        remote_rtcp: Option<SocketAddr>,
        sending: bool,
    ) {
        let mut leg = lock(&self.leg);
        leg.update_remote(remote_rtp, remote_rtcp);
        leg.set_sending(sending, Instant::now());
    }

    /// Watches for a peer that sends nothing for too long (see
    /// [`LegNotice::Silent`]).
    pub fn set_silence_limits(&self, limits: Option<SilenceLimits>) {
        lock(&self.leg).set_silence_limits(limits, Instant::now());
    }

    /// Sends a key press as RFC 4733 events; false when the peer cannot take them.
    pub fn send_digit(&self, digit: Digit, duration_ms: u32) -> bool {
        lock(&self.leg).send_digit(digit, duration_ms)
    }

    pub fn stats(&self) -> (LegStats, JitterStats, RejectCounts) {
        let leg = lock(&self.leg);
        (leg.stats(), leg.jitter_stats(), leg.rejects())
    }
}

impl LegIo {
    /// A handle that stays usable while the room owns this leg.
    pub fn handle(&self) -> LegHandle {
        LegHandle { leg: self.leg.clone() }
    }

    /// Starts the leg's task for `leg` on `sockets`.
    pub fn spawn(
        key: LegKey,
        leg: Leg,
        sockets: RtpSockets,
        notices: mpsc::Sender<LegNotice>,
    ) -> Self {
        let leg = Arc::new(Mutex::new(leg));
        let rtp = Arc::new(sockets.rtp);
        let rtcp = sockets.rtcp.map(Arc::new);
        let reader = Arc::new(Reader::default());
        let task = tokio::spawn(leg_task(
            key,
            leg.clone(),
            rtp.clone(),
            rtcp.clone(),
            reader.clone(),
            notices.clone(),
        ));
        Self { key, leg, rtp, rtcp, reader, notices, task }
    }

    /// Whether a room's tick reads this leg's RTP socket (through
    /// [`LegIo::pull_frame`]) rather than the leg's task. A room says so when
    /// the leg joins and again when it leaves.
    pub fn set_room_reads(&self, on: bool) {
        if self.reader.room_reads.swap(on, Ordering::AcqRel) != on {
            self.reader.changed.notify_one();
        }
    }

    pub fn key(&self) -> LegKey {
        self.key
    }

    pub fn codec(&self) -> crate::codec::CodecKind {
        lock(&self.leg).codec()
    }

    /// The payload type of the audio this leg sends.
    pub fn payload_type(&self) -> u8 {
        lock(&self.leg).payload_type()
    }

    /// The local RTP address (for the SDP).
    pub fn local_rtp(&self) -> Option<SocketAddr> {
        self.rtp.local_addr().ok()
    }

    /// Reads what arrived on the RTP socket, then gives this tick's decoded
    /// audio at the codec's rate, or `None` when the leg contributes nothing.
    pub fn pull_frame(&self, now: Instant, out: &mut [i16]) -> Result<Option<usize>, LegError> {
        let mut leg = lock(&self.leg);
        let pass_on = receive(&mut leg, &self.rtp, self.rtcp.as_deref());
        pass_on_notices(self.key, pass_on, &self.notices);
        leg.pull_frame(now, out)
    }

    /// Sends one encoded audio frame (or, while a digit is going out, its
    /// events), without waiting: a full socket buffer drops the packet, as the
    /// network would.
    pub fn send_audio(&self, payload: &[u8], speech: bool, buf: &mut [u8]) -> Result<(), LegError> {
        self.send_mix(payload, speech, false, buf)
    }

    /// [`LegIo::send_audio`] for a room's mix, which may be digital silence
    /// (`silent`): see [`Leg::write_mix`] for what goes out then.
    pub fn send_mix(
        &self,
        payload: &[u8],
        speech: bool,
        silent: bool,
        buf: &mut [u8],
    ) -> Result<(), LegError> {
        let mut leg = lock(&self.leg);
        if let Some((to, n)) = leg.write_mix(payload, speech, silent, buf)?
            && self.rtp.send_to(&buf[..n], to).is_ok()
        {
            MEDIA.sent(n);
        }
        flush(&mut leg, &self.rtp, self.rtcp.as_deref());
        Ok(())
    }

    /// Sends a key press as RFC 4733 events; false when the peer cannot take them.
    pub fn send_digit(&self, digit: Digit, duration_ms: u32) -> bool {
        lock(&self.leg).send_digit(digit, duration_ms)
    }

    pub fn update_remote(&self, remote_rtp: SocketAddr, remote_rtcp: Option<SocketAddr>) {
        lock(&self.leg).update_remote(remote_rtp, remote_rtcp);
    }

    pub fn stats(&self) -> (LegStats, JitterStats, RejectCounts) {
        let leg = lock(&self.leg);
        (leg.stats(), leg.jitter_stats(), leg.rejects())
    }
}

/// Sends what the leg queued (RTCP, DTMF packets); returns the digits and
/// notices to pass on.
fn flush(leg: &mut Leg, rtp: &StdUdpSocket, rtcp_socket: Option<&UdpSocket>) -> Vec<Output> {
    let mut pass_on = Vec::new();
    while let Some(output) = leg.poll_output() {
        match output {
            Output::Transmit { to, data, rtcp } => {
                let sent = match rtcp_socket {
                    Some(socket) if rtcp => socket.try_send_to(&data, to).is_ok(),
                    _ => rtp.send_to(&data, to).is_ok(),
                };
                if sent {
                    MEDIA.sent(data.len());
                }
            }
            other => pass_on.push(other),
        }
    }
    pass_on
}

/// Hands the leg what waits on its RTP socket (see [`crate::recv`]) and sends
/// what that made it queue; returns the digits and notices to pass on.
fn receive(leg: &mut Leg, rtp: &StdUdpSocket, rtcp: Option<&UdpSocket>) -> Vec<Output> {
    match recv::drain(rtp, |at, from, data| leg.handle_datagram(at, from, data, false)) {
        Ok(0) => return Vec::new(),
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "RTP socket not read"),
    }
    flush(leg, rtp, rtcp)
}

fn pass_on_notices(key: LegKey, outputs: Vec<Output>, notices: &mpsc::Sender<LegNotice>) {
    for output in outputs {
        let notice = match output {
            Output::Digit(digit) => LegNotice::Digit { leg: key, digit },
            Output::RemoteBye => LegNotice::RemoteBye { leg: key },
            Output::Silent { held, for_ms } => LegNotice::Silent { leg: key, held, for_ms },
            Output::Transmit { .. } => continue,
        };
        if notices.try_send(notice).is_err() {
            tracing::warn!(leg = key, ?notice, "engine behind: leg notice dropped");
        }
    }
}

async fn recv_optional(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// The leg's task: its RTCP socket (without rtcp-mux), its timers, and its
/// RTP socket while no room reads it.
async fn leg_task(
    key: LegKey,
    leg: Arc<Mutex<Leg>>,
    rtp: Arc<StdUdpSocket>,
    rtcp: Option<Arc<UdpSocket>>,
    reader: Arc<Reader>,
    notices: mpsc::Sender<LegNotice>,
) {
    let mut rtcp_buf = vec![0u8; recv::MAX_DATAGRAM];
    let mut next_read = Instant::now();
    loop {
        let deadline = lock(&leg).poll_timeout();
        let task_reads = !reader.room_reads.load(Ordering::Acquire);
        let wake = if task_reads { deadline.min(next_read) } else { deadline };
        let pass_on = tokio::select! {
            () = reader.changed.notified() => {
                next_read = Instant::now();
                continue;
            }
            received = recv_optional(rtcp.as_deref(), &mut rtcp_buf) => {
                let Ok((n, from)) = received else { continue };
                let mut leg = lock(&leg);
                leg.handle_datagram(Instant::now(), from, &rtcp_buf[..n], true);
                flush(&mut leg, &rtp, rtcp.as_deref())
            }
            () = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let mut leg = lock(&leg);
                let mut pass_on = Vec::new();
                if task_reads && now >= next_read {
                    pass_on = receive(&mut leg, &rtp, rtcp.as_deref());
                    next_read = now + PARKED_POLL;
                }
                if now >= deadline {
                    leg.handle_timeout(now);
                    pass_on.extend(flush(&mut leg, &rtp, rtcp.as_deref()));
                }
                pass_on
            }
        };
        pass_on_notices(key, pass_on, &notices);
    }
}
