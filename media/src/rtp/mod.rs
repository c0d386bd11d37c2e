//! RTP sessions for one leg, sans-IO: what a leg sends (one SSRC whose sequence
//! and timestamp run on across prompts, mix and silence), what it learns from
//! what it receives (RFC 3550 statistics, RTCP reports, round-trip time, an
//! estimated MOS), where it sends (symmetric RTP with latching), and SRTP. The
//! tokio shell that owns the sockets feeds packets and the time in.

mod latch;
mod receive;
mod rtcp;
mod send;
mod srtp;

pub use latch::Latch;
pub use receive::{Arrival, ReceiveStats, SourceChange};
pub use rtcp::{CodecImpairment, LegStats, RtcpSession, estimate_mos, ntp_from_unix, ntp_middle};
pub use send::RtpSender;
pub use srtp::{SrtpError, SrtpSession, SrtpSuite};

/// Why an RTP or RTCP packet could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("not an RTP packet: {0}")]
    Malformed(String),
    #[error("buffer of {have} bytes cannot hold a {need}-byte packet")]
    BufferTooSmall { need: usize, have: usize },
    #[error("not an RTCP packet: {0}")]
    MalformedRtcp(String),
}

/// One received RTP packet, parsed without allocating: header fields and where
/// the payload lies in the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Byte range of the payload (padding removed) in the datagram.
    pub payload_start: usize,
    pub payload_end: usize,
}

impl RtpView {
    /// Parses an RTP datagram with rtc-rtp's header parser (which allocates
    /// nothing for headers without CSRCs or extensions).
    pub fn parse(datagram: &[u8]) -> Result<Self, RtpError> {
        use rtc_shared::marshal::Unmarshal;
        let mut buf = datagram;
        let header = rtc_rtp::header::Header::unmarshal(&mut buf)
            .map_err(|e| RtpError::Malformed(e.to_string()))?;
        if header.version != 2 {
            return Err(RtpError::Malformed(format!("version {}", header.version)));
        }
        let payload_start = datagram.len() - buf.len();
        let mut payload_end = datagram.len();
        if header.padding {
            let pad = usize::from(*datagram.last().unwrap_or(&0));
            if pad == 0 || pad > payload_end - payload_start {
                return Err(RtpError::Malformed("bad padding".into()));
            }
            payload_end -= pad;
        }
        Ok(Self {
            payload_type: header.payload_type,
            marker: header.marker,
            sequence: header.sequence_number,
            timestamp: header.timestamp,
            ssrc: header.ssrc,
            payload_start,
            payload_end,
        })
    }

    pub fn payload<'a>(&self, datagram: &'a [u8]) -> &'a [u8] {
        datagram.get(self.payload_start..self.payload_end).unwrap_or(&[])
    }
}

/// Whether a datagram on a shared (rtcp-mux) port is RTCP rather than RTP:
/// RTCP packet types 200..=206 fall where RTP would carry marker + PT 72..=78,
/// which RFC 5761 reserves for exactly this reason.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && (200..=206).contains(&datagram[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_sender_writes() {
        let mut tx = RtpSender::new(0x1234_5678, 65_535, 1000, 0, 160);
        let mut buf = [0u8; 200];
        let n = tx.write_frame(&mut buf, &[0xAA; 160], true).expect("fits");
        let view = RtpView::parse(&buf[..n]).expect("parses");
        assert_eq!(
            (view.payload_type, view.marker, view.sequence, view.timestamp, view.ssrc),
            (0, true, 65_535, 1000, 0x1234_5678)
        );
        assert_eq!(view.payload(&buf[..n]), &[0xAA; 160][..]);
        assert!(!is_rtcp(&buf[..n]));
    }

    #[test]
    fn padding_is_removed_and_bad_padding_refused() {
        let mut p = vec![0xA0, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[7, 7, 0, 0, 3]);
        let view = RtpView::parse(&p).expect("padded packet");
        assert_eq!(view.payload(&p), &[7, 7]);
        let last = p.len() - 1;
        p[last] = 9;
        assert!(RtpView::parse(&p).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in
            [&[][..], &[0x80][..], &[0x00; 12][..], &[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]]
        {
            assert!(RtpView::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rtcp_is_told_apart_on_a_muxed_port() {
        assert!(is_rtcp(&[0x80, 200, 0, 6, 0, 0, 0, 1]));
        assert!(is_rtcp(&[0x81, 201, 0, 7, 0, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0, 0, 6, 0, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8, 0, 6, 0, 0, 0, 1]), "marker + PCMA is RTP");
    }
}
