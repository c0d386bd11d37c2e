//! Process-wide media counters for `/metrics`: RTP and RTCP datagrams and
//! bytes in and out, datagrams dropped by reason, and legs alive per codec.
//! Each is a relaxed atomic addition on the packet path (a few nanoseconds),
//! kept beside the per-leg statistics the APIs show, so that what a leg saw
//! still counts after it has ended.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::codec::CodecKind;

/// Why a datagram (or a frame) was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// RTP from an address other than the one the leg latched to.
    ForeignSource,
    /// SRTP or SRTCP that failed authentication or replay checks.
    Srtp,
    /// Not parseable as RTP or RTCP.
    Malformed,
    /// A payload type the SDP did not negotiate.
    UnknownPayloadType,
    /// A payload larger than the jitter buffer holds.
    Oversized,
    /// Arrived after its turn to be played.
    Late,
    /// A packet seen before.
    Duplicate,
    /// Beyond the jitter buffer's capacity.
    JitterOverflow,
    /// The codec could not decode the payload.
    DecodeError,
}

impl DropReason {
    const ALL: [DropReason; 9] = [
        DropReason::ForeignSource,
        DropReason::Srtp,
        DropReason::Malformed,
        DropReason::UnknownPayloadType,
        DropReason::Oversized,
        DropReason::Late,
        DropReason::Duplicate,
        DropReason::JitterOverflow,
        DropReason::DecodeError,
    ];

    fn label(self) -> &'static str {
        match self {
            DropReason::ForeignSource => "foreign_source",
            DropReason::Srtp => "srtp",
            DropReason::Malformed => "malformed",
            DropReason::UnknownPayloadType => "unknown_payload_type",
            DropReason::Oversized => "oversized",
            DropReason::Late => "late",
            DropReason::Duplicate => "duplicate",
            DropReason::JitterOverflow => "jitter_overflow",
            DropReason::DecodeError => "decode_error",
        }
    }
}

const CODECS: [CodecKind; 4] = [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722, CodecKind::Opus];

fn codec_index(codec: CodecKind) -> usize {
    match codec {
        CodecKind::Pcmu => 0,
        CodecKind::Pcma => 1,
        CodecKind::G722 => 2,
        CodecKind::Opus => 3,
    }
}

fn codec_label(codec: CodecKind) -> &'static str {
    match codec {
        CodecKind::Pcmu => "PCMU",
        CodecKind::Pcma => "PCMA",
        CodecKind::G722 => "G722",
        CodecKind::Opus => "opus",
    }
}

/// The counters; see [`MEDIA`].
#[derive(Debug)]
pub struct MediaCounters {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    legs: [AtomicI64; CODECS.len()],
    comfort_noise_in: AtomicU64,
    comfort_noise_out: AtomicU64,
}

/// The process's media counters, fed by every leg.
pub static MEDIA: MediaCounters = MediaCounters::new();

impl MediaCounters {
    #[must_use]
    pub const fn new() -> Self {
        Self {
            packets_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            dropped: [const { AtomicU64::new(0) }; DropReason::ALL.len()],
            legs: [const { AtomicI64::new(0) }; CODECS.len()],
            comfort_noise_in: AtomicU64::new(0),
            comfort_noise_out: AtomicU64::new(0),
        }
    }

    /// A comfort-noise packet (RFC 3389) came from a caller's phone.
    pub fn comfort_noise_received(&self) {
        self.comfort_noise_in.fetch_add(1, Ordering::Relaxed);
    }

    /// A comfort-noise packet (or an Opus DTX one) was written for a caller in
    /// place of silence.
    pub fn comfort_noise_sent(&self) {
        self.comfort_noise_out.fetch_add(1, Ordering::Relaxed);
    }

    /// A datagram of `bytes` arrived on a leg's socket.
    pub fn received(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A datagram of `bytes` left through a leg's socket.
    pub fn sent(&self, bytes: usize) {
        self.packets_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn dropped(&self, why: DropReason) {
        self.dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many were dropped for `why` so far.
    pub fn dropped_count(&self, why: DropReason) -> u64 {
        self.dropped[why as usize].load(Ordering::Relaxed)
    }

    /// A leg of `codec` was made (`+1`) or ended (`-1`).
    pub fn leg(&self, codec: CodecKind, delta: i64) {
        self.legs[codec_index(codec)].fetch_add(delta, Ordering::Relaxed);
    }

    /// Appends the counters in Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter(
            "tutti_rtp_received_packets_total",
            "RTP and RTCP datagrams that reached a caller's media socket.",
            load(&self.packets_in),
        );
        counter(
            "tutti_rtp_received_bytes_total",
            "Bytes of those datagrams.",
            load(&self.bytes_in),
        );
        counter(
            "tutti_rtp_sent_packets_total",
            "RTP and RTCP datagrams sent to callers.",
            load(&self.packets_out),
        );
        counter("tutti_rtp_sent_bytes_total", "Bytes of those datagrams.", load(&self.bytes_out));
        counter(
            "tutti_rtp_comfort_noise_received_total",
            "Comfort-noise packets (RFC 3389) from callers' phones, among the datagrams received.",
            load(&self.comfort_noise_in),
        );
        counter(
            "tutti_rtp_comfort_noise_sent_total",
            "Comfort-noise packets (RFC 3389, or Opus DTX) sent to callers hearing silence, each \
             in place of up to 25 (20 with Opus) packets of silence.",
            load(&self.comfort_noise_out),
        );
        let name = "tutti_rtp_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Datagrams (or frames) dropped, by reason.\n# TYPE {name} counter"
        );
        for why in DropReason::ALL {
            let _ =
                writeln!(out, "{name}{{reason=\"{}\"}} {}", why.label(), self.dropped_count(why));
        }
        let name = "tutti_media_legs";
        let _ = writeln!(
            out,
            "# HELP {name} Callers' media legs alive, by codec.\n# TYPE {name} gauge"
        );
        for codec in CODECS {
            let value = self.legs[codec_index(codec)].load(Ordering::Relaxed).max(0);
            let _ = writeln!(out, "{name}{{codec=\"{}\"}} {value}", codec_label(codec));
        }
    }
}

impl Default for MediaCounters {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_every_reason_and_codec() {
        let counters = MediaCounters::new();
        counters.received(172);
        counters.received(172);
        counters.sent(60);
        counters.dropped(DropReason::ForeignSource);
        counters.leg(CodecKind::Opus, 1);
        counters.leg(CodecKind::Pcmu, 1);
        counters.leg(CodecKind::Pcmu, -1);
        counters.comfort_noise_sent();
        let mut text = String::new();
        counters.render_prometheus(&mut text);
        for line in [
            "tutti_rtp_received_packets_total 2",
            "tutti_rtp_received_bytes_total 344",
            "tutti_rtp_sent_packets_total 1",
            "tutti_rtp_sent_bytes_total 60",
            "tutti_rtp_comfort_noise_received_total 0",
            "tutti_rtp_comfort_noise_sent_total 1",
            "tutti_rtp_dropped_total{reason=\"foreign_source\"} 1",
            "tutti_rtp_dropped_total{reason=\"srtp\"} 0",
            "tutti_media_legs{codec=\"opus\"} 1",
            "tutti_media_legs{codec=\"PCMU\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
