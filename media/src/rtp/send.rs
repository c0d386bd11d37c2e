//! The sending half of a leg: one SSRC for the whole call, whose sequence number
//! and timestamp run on without a gap when the source switches between prompts,
//! the mix and silence, so the far end's jitter buffer never sees a jump.

use rtc_shared::marshal::Marshal;

use super::RtpError;

const HEADER_LEN: usize = 12;

#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    payload_type: u8,
    /// Timestamp units per frame (160 for 20 ms at 8 kHz).
    frame_ticks: u32,
    packets: u32,
    octets: u32,
    /// Timestamp of the last packet sent, for RTCP sender reports.
    last_timestamp: u32,
}

impl RtpSender {
    /// A sender starting at the given (normally random) SSRC, sequence number
    /// and timestamp. `frame_ticks` is the timestamp advance per frame.
    pub fn new(
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        payload_type: u8,
        frame_ticks: u32,
    ) -> Self {
        Self {
            ssrc,
            sequence,
            timestamp,
            payload_type,
            frame_ticks,
            packets: 0,
            octets: 0,
            last_timestamp: timestamp,
        }
    }

    /// A sender with random SSRC, first sequence number and first timestamp, as
    /// RFC 3550 asks (they make known-plaintext attacks on SRTP harder).
    pub fn random(payload_type: u8, frame_ticks: u32) -> Self {
        use rand::RngExt;
        let mut rng = rand::rng();
        Self::new(rng.random(), rng.random(), rng.random(), payload_type, frame_ticks)
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Packets and payload octets sent (wrapping, as RTCP counts them).
    pub fn counts(&self) -> (u32, u32) {
        (self.packets, self.octets)
    }

    pub fn last_timestamp(&self) -> u32 {
        self.last_timestamp
    }

    /// The timestamp the next frame will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// A codec change (re-INVITE): new payload type and frame size; the SSRC,
    /// sequence and timestamp carry on.
    pub fn set_codec(&mut self, payload_type: u8, frame_ticks: u32) {
        self.payload_type = payload_type;
        self.frame_ticks = frame_ticks;
    }

    /// Writes the next audio frame (header and payload) into `buf`; returns the
    /// packet length. `marker` marks the first packet of a talk spurt.
    pub fn write_frame(
        &mut self,
        buf: &mut [u8],
        payload: &[u8],
        marker: bool,
    ) -> Result<usize, RtpError> {
        let (pt, ts) = (self.payload_type, self.timestamp);
        let n = self.write_packet(buf, pt, marker, ts, payload)?;
        self.timestamp = self.timestamp.wrapping_add(self.frame_ticks);
        Ok(n)
    }

    /// A frame interval passes with nothing sent (DTX, hold): the timestamp
    /// advances so the next packet lands at the right time.
    pub fn skip_frame(&mut self) {
        self.timestamp = self.timestamp.wrapping_add(self.frame_ticks);
    }

    /// Writes a packet with an explicit payload type and timestamp (RFC 4733
    /// events keep their start timestamp across updates) and the next sequence
    /// number; the frame clock is not advanced.
    pub fn write_packet(
        &mut self,
        buf: &mut [u8],
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<usize, RtpError> {
        let need = HEADER_LEN + payload.len();
        if buf.len() < need {
            return Err(RtpError::BufferTooSmall { need, have: buf.len() });
        }
        let header = rtc_rtp::header::Header {
            version: 2,
            marker,
            payload_type: payload_type & 0x7F,
            sequence_number: self.sequence,
            timestamp,
            ssrc: self.ssrc,
            ..Default::default()
        };
        let n = header.marshal_to(buf).map_err(|e| RtpError::Malformed(e.to_string()))?;
        buf[n..n + payload.len()].copy_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        self.last_timestamp = timestamp;
        Ok(n + payload.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::RtpView;
    use super::*;

    #[test]
    fn sequence_and_timestamp_run_on_across_sources_and_silence() {
        let mut tx = RtpSender::new(7, 65_534, u32::MAX - 159, 0, 160);
        let mut buf = [0u8; 256];
        let mut seen = Vec::new();
        // A prompt frame, a skipped (silent) interval, then mix frames.
        let n = tx.write_frame(&mut buf, &[1; 160], true).expect("fits");
        seen.push(RtpView::parse(&buf[..n]).expect("rtp"));
        tx.skip_frame();
        for _ in 0..2 {
            let n = tx.write_frame(&mut buf, &[2; 160], false).expect("fits");
            seen.push(RtpView::parse(&buf[..n]).expect("rtp"));
        }
        let seqs: Vec<u16> = seen.iter().map(|v| v.sequence).collect();
        let stamps: Vec<u32> = seen.iter().map(|v| v.timestamp).collect();
        assert_eq!(seqs, [65_534, 65_535, 0], "no gap in sequence numbers");
        assert_eq!(
            stamps,
            [u32::MAX - 159, 160, 320],
            "timestamps wrap and count the silent frame"
        );
        assert!(seen.iter().all(|v| v.ssrc == 7));
        assert_eq!(tx.counts(), (3, 480));
    }

    #[test]
    fn events_keep_their_timestamp_and_codec_changes_keep_the_clock() {
        let mut tx = RtpSender::new(1, 0, 1000, 0, 160);
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let n = tx.write_packet(&mut buf, 101, false, 1000, &[5, 0x0A, 0, 160]).expect("fits");
            assert_eq!(RtpView::parse(&buf[..n]).expect("rtp").timestamp, 1000);
        }
        assert_eq!(tx.next_timestamp(), 1000, "events do not move the frame clock");
        tx.set_codec(9, 160);
        let n = tx.write_frame(&mut buf, &[0; 16], false).expect("fits");
        let v = RtpView::parse(&buf[..n]).expect("rtp");
        assert_eq!((v.payload_type, v.sequence, v.timestamp), (9, 3, 1000));
    }

    #[test]
    fn a_small_buffer_is_an_error() {
        let mut tx = RtpSender::random(0, 160);
        let mut buf = [0u8; 20];
        assert_eq!(
            tx.write_frame(&mut buf, &[0; 160], false),
            Err(RtpError::BufferTooSmall { need: 172, have: 20 })
        );
    }
}
