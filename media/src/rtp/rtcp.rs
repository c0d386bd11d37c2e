//! RTCP for one leg: compound reports every ~5 s (a sender report while we send,
//! else a receiver report, always with an SDES CNAME as RFC 3550 requires), the
//! peer's reports read back for round-trip time and how it hears us, and the
//! per-leg statistics with an estimated MOS.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc_rtcp::packet::Packet;
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use rtc_rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use serde::Serialize;

use super::{ReceiveStats, RtpError, RtpSender};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// A round trip longer than this is a stale or bogus report, not a measurement.
const MAX_PLAUSIBLE_RTT: Duration = Duration::from_secs(60);

/// 64-bit NTP time for a wall-clock time given as time since the Unix epoch.
pub fn ntp_from_unix(since_unix: Duration) -> u64 {
    let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP time: the LSR/DLSR clock of RFC 3550.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// How the peer says it hears us, from its last report about our SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RemoteView {
    pub fraction_lost: f64,
    pub total_lost: u32,
    pub jitter_ticks: u32,
}

/// A snapshot of one leg's quality, for logs, `/metrics` and the APIs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LegStats {
    pub packets_sent: u32,
    pub octets_sent: u32,
    pub packets_received: u64,
    pub octets_received: u64,
    pub packets_lost: i64,
    /// Cumulative loss of what we receive, in percent.
    pub loss_percent: f64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    pub remote: Option<RemoteView>,
    /// Estimated listening quality, 1.0 to 4.5 (ITU-T G.107 E-model).
    pub mos: f64,
}

#[derive(Debug, Clone)]
pub struct RtcpSession {
    cname: Bytes,
    interval: Duration,
    next_report: Instant,
    packets_at_last_report: Option<u32>,
    rtt: Option<Duration>,
    remote: Option<RemoteView>,
    remote_bye: bool,
}

impl RtcpSession {
    /// `interval` is the mean report interval (RFC 3550: 5 s for a two-party
    /// session); the first report goes out after half of it.
    pub fn new(cname: &str, now: Instant, interval: Duration) -> Self {
        Self {
            cname: Bytes::copy_from_slice(cname.as_bytes()),
            interval,
            next_report: now + interval / 2,
            packets_at_last_report: None,
            rtt: None,
            remote: None,
            remote_bye: false,
        }
    }

    /// When the next report is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_report
    }

    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Whether the peer said goodbye (RTCP BYE).
    pub fn remote_bye(&self) -> bool {
        self.remote_bye
    }

    /// Builds the compound report due now and schedules the next one at a
    /// randomised 0.5..1.5 times the interval (RFC 3550 6.3.1), so legs started
    /// together do not report in lockstep.
    pub fn build_report(
        &mut self,
        now: Instant,
        ntp_now: u64,
        sender: &RtpSender,
        receiver: &mut ReceiveStats,
    ) -> Result<Vec<u8>, RtpError> {
        use rand::RngExt;
        let factor: f64 = rand::rng().random_range(0.5..1.5);
        self.next_report = now + self.interval.mul_f64(factor);

        let reports: Vec<ReceptionReport> = receiver.report(now).into_iter().collect();
        let (packets, octets) = sender.counts();
        let sent_since_last = self.packets_at_last_report != Some(packets) && packets > 0;
        self.packets_at_last_report = Some(packets);
        let ssrc = sender.ssrc();
        let first: Box<dyn Packet> = if sent_since_last {
            Box::new(SenderReport {
                ssrc,
                ntp_time: ntp_now,
                rtp_time: sender.next_timestamp(),
                packet_count: packets,
                octet_count: octets,
                reports,
                profile_extensions: Bytes::new(),
            })
        } else {
            Box::new(ReceiverReport { ssrc, reports, profile_extensions: Bytes::new() })
        };
        let sdes = SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: self.cname.clone(),
                }],
            }],
        };
        let compound: Vec<Box<dyn Packet>> = vec![first, Box::new(sdes)];
        rtc_rtcp::packet::marshal(&compound)
            .map(|b| b.to_vec())
            .map_err(|e| RtpError::MalformedRtcp(e.to_string()))
    }

    /// Reads an RTCP datagram from the peer: its sender reports (for our LSR/DLSR),
    /// its report blocks about our SSRC (round-trip time, how it hears us), BYE.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        ntp_now: u64,
        datagram: &[u8],
        our_ssrc: u32,
        receiver: &mut ReceiveStats,
    ) -> Result<(), RtpError> {
        let mut buf = datagram;
        let packets = rtc_rtcp::packet::unmarshal(&mut buf)
            .map_err(|e| RtpError::MalformedRtcp(e.to_string()))?;
        for packet in &packets {
            let any = packet.as_any();
            if let Some(sr) = any.downcast_ref::<SenderReport>() {
                receiver.handle_sender_report(now, ntp_middle(sr.ntp_time));
                self.read_blocks(ntp_now, &sr.reports, our_ssrc);
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                self.read_blocks(ntp_now, &rr.reports, our_ssrc);
            } else if any.downcast_ref::<rtc_rtcp::goodbye::Goodbye>().is_some() {
                self.remote_bye = true;
            }
        }
        Ok(())
    }

    fn read_blocks(&mut self, ntp_now: u64, blocks: &[ReceptionReport], our_ssrc: u32) {
        for block in blocks.iter().filter(|b| b.ssrc == our_ssrc) {
            self.remote = Some(RemoteView {
                fraction_lost: f64::from(block.fraction_lost) / 256.0,
                total_lost: block.total_lost,
                jitter_ticks: block.jitter,
            });
            if block.last_sender_report != 0 {
                // RFC 3550 6.4.1: A - LSR - DLSR, in 1/65536 s, modulo 2^32.
                let units = ntp_middle(ntp_now)
                    .wrapping_sub(block.last_sender_report)
                    .wrapping_sub(block.delay);
                let rtt = Duration::from_secs_f64(f64::from(units) / 65_536.0);
                if rtt < MAX_PLAUSIBLE_RTT {
                    self.rtt = Some(rtt);
                }
            }
        }
    }

    /// The leg's statistics now. `impairment` describes the codec for the MOS.
    pub fn stats(
        &self,
        sender: &RtpSender,
        receiver: &ReceiveStats,
        impairment: CodecImpairment,
    ) -> LegStats {
        let (packets_sent, octets_sent) = sender.counts();
        let lost = receiver.lost().max(0);
        let expected = receiver.received() as i64 + lost;
        let loss_percent = if expected > 0 { 100.0 * lost as f64 / expected as f64 } else { 0.0 };
        let jitter_ms = receiver.jitter_ms();
        let rtt_ms = self.rtt.map(|r| r.as_secs_f64() * 1000.0);
        LegStats {
            packets_sent,
            octets_sent,
            packets_received: receiver.received(),
            octets_received: receiver.octets(),
            packets_lost: receiver.lost(),
            loss_percent,
            jitter_ms,
            rtt_ms,
            remote: self.remote,
            mos: estimate_mos(loss_percent, jitter_ms, rtt_ms.unwrap_or(0.0), impairment),
        }
    }
}

/// E-model codec parameters (ITU-T G.113 Appendix I): equipment impairment `ie`
/// and packet-loss robustness `bpl`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    pub ie: f64,
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 with packet-loss concealment (G.113: Ie 0, Bpl 25.1).
    pub const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1 };
}

/// A MOS estimate from the simplified E-model (ITU-T G.107): R = 93.2 - Id -
/// Ie,eff, with the one-way delay taken as half the round trip plus a jitter
/// buffer of twice the jitter plus one 20 ms frame.
pub fn estimate_mos(loss_percent: f64, jitter_ms: f64, rtt_ms: f64, codec: CodecImpairment) -> f64 {
    let delay = rtt_ms / 2.0 + 2.0 * jitter_ms + 20.0;
    let id = 0.024 * delay + if delay > 177.3 { 0.11 * (delay - 177.3) } else { 0.0 };
    let ppl = loss_percent.clamp(0.0, 100.0);
    let ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl);
    let r = (93.2 - id - ie_eff).clamp(0.0, 100.0);
    let mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6;
    mos.clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_conversion() {
        let ntp = ntp_from_unix(Duration::new(1, 500_000_000));
        assert_eq!(ntp >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(ntp & 0xFFFF_FFFF, 1 << 31);
        assert_eq!(ntp_middle(ntp), (((NTP_UNIX_OFFSET + 1) as u32) << 16) | 0x8000);
    }

    fn leg(ssrc: u32, t0: Instant) -> (RtpSender, ReceiveStats, RtcpSession) {
        (
            RtpSender::new(ssrc, 0, 0, 0, 160),
            ReceiveStats::new(8000, t0),
            RtcpSession::new(&format!("leg{ssrc}@tutti"), t0, Duration::from_secs(5)),
        )
    }

    /// Two legs talk to each other; B's report about A, echoing A's sender
    /// report, gives A the round-trip time.
    #[test]
    fn sender_and_receiver_reports_give_the_round_trip_time() {
        let t0 = Instant::now();
        let wall = Duration::from_secs(1_800_000_000);
        let (mut a_tx, mut a_rx, mut a_rtcp) = leg(1, t0);
        let (mut b_tx, mut b_rx, mut b_rtcp) = leg(2, t0);
        let mut buf = [0u8; 200];
        for i in 0..50u16 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            let n = a_tx.write_frame(&mut buf, &[0; 160], i == 0).expect("fits");
            let v = super::super::RtpView::parse(&buf[..n]).expect("rtp");
            let _ = b_rx.handle_packet(now, v.ssrc, v.sequence, v.timestamp, 160);
        }
        assert!(a_rtcp.poll_timeout() <= t0 + Duration::from_millis(2500));

        // A reports at t=1 s wall; it reaches B 40 ms later (one way).
        let a_sr = a_rtcp
            .build_report(t0 + Duration::from_secs(1), ntp_from_unix(wall), &a_tx, &mut a_rx)
            .expect("SR");
        assert_eq!(a_sr[1], 200, "A sent packets, so it sends a sender report");
        let b_now = t0 + Duration::from_millis(1040);
        b_rtcp
            .handle_rtcp(
                b_now,
                ntp_from_unix(wall + Duration::from_millis(40)),
                &a_sr,
                b_tx.ssrc(),
                &mut b_rx,
            )
            .expect("B reads A's SR");
        // B holds it 100 ms, then reports (a receiver report: B sent nothing).
        let b_rr = b_rtcp
            .build_report(
                b_now + Duration::from_millis(100),
                ntp_from_unix(wall + Duration::from_millis(140)),
                &b_tx,
                &mut b_rx,
            )
            .expect("RR");
        assert_eq!(b_rr[1], 201, "B sent nothing, so it sends a receiver report");
        // It reaches A 40 ms later: the round trip is 80 ms.
        a_rtcp
            .handle_rtcp(
                t0,
                ntp_from_unix(wall + Duration::from_millis(180)),
                &b_rr,
                a_tx.ssrc(),
                &mut a_rx,
            )
            .expect("A reads B's RR");
        let rtt = a_rtcp.rtt().expect("RTT measured").as_secs_f64() * 1000.0;
        assert!((rtt - 80.0).abs() < 1.0, "rtt {rtt} ms");
        let stats = a_rtcp.stats(&a_tx, &a_rx, CodecImpairment::G711_PLC);
        assert_eq!(stats.packets_sent, 50);
        assert_eq!(stats.remote.map(|r| r.total_lost), Some(0));
        assert!(stats.mos > 4.3, "a clean call rates well: {}", stats.mos);
        let next = a_rtcp.poll_timeout() - (t0 + Duration::from_secs(1));
        assert!(next >= Duration::from_millis(2500) && next <= Duration::from_millis(7500));
        let _ = b_tx.write_frame(&mut buf, &[0; 160], true);
    }

    #[test]
    fn garbage_rtcp_is_an_error() {
        let t0 = Instant::now();
        let (_, mut rx, mut rtcp) = leg(1, t0);
        for bad in [&[][..], &[0x80, 200, 0, 0][..], &[0xFF; 40][..]] {
            assert!(rtcp.handle_rtcp(t0, 0, bad, 1, &mut rx).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mos_falls_with_loss_delay_and_jitter() {
        let g711 = CodecImpairment::G711_PLC;
        let clean = estimate_mos(0.0, 0.0, 20.0, g711);
        assert!(clean > 4.3 && clean <= 4.5, "{clean}");
        let lossy = estimate_mos(5.0, 0.0, 20.0, g711);
        let far = estimate_mos(0.0, 0.0, 600.0, g711);
        let jittery = estimate_mos(0.0, 60.0, 20.0, g711);
        assert!(lossy < clean - 0.3, "{lossy}");
        assert!(far < clean - 0.3, "{far}");
        assert!(jittery < clean, "{jittery}");
        assert_eq!(estimate_mos(100.0, 500.0, 5000.0, g711), 1.0);
    }
}
