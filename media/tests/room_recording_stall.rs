//! A room recording onto a stalled disk: the recording's writer blocks on its
//! first frame, and the room must go on mixing on time regardless. Two phones
//! over real loopback sockets keep hearing each other, every 20 ms, while the
//! recording falls behind and drops frames.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tutti_media::codec::{Codec, CodecKind};
use tutti_media::io::LegIo;
use tutti_media::leg::Leg;
use tutti_media::mixer::MixerConfig;
use tutti_media::record::{FrameSink, RecordError, Recording};
use tutti_media::room::RoomHandle;
use tutti_media::tone::goertzel_amplitude;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A sink whose writes wait until the test opens the gate (drops its end): a
/// disk that stalls.
struct StalledDisk {
    gate: std_mpsc::Receiver<()>,
    written: u64,
}

impl FrameSink for StalledDisk {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), RecordError> {
        let _ = self.gate.recv();
        self.written += frame.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Recording, RecordError> {
        let samples = self.written;
        Ok(Recording { path: Default::default(), samples, duration_ms: samples / 16 })
    }
}

fn sine(freq: f64, start: usize, len: usize) -> Vec<i16> {
    (start..start + len)
        .map(|n| (6000.0 * (2.0 * std::f64::consts::PI * freq * n as f64 / 8000.0).sin()) as i16)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_recording_does_not_delay_the_mix() {
    let pool = common::free_pool(8);
    let (events_tx, _events) = mpsc::channel(4096);
    let room = RoomHandle::spawn(MixerConfig::default(), events_tx).expect("room");
    let (notices, _notices_rx) = mpsc::channel(64);
    let mut phones = Vec::new();
    for key in 1..=2u64 {
        let phone_sockets = pool.bind(LOOPBACK, true).await.expect("phone ports");
        let server_sockets = pool.bind(LOOPBACK, true).await.expect("server ports");
        let phone_addr = SocketAddr::new(LOOPBACK, phone_sockets.rtp_port());
        let server_addr = SocketAddr::new(LOOPBACK, server_sockets.rtp_port());
        let now = Instant::now();
        let server = Leg::new(common::pcmu_leg(phone_addr), now).expect("server leg");
        room.join(LegIo::spawn(key, server, server_sockets, notices.clone())).await.expect("join");
        let phone = Leg::new(common::pcmu_leg(server_addr), now).expect("phone leg");
        phones.push(LegIo::spawn(100 + key, phone, phone_sockets, notices.clone()));
    }

    // The disk stalls from the first frame on.
    let (stall, gate) = std_mpsc::channel::<()>();
    let disk = StalledDisk { gate, written: 0 };
    room.record_into(Box::new(move || Ok(Box::new(disk) as Box<dyn FrameSink>)))
        .await
        .expect("recording started");

    // Three seconds of talk: more than the writer's backlog of two.
    let tones = [440.0, 1000.0];
    let mut codecs: Vec<Box<dyn Codec>> = (0..2).map(|_| CodecKind::Pcmu.new_codec()).collect();
    let mut heard: Vec<Vec<i16>> = vec![Vec::new(), Vec::new()];
    let (mut payload, mut packet, mut pcm) = ([0u8; 160], [0u8; 1500], [0i16; 960]);
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let frames = 150;
    for i in 0..frames {
        ticks.tick().await;
        for (p, phone) in phones.iter_mut().enumerate() {
            let n = codecs[p].encode(&sine(tones[p], i * 160, 160), &mut payload).expect("encode");
            phone.send_audio(&payload[..n], true, &mut packet).expect("send");
            if let Some(n) = phone.pull_frame(Instant::now(), &mut pcm).expect("pull") {
                heard[p].extend_from_slice(&pcm[..n]);
            }
        }
    }

    for (p, other) in [(0, 1), (1, 0)] {
        // Packets arrived for nearly every tick (the first few fill the jitter
        // buffer): a room stuck behind its disk would send nothing at all.
        let got = heard[p].len() / 160;
        assert!(got >= frames - 15, "phone {p} got {got} of {frames} frames");
        let tail = &heard[p][heard[p].len() / 2..];
        let level = goertzel_amplitude(tail, 8000, tones[other]);
        assert!(level > 600.0, "phone {p} stopped hearing {} Hz ({level:.0})", tones[other]);
    }

    // The disk recovers: the recording ends with what it could keep.
    drop(stall);
    let recording = tokio::time::timeout(Duration::from_secs(5), room.stop_recording())
        .await
        .expect("stopped in time")
        .expect("stopped");
    let kept = recording.samples / 160;
    assert!(kept > 0 && kept < frames as u64, "kept {kept} of {frames} frames");
}
