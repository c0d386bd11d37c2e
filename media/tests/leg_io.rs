//! Two legs over real UDP sockets on loopback: a tone crosses, a digit arrives
//! as a notice, RTCP flows, and a stranger's packets are dropped.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tutti_media::codec::CodecKind;
use tutti_media::dtmf::Digit;
use tutti_media::io::{LegIo, LegNotice};
use tutti_media::leg::Leg;
use tutti_media::ports::RtpSockets;
use tutti_media::tone::goertzel_amplitude;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn pair() -> (LegIo, LegIo, mpsc::Receiver<LegNotice>, mpsc::Receiver<LegNotice>, SocketAddr)
{
    let pool = common::free_pool(8);
    let a_sockets: RtpSockets = pool.bind(LOOPBACK, true).await.expect("a ports");
    let b_sockets: RtpSockets = pool.bind(LOOPBACK, true).await.expect("b ports");
    let a_addr = SocketAddr::new(LOOPBACK, a_sockets.rtp_port());
    let b_addr = SocketAddr::new(LOOPBACK, b_sockets.rtp_port());
    let now = Instant::now();
    let (a_tx, a_rx) = mpsc::channel(16);
    let (b_tx, b_rx) = mpsc::channel(16);
    let a = LegIo::spawn(1, Leg::new(common::pcmu_leg(b_addr), now).expect("a"), a_sockets, a_tx);
    let b = LegIo::spawn(2, Leg::new(common::pcmu_leg(a_addr), now).expect("b"), b_sockets, b_tx);
    (a, b, a_rx, b_rx, b_addr)
}

#[tokio::test]
async fn a_tone_and_a_digit_cross_real_sockets() {
    let (a, b, _a_rx, mut b_rx, _) = pair().await;
    let mut encoder = CodecKind::Pcmu.new_codec();
    let (mut payload, mut buf, mut pcm) = ([0u8; 160], [0u8; 1500], [0i16; 160]);
    let mut heard = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for i in 0..40usize {
        ticks.tick().await;
        let frame: Vec<i16> = (0..160)
            .map(|n| {
                (8000.0
                    * (2.0 * std::f64::consts::PI * 1000.0 * (i * 160 + n) as f64 / 8000.0).sin())
                    as i16
            })
            .collect();
        let len = encoder.encode(&frame, &mut payload).expect("encode");
        a.send_audio(&payload[..len], true, &mut buf).expect("send");
        if let Some(n) = b.pull_frame(Instant::now(), &mut pcm).expect("pull") {
            heard.extend_from_slice(&pcm[..n]);
        }
    }
    assert!(heard.len() >= 20 * 160, "heard {} samples", heard.len());
    let on = goertzel_amplitude(&heard[heard.len() / 2..], 8000, 1000.0);
    let off = goertzel_amplitude(&heard[heard.len() / 2..], 8000, 1700.0);
    assert!(on > 30.0 * off, "1000 Hz {on:.0} vs 1700 Hz {off:.0}");

    assert!(a.send_digit(Digit::from_char('#').expect("digit"), 80));
    for _ in 0..10 {
        ticks.tick().await;
        a.send_audio(&payload, false, &mut buf).expect("send");
    }
    let notice = tokio::time::timeout(Duration::from_secs(2), b_rx.recv())
        .await
        .expect("in time")
        .expect("notice");
    assert_eq!(notice, LegNotice::Digit { leg: 2, digit: '#' });
    let (stats, jitter, rejects) = b.stats();
    assert!(stats.packets_received >= 39, "{stats:?}");
    assert!(jitter.played >= 20, "{jitter:?}");
    assert_eq!(rejects.wrong_source, 0);
}

#[tokio::test]
async fn a_strangers_packets_are_dropped() {
    let (a, b, _a_rx, _b_rx, b_addr) = pair().await;
    let (payload, mut buf) = ([0xFFu8; 160], [0u8; 1500]);
    // A fresh tokio socket may refuse its very first non-blocking send (its
    // write readiness is not known yet), like a lost packet: send a few.
    for _ in 0..3 {
        a.send_audio(&payload, false, &mut buf).expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.stats().1.received >= 2, "A's packets arrive and latch B");
    // The same kind of packet from another socket.
    let stranger = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
    let mut packet = vec![0x80, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5];
    packet.extend_from_slice(&payload);
    stranger.send_to(&packet, b_addr).await.expect("send");
    let deadline = Instant::now() + Duration::from_secs(2);
    while b.stats().2.wrong_source == 0 {
        assert!(
            Instant::now() < deadline,
            "the stranger's packet was not counted: {:?}",
            b.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Key sequences over real sockets, a key every 200 ms while audio flows:
/// every key arrives, promptly, in order.
#[tokio::test]
async fn digit_sequences_arrive_promptly() {
    let (a, _b, _a_rx, mut b_rx, _) = pair().await;
    let (payload, mut buf) = ([0xFFu8; 160], [0u8; 1500]);
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..5 {
        ticks.tick().await;
        a.send_audio(&payload, false, &mut buf).expect("send");
    }
    for round in 0..4 {
        for key in ['*', '9', '0'] {
            let sent = Instant::now();
            assert!(a.send_digit(Digit::from_char(key).expect("digit"), 100));
            let mut got = None;
            for _ in 0..10 {
                ticks.tick().await;
                a.send_audio(&payload, false, &mut buf).expect("send");
                if got.is_none()
                    && let Ok(notice) = b_rx.try_recv()
                {
                    got = Some((notice, sent.elapsed()));
                }
            }
            let (notice, delay) =
                got.unwrap_or_else(|| panic!("round {round}: {key} not reported within 200 ms"));
            assert_eq!(notice, LegNotice::Digit { leg: 2, digit: key }, "round {round}");
            assert!(delay < Duration::from_millis(150), "round {round}: {key} took {delay:?}");
        }
    }
}
