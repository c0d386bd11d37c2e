//! What a leg learns from the packets it receives, per RFC 3550: sequence
//! validation with probation (A.1), loss counts and the fraction lost since the
//! last report (A.3), and interarrival jitter (A.8). One source at a time: a new
//! SSRC restarts the statistics.

use std::time::Instant;

use rtc_rtcp::reception_report::ReceptionReport;

/// RFC 3550 A.1: a jump larger than this is a restart or garbage, not loss.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: packets this far behind are old duplicates or reordering.
const MAX_MISORDER: u16 = 100;
/// Sequential packets needed before a new source is believed.
const MIN_SEQUENTIAL: u8 = 2;
const SEQ_MOD: u32 = 1 << 16;

/// What one packet meant to the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Counted.
    Accepted,
    /// A new source still on probation; not counted yet.
    Probation,
    /// Out of the valid window (very late, or a jump not yet confirmed).
    Rejected,
}

/// Reported when the sender's SSRC changes, so the leg can reset its jitter
/// buffer and decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceChange {
    pub old: Option<u32>,
    pub new: u32,
}

#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    /// Arrival times are measured from here, in RTP clock units, for jitter.
    epoch: Instant,
    ssrc: Option<u32>,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u8,
    received: u64,
    received_prior: u64,
    expected_prior: u64,
    octets: u64,
    transit: Option<i64>,
    /// Jitter in RTP clock units, times 16 (the integer form of A.8).
    jitter_x16: u64,
    /// Middle 32 bits of the NTP time of the last sender report, and when it came.
    last_sr: Option<(u32, Instant)>,
    pending_change: Option<SourceChange>,
}

impl ReceiveStats {
    pub fn new(clock_rate: u32, now: Instant) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            epoch: now,
            ssrc: None,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            received_prior: 0,
            expected_prior: 0,
            octets: 0,
            transit: None,
            jitter_x16: 0,
            last_sr: None,
            pending_change: None,
        }
    }

    /// The SSRC being received, once one was seen.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// A source change since the last call, if any.
    pub fn take_source_change(&mut self) -> Option<SourceChange> {
        self.pending_change.take()
    }

    /// Counts one packet (its header fields, payload size and arrival time).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        payload_len: usize,
    ) -> Arrival {
        if self.ssrc != Some(ssrc) {
            let old = self.ssrc;
            *self = Self::new(self.clock_rate, self.epoch);
            self.ssrc = Some(ssrc);
            // RFC 3550 A.1: the first packet of a source starts its probation.
            self.max_seq = seq.wrapping_sub(1);
            self.pending_change = Some(SourceChange { old, new: ssrc });
        }
        let verdict = self.update_seq(seq);
        if verdict == Arrival::Accepted {
            self.received += 1;
            self.octets += payload_len as u64;
            self.update_jitter(now, timestamp);
        }
        verdict
    }

    /// RFC 3550 A.1 `update_seq`.
    fn update_seq(&mut self, seq: u16) -> Arrival {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    return Arrival::Accepted;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return Arrival::Probation;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump: believe it only when the next packet follows it.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return Arrival::Rejected;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, no state change.
        Arrival::Accepted
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.transit = None;
        self.jitter_x16 = 0;
    }

    /// RFC 3550 A.8, in integer arithmetic.
    fn update_jitter(&mut self, now: Instant, timestamp: u32) {
        let elapsed = now.saturating_duration_since(self.epoch);
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as i64;
        let transit = arrival.wrapping_sub(i64::from(timestamp));
        if let Some(prev) = self.transit {
            // Transit differences are taken modulo 2^32, like the timestamps.
            let d = i64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            let j = self.jitter_x16 as i64;
            self.jitter_x16 = (j + d - ((j + 8) >> 4)).max(0) as u64;
        }
        self.transit = Some(transit);
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u64 {
        if self.ssrc.is_none() || self.probation > 0 {
            return 0;
        }
        u64::from(self.extended_max()).saturating_sub(u64::from(self.base_seq)) + 1
    }

    /// Packets received and counted.
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// Cumulative packets lost (negative with duplicates, as RFC 3550 allows).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        (self.jitter_x16 as f64 / 16.0) * 1000.0 / f64::from(self.clock_rate)
    }

    /// Notes a sender report from the source (its NTP time's middle 32 bits),
    /// for the LSR/DLSR fields of our next report.
    pub fn handle_sender_report(&mut self, now: Instant, ntp_middle: u32) {
        self.last_sr = Some((ntp_middle, now));
    }

    /// The reception report block for our next RTCP packet, and the interval
    /// counters moved on (RFC 3550 A.3). `None` before any packet was counted.
    pub fn report(&mut self, now: Instant) -> Option<ReceptionReport> {
        let ssrc = self.ssrc?;
        if self.probation > 0 {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        // 24-bit signed cumulative loss, clamped.
        let total_lost = self.lost().clamp(-0x80_0000, 0x7F_FFFF);
        let (last_sender_report, delay) = match self.last_sr {
            Some((lsr, at)) => {
                let since = now.saturating_duration_since(at);
                (lsr, (since.as_secs_f64() * 65_536.0) as u32)
            }
            None => (0, 0),
        };
        Some(ReceptionReport {
            ssrc,
            fraction_lost,
            total_lost: (total_lost as i32 as u32) & 0x00FF_FFFF,
            last_sequence_number: self.extended_max(),
            jitter: (self.jitter_x16 >> 4) as u32,
            last_sender_report,
            delay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Feeds `seqs` as 20 ms G.711 packets arriving on time.
    fn feed(
        stats: &mut ReceiveStats,
        t0: Instant,
        seqs: impl IntoIterator<Item = u16>,
    ) -> Vec<Arrival> {
        seqs.into_iter()
            .enumerate()
            .map(|(i, s)| {
                let now = t0 + Duration::from_millis(20 * i as u64);
                stats.handle_packet(now, 42, s, u32::from(s).wrapping_mul(160), 160)
            })
            .collect()
    }

    #[test]
    fn a_new_source_is_on_probation_for_one_packet() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000, t0);
        let verdicts = feed(&mut s, t0, [100, 101, 102]);
        assert_eq!(verdicts, [Arrival::Probation, Arrival::Accepted, Arrival::Accepted]);
        assert_eq!(s.take_source_change(), Some(SourceChange { old: None, new: 42 }));
        assert_eq!(s.received(), 2);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn loss_and_fraction_lost_per_interval() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000, t0);
        // 100 sent, every 10th lost.
        let _ = feed(&mut s, t0, (0..100).filter(|n| n % 10 != 5));
        let r = s.report(t0).expect("report");
        assert_eq!(r.total_lost, 10);
        assert_eq!(r.fraction_lost, (10 * 256 / 100) as u8);
        assert_eq!(r.last_sequence_number, 99);
        // The next interval has no loss: fraction 0, total unchanged.
        let _ = feed(&mut s, t0 + Duration::from_secs(2), 100..150);
        let r = s.report(t0).expect("report");
        assert_eq!((r.fraction_lost, r.total_lost), (0, 10));
    }

    #[test]
    fn sequence_wrap_extends_the_sequence_number() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000, t0);
        let _ = feed(&mut s, t0, (65_530..=65_535).chain(0..10));
        assert_eq!(s.extended_max(), 65_536 + 9);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn a_big_jump_needs_confirmation() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000, t0);
        let _ = feed(&mut s, t0, 0..10);
        assert_eq!(s.handle_packet(t0, 42, 30_000, 0, 160), Arrival::Rejected);
        assert_eq!(s.handle_packet(t0, 42, 10, 0, 160), Arrival::Accepted, "stray packet ignored");
        assert_eq!(s.handle_packet(t0, 42, 40_000, 0, 160), Arrival::Rejected);
        assert_eq!(s.handle_packet(t0, 42, 40_001, 0, 160), Arrival::Accepted, "confirmed restart");
        assert_eq!(s.extended_max(), 40_001);
    }

    #[test]
    fn jitter_is_zero_on_a_steady_stream_and_grows_with_variance() {
        let t0 = Instant::now();
        let mut steady = ReceiveStats::new(8000, t0);
        let _ = feed(&mut steady, t0, 0..200);
        assert!(steady.jitter_ms() < 0.01, "{}", steady.jitter_ms());

        let mut jumpy = ReceiveStats::new(8000, t0);
        for i in 0..400u32 {
            // Arrivals alternate 0 and 10 ms late.
            let late = if i % 2 == 0 { 0 } else { 10 };
            let now = t0 + Duration::from_millis(u64::from(20 * i + late));
            let _ = jumpy.handle_packet(now, 1, i as u16, i * 160, 160);
        }
        // |D| is 10 ms each packet, so J converges on 10 ms.
        assert!((jumpy.jitter_ms() - 10.0).abs() < 0.5, "{}", jumpy.jitter_ms());
    }

    #[test]
    fn lsr_and_dlsr_come_from_the_last_sender_report() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000, t0);
        let _ = feed(&mut s, t0, 0..5);
        s.handle_sender_report(t0, 0xABCD_1234);
        let r = s.report(t0 + Duration::from_millis(500)).expect("report");
        assert_eq!(r.last_sender_report, 0xABCD_1234);
        assert_eq!(r.delay, 32_768, "0.5 s in 1/65536 s");
    }

    #[test]
    fn a_new_ssrc_restarts_the_statistics() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000, t0);
        let _ = feed(&mut s, t0, 0..10);
        let _ = s.take_source_change();
        let _ = s.handle_packet(t0, 99, 5000, 0, 160);
        assert_eq!(s.take_source_change(), Some(SourceChange { old: Some(42), new: 99 }));
        assert_eq!(s.ssrc(), Some(99));
        assert_eq!(s.received(), 0, "on probation again");
    }
}
