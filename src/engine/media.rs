//! Translations between what signalling negotiated (tutti-sip) and what the media
//! layer runs (tutti-media). The two crates know nothing of each other; the
//! engine is where their vocabularies meet.

use tutti_media::codec::CodecKind;
use tutti_media::leg::{LegConfig, SrtpKeys};
use tutti_media::rtp::SrtpSuite;
use tutti_sip::sdp::{Codec, Negotiated, SrtpProfile};

pub fn codec_kind(codec: Codec) -> CodecKind {
    match codec {
        Codec::Opus => CodecKind::Opus,
        Codec::G722 => CodecKind::G722,
        Codec::Pcmu => CodecKind::Pcmu,
        Codec::Pcma => CodecKind::Pcma,
    }
}

fn suite(profile: SrtpProfile) -> SrtpSuite {
    match profile {
        SrtpProfile::AesCm128HmacSha1_80 => SrtpSuite::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32 => SrtpSuite::AesCm128HmacSha1_32,
    }
}

/// The media configuration of a leg from the negotiated stream.
pub fn leg_config(negotiated: &Negotiated, cname: String) -> LegConfig {
    LegConfig {
        codec: codec_kind(negotiated.codec),
        send_payload_type: negotiated.payload_type,
        recv_payload_type: negotiated.recv_payload_type,
        send_telephone_event: negotiated.telephone_event,
        recv_telephone_event: negotiated.recv_telephone_event,
        send_comfort_noise: negotiated.comfort_noise,
        recv_comfort_noise: negotiated.recv_comfort_noise,
        send_dtx: negotiated.send_dtx,
        remote_rtp: negotiated.remote_rtp,
        remote_rtcp: (!negotiated.rtcp_mux).then_some(negotiated.remote_rtcp),
        srtp: negotiated.srtp.as_ref().map(|keys| SrtpKeys {
            suite: suite(keys.profile),
            local: keys.local_key,
            remote: keys.remote_key,
        }),
        cname,
    }
}

/// A leg's quality as the APIs and logs show it.
pub fn quality(leg: &tutti_media::io::LegHandle) -> tutti_api::live::CallQuality {
    let (stats, _, _) = leg.stats();
    let round = |v: f64| (v * 100.0).round() / 100.0;
    tutti_api::live::CallQuality {
        packets_received: stats.packets_received,
        loss_percent: round(stats.loss_percent),
        jitter_ms: round(stats.jitter_ms),
        rtt_ms: stats.rtt_ms.map(round),
        mos: round(stats.mos),
    }
}
