//! RTP and RTCP parsing never panics, whatever arrives on a media port: the
//! header parser, the padding check, rtcp-mux demultiplexing, and a leg's whole
//! receive path (latching, statistics, RTCP reports, jitter buffer, DTMF).
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tutti_media::codec::CodecKind;
use tutti_media::leg::{Leg, LegConfig};
use tutti_media::rtp::{RtpView, is_rtcp};

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = RtpView::parse(data) {
        assert!(view.payload_start <= view.payload_end && view.payload_end <= data.len());
        let _ = view.payload(data);
    }
    let _ = is_rtcp(data);

    let from: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let t0 = Instant::now();
    let config = LegConfig {
        codec: CodecKind::Pcmu,
        send_payload_type: 0,
        recv_payload_type: 0,
        send_telephone_event: Some(101),
        recv_telephone_event: Some(101),
        send_comfort_noise: Some(13),
        recv_comfort_noise: Some(13),
        send_dtx: false,
        remote_rtp: from,
        remote_rtcp: None,
        srtp: None,
        cname: "fuzz@tutti".into(),
    };
    let Ok(mut leg) = Leg::new(config, t0) else { return };
    // The input as one datagram, then cut into pieces, as RTP and as RTCP.
    leg.handle_datagram(t0, from, data, false);
    leg.handle_datagram(t0, from, data, true);
    for (i, chunk) in data.chunks(172).enumerate() {
        let now = t0 + Duration::from_millis(20 * i as u64);
        leg.handle_datagram(now, from, chunk, false);
        let mut pcm = [0i16; 960];
        let _ = leg.pull_frame(now, &mut pcm);
    }
    leg.handle_timeout(t0 + Duration::from_secs(10));
    while leg.poll_output().is_some() {}
});
