use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn local() -> LocalMedia {
    LocalMedia {
        address: "192.0.2.10".parse().unwrap(),
        rtp_port: 40000,
        session_id: 1234,
        session_version: 1,
        direction: MediaDirection::SendRecv,
    }
}

/// A typical offer with the given m-line format list and extra media attributes.
fn offer_sdp(proto: &str, fmts: &str, attrs: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
         m=audio 5004 {proto} {fmts}\r\n{attrs}"
    )
}

fn rtpmaps(list: &[(u8, &str)]) -> String {
    list.iter().map(|(pt, enc)| format!("a=rtpmap:{pt} {enc}\r\n")).collect()
}

fn answer_ok(offer: &str, policy: &MediaPolicy) -> Answer {
    answer_with_rng(&parse(offer).unwrap(), policy, &local(), &mut rng()).unwrap()
}

fn answer_err(offer: &str, policy: &MediaPolicy) -> SdpError {
    match parse(offer) {
        Ok(sdp) => answer_with_rng(&sdp, policy, &local(), &mut rng()).unwrap_err(),
        Err(e) => e,
    }
}

/// Re-parses the answer text, as the peer would see it.
fn reparse(answer: &Answer) -> SessionDescription {
    parse(&answer.sdp.to_string()).expect("our answer must parse")
}

fn policy_with(codecs: &[Codec]) -> MediaPolicy {
    MediaPolicy { codecs: codecs.to_vec(), ..MediaPolicy::default() }
}

fn full_offer() -> String {
    offer_sdp(
        "RTP/AVP",
        "111 9 0 8 101 110",
        &rtpmaps(&[
            (111, "opus/48000/2"),
            (9, "G722/8000"),
            (0, "PCMU/8000"),
            (8, "PCMA/8000"),
            (101, "telephone-event/8000"),
            (110, "telephone-event/48000"),
        ]),
    )
}

#[test]
fn every_single_codec_is_chosen_when_it_is_the_only_common_one() {
    for codec in Codec::ALL {
        let answer = answer_ok(&full_offer(), &policy_with(&[codec]));
        let n = &answer.negotiated;
        assert_eq!(n.codec, codec);
        let expected_pt = match codec {
            Codec::Opus => 111,
            Codec::G722 => 9,
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        };
        assert_eq!(n.payload_type, expected_pt);
        assert_eq!(n.recv_payload_type, expected_pt);
        let expected_te = if codec == Codec::Opus { 110 } else { 101 };
        assert_eq!(n.telephone_event, Some(expected_te), "{codec}");
        let md = &reparse(&answer).media_descriptions[0];
        assert_eq!(md.media.fmts, vec![expected_pt, expected_te]);
        assert_eq!(md.media.port, 40000);
    }
}

#[test]
fn every_pair_of_offered_and_allowed_codecs() {
    // For every offered set and every policy set, the pick is the first of our list
    // that is offered, or NoCommonCodec.
    let subsets: Vec<Vec<Codec>> = (1u8..16)
        .map(|mask| {
            Codec::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, c)| c)
                .collect()
        })
        .collect();
    for offered in &subsets {
        let fmts: Vec<(u8, &str)> = offered
            .iter()
            .map(|c| match c {
                Codec::Opus => (96, "opus/48000/2"),
                Codec::G722 => (9, "G722/8000"),
                Codec::Pcmu => (0, "PCMU/8000"),
                Codec::Pcma => (8, "PCMA/8000"),
            })
            .collect();
        let fmt_list: Vec<String> = fmts.iter().map(|(pt, _)| pt.to_string()).collect();
        let offer = offer_sdp("RTP/AVP", &fmt_list.join(" "), &rtpmaps(&fmts));
        for allowed in &subsets {
            let expected = allowed.iter().find(|c| offered.contains(c));
            match expected {
                Some(&codec) => {
                    assert_eq!(answer_ok(&offer, &policy_with(allowed)).negotiated.codec, codec)
                }
                None => {
                    assert_eq!(answer_err(&offer, &policy_with(allowed)), SdpError::NoCommonCodec)
                }
            }
        }
    }
}

#[test]
fn our_order_is_the_default_and_offerer_order_is_honoured_when_configured() {
    let offer = offer_sdp("RTP/AVP", "8 0 9", "");
    assert_eq!(MediaPolicy::default().order, CodecOrder::Ours);
    assert_eq!(answer_ok(&offer, &MediaPolicy::default()).negotiated.codec, Codec::G722);
    let theirs = MediaPolicy { order: CodecOrder::Offerer, ..MediaPolicy::default() };
    assert_eq!(answer_ok(&offer, &theirs).negotiated.codec, Codec::Pcma);
    // The offerer's order still only picks among codecs we allow.
    let theirs_no_pcma = MediaPolicy {
        order: CodecOrder::Offerer,
        codecs: vec![Codec::Pcmu, Codec::G722],
        ..MediaPolicy::default()
    };
    assert_eq!(answer_ok(&offer, &theirs_no_pcma).negotiated.codec, Codec::Pcmu);
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let answer = answer_ok(&offer_sdp("RTP/AVP", "0 8", ""), &MediaPolicy::default());
    assert_eq!(answer.negotiated.codec, Codec::Pcmu);
    let md = &reparse(&answer).media_descriptions[0];
    assert_eq!(md.rtpmap[0].payload, 0);
    assert_eq!(md.rtpmap[0].encoding, "PCMU");
}

#[test]
fn dynamic_payload_numbers_of_the_offer_are_used() {
    let offer = offer_sdp(
        "RTP/AVP",
        "120 127",
        &rtpmaps(&[(120, "OPUS/48000/2"), (127, "telephone-event/48000")]),
    );
    let answer = answer_ok(&offer, &MediaPolicy::default());
    let n = &answer.negotiated;
    assert_eq!((n.codec, n.payload_type, n.telephone_event), (Codec::Opus, 120, Some(127)));
    let md = &reparse(&answer).media_descriptions[0];
    assert_eq!(md.media.fmts, vec![120, 127]);
    assert_eq!(md.rtpmap[0].to_string(), "120 opus/48000/2");
    assert_eq!(md.rtpmap[1].to_string(), "127 telephone-event/48000");
    assert_eq!(md.fmtp[0].to_string(), "120 useinbandfec=1;usedtx=1");
    assert_eq!(md.fmtp[1].to_string(), "127 0-16");
}

#[test]
fn a_static_number_remapped_by_rtpmap_follows_the_rtpmap() {
    // PT 0 redefined as something we do not know must not be taken as PCMU.
    let offer = offer_sdp("RTP/AVP", "0 8", &rtpmaps(&[(0, "FOO/8000")]));
    assert_eq!(answer_ok(&offer, &MediaPolicy::default()).negotiated.codec, Codec::Pcma);
}

#[test]
fn opus_with_wrong_rate_or_channels_is_not_opus() {
    let offer =
        offer_sdp("RTP/AVP", "96 97 0", &rtpmaps(&[(96, "opus/16000/2"), (97, "opus/48000/1")]));
    assert_eq!(answer_ok(&offer, &MediaPolicy::default()).negotiated.codec, Codec::Pcmu);
}

#[test]
fn telephone_event_only_at_the_codec_rate() {
    // Only telephone-event/8000 offered, opus chosen: no telephone-event.
    let offer = offer_sdp(
        "RTP/AVP",
        "96 101",
        &rtpmaps(&[(96, "opus/48000/2"), (101, "telephone-event/8000")]),
    );
    let answer = answer_ok(&offer, &MediaPolicy::default());
    assert_eq!(answer.negotiated.telephone_event, None);
    assert_eq!(reparse(&answer).media_descriptions[0].media.fmts, vec![96]);
    // Disabled by policy.
    let no_te = MediaPolicy { telephone_event: false, ..MediaPolicy::default() };
    assert_eq!(answer_ok(&full_offer(), &no_te).negotiated.telephone_event, None);
}

#[test]
fn an_opus_answer_asks_for_inband_fec_and_dtx() {
    let offer = offer_sdp("RTP/AVP", "111 0", &rtpmaps(&[(111, "opus/48000/2")]));
    let answer = answer_ok(&offer, &MediaPolicy::default());
    assert_eq!(answer.negotiated.codec, Codec::Opus);
    let md = &reparse(&answer).media_descriptions[0];
    let fmtp: Vec<_> = md.fmtp.iter().map(|f| (f.format, f.params.as_str())).collect();
    assert_eq!(fmtp, [(111, "useinbandfec=1;usedtx=1")]);
    // Nothing of the kind for G.711.
    let answer = answer_ok(&offer_sdp("RTP/AVP", "0", ""), &MediaPolicy::default());
    assert!(reparse(&answer).media_descriptions[0].fmtp.is_empty());
}

#[test]
fn comfort_noise_beside_an_8khz_clock_codec_only() {
    // Static 13 without an rtpmap, as many phones write it.
    let offer = offer_sdp("RTP/AVP", "0 101 13", &rtpmaps(&[(101, "telephone-event/8000")]));
    let answer = answer_ok(&offer, &MediaPolicy::default());
    assert_eq!(
        (answer.negotiated.comfort_noise, answer.negotiated.recv_comfort_noise),
        (Some(13), Some(13))
    );
    let md = &reparse(&answer).media_descriptions[0];
    assert_eq!(md.media.fmts, vec![0, 101, 13]);
    assert!(
        md.rtpmap
            .iter()
            .any(|m| m.payload == 13 && m.encoding.as_str() == "CN" && m.clock_rate == 8000)
    );
    // A dynamic number with its rtpmap; G.722 (an 8000 clock) takes it too.
    let offer = offer_sdp("RTP/AVP", "9 118", &rtpmaps(&[(9, "G722/8000"), (118, "cn/8000")]));
    assert_eq!(answer_ok(&offer, &MediaPolicy::default()).negotiated.comfort_noise, Some(118));
    // CN at another clock is not for this codec; Opus never takes CN.
    let offer = offer_sdp("RTP/AVP", "0 119", &rtpmaps(&[(119, "CN/16000")]));
    assert_eq!(answer_ok(&offer, &MediaPolicy::default()).negotiated.comfort_noise, None);
    let offer = offer_sdp("RTP/AVP", "96 13", &rtpmaps(&[(96, "opus/48000/2")]));
    let answer = answer_ok(&offer, &MediaPolicy::default());
    assert_eq!(answer.negotiated.comfort_noise, None);
    assert_eq!(reparse(&answer).media_descriptions[0].media.fmts, vec![96]);
    // Not offered, or switched off: none.
    assert_eq!(answer_ok(&full_offer(), &MediaPolicy::default()).negotiated.comfort_noise, None);
    let off = MediaPolicy { comfort_noise: false, ..MediaPolicy::default() };
    let offer = offer_sdp("RTP/AVP", "0 13", "");
    let answer = answer_ok(&offer, &off);
    assert_eq!(answer.negotiated.comfort_noise, None);
    assert_eq!(reparse(&answer).media_descriptions[0].media.fmts, vec![0]);
    // Our offer: CN only where an 8 kHz-clock codec is offered.
    let opus_only = MediaPolicy { codecs: vec![Codec::Opus], ..MediaPolicy::default() };
    let text = offer_with_rng(&opus_only, &local(), &mut rng()).sdp.to_string();
    assert!(!text.contains("CN/"), "{text}");
    let text = offer_with_rng(&off, &local(), &mut rng()).sdp.to_string();
    assert!(!text.contains("CN/"), "{text}");
}

#[test]
fn an_answer_with_comfort_noise_or_without() {
    let ours = offer_with_rng(&MediaPolicy::default(), &local(), &mut rng());
    let answer = |fmts: &str, attrs: &str| {
        format!(
            "v=0\r\no=- 5 5 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n\
             m=audio 7000 RTP/AVP {fmts}\r\n{attrs}"
        )
    };
    let n = apply_answer_str(&ours.pending, &answer("0 117", "a=rtpmap:117 CN/8000\r\n")).unwrap();
    assert_eq!((n.comfort_noise, n.recv_comfort_noise), (Some(117), Some(13)));
    let n = apply_answer_str(&ours.pending, &answer("0", "")).unwrap();
    assert_eq!((n.comfort_noise, n.recv_comfort_noise), (None, None));
    let n =
        apply_answer_str(&ours.pending, &answer("96 13", "a=rtpmap:96 opus/48000/2\r\n")).unwrap();
    assert_eq!((n.codec, n.comfort_noise), (Codec::Opus, None));
}

#[test]
fn an_opus_peer_that_asks_for_dtx_gets_it() {
    let opus = |fmtp: &str| {
        let attrs = format!("{}{fmtp}", rtpmaps(&[(111, "opus/48000/2")]));
        answer_ok(&offer_sdp("RTP/AVP", "111", &attrs), &MediaPolicy::default()).negotiated
    };
    assert!(opus("a=fmtp:111 minptime=10; useinbandfec=1; usedtx=1\r\n").send_dtx);
    assert!(opus("a=fmtp:111 USEDTX = 1\r\n").send_dtx, "keys are not case-sensitive");
    assert!(!opus("a=fmtp:111 useinbandfec=1;usedtx=0\r\n").send_dtx);
    assert!(!opus("").send_dtx, "not asked");
    assert!(!opus("a=fmtp:96 usedtx=1\r\n").send_dtx, "asked for another payload type");
    // Switched off with comfort noise: silence goes out every frame.
    let off = MediaPolicy { comfort_noise: false, ..MediaPolicy::default() };
    let attrs = format!("{}a=fmtp:111 usedtx=1\r\n", rtpmaps(&[(111, "opus/48000/2")]));
    assert!(!answer_ok(&offer_sdp("RTP/AVP", "111", &attrs), &off).negotiated.send_dtx);
    // Not for G.711, whatever its fmtp says.
    let pcmu = answer_ok(&offer_sdp("RTP/AVP", "0", "a=fmtp:0 usedtx=1\r\n"), &off);
    assert!(!pcmu.negotiated.send_dtx);
    // An answer to our offer.
    let ours = offer_with_rng(&MediaPolicy::default(), &local(), &mut rng());
    let answer = "v=0\r\no=- 5 5 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n\
                  m=audio 7000 RTP/AVP 98\r\na=rtpmap:98 opus/48000/2\r\na=fmtp:98 usedtx=1\r\n";
    let n = apply_answer_str(&ours.pending, answer).unwrap();
    assert_eq!((n.codec, n.send_dtx), (Codec::Opus, true));
}

#[test]
fn ptime_and_maxptime() {
    let with = |attrs: &str| answer_ok(&offer_sdp("RTP/AVP", "0", attrs), &MediaPolicy::default());
    assert_eq!(with("").negotiated.ptime_ms, 20);
    assert_eq!(with("a=ptime:30\r\n").negotiated.ptime_ms, 30);
    assert_eq!(with("a=ptime:40\r\na=maxptime:30\r\n").negotiated.ptime_ms, 30);
    assert_eq!(with("a=maxptime:10\r\n").negotiated.ptime_ms, 10);
    assert_eq!(with("a=ptime:20.0\r\n").negotiated.ptime_ms, 20);
    assert_eq!(with("a=ptime:25\r\n").negotiated.ptime_ms, 20);
    assert_eq!(with("a=ptime:1000\r\n").negotiated.ptime_ms, 120);
    assert_eq!(with("a=ptime:1\r\n").negotiated.ptime_ms, 10);
    // Session-level ptime (non-standard but seen) is honoured too.
    let session_level = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\na=ptime:40\r\nm=audio 5004 RTP/AVP 0\r\n";
    assert_eq!(answer_ok(session_level, &MediaPolicy::default()).negotiated.ptime_ms, 40);
    // Our answer states our ptime.
    let text = with("a=ptime:30\r\n").sdp.to_string();
    assert!(text.contains("a=ptime:20\r\n"), "{text}");
    assert!(matches!(
        answer_err(&offer_sdp("RTP/AVP", "0", "a=ptime:abc\r\n"), &MediaPolicy::default()),
        SdpError::Malformed(_)
    ));
}

#[test]
fn directions_are_answered_as_rfc3264_says() {
    let cases = [
        ("", MediaDirection::SendRecv, "a=sendrecv"),
        ("a=sendrecv\r\n", MediaDirection::SendRecv, "a=sendrecv"),
        ("a=sendonly\r\n", MediaDirection::RecvOnly, "a=recvonly"),
        ("a=recvonly\r\n", MediaDirection::SendOnly, "a=sendonly"),
        ("a=inactive\r\n", MediaDirection::Inactive, "a=inactive"),
    ];
    for (attr, ours, line) in cases {
        let answer = answer_ok(&offer_sdp("RTP/AVP", "0", attr), &MediaPolicy::default());
        assert_eq!(answer.negotiated.direction, ours, "{attr}");
        assert!(answer.sdp.to_string().contains(&format!("{line}\r\n")), "{attr}");
    }
}

#[test]
fn session_level_direction_applies_to_the_media() {
    let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\na=sendonly\r\nm=audio 5004 RTP/AVP 0\r\n";
    assert_eq!(
        answer_ok(offer, &MediaPolicy::default()).negotiated.direction,
        MediaDirection::RecvOnly
    );
}

#[test]
fn our_own_direction_limits_the_answer() {
    let mut l = local();
    l.direction = MediaDirection::SendOnly;
    let offer = parse(&offer_sdp("RTP/AVP", "0", "a=sendrecv\r\n")).unwrap();
    let a = answer_with_rng(&offer, &MediaPolicy::default(), &l, &mut rng()).unwrap();
    assert_eq!(a.negotiated.direction, MediaDirection::SendOnly);
    let offer = parse(&offer_sdp("RTP/AVP", "0", "a=sendonly\r\n")).unwrap();
    let a = answer_with_rng(&offer, &MediaPolicy::default(), &l, &mut rng()).unwrap();
    assert_eq!(a.negotiated.direction, MediaDirection::Inactive);
}

#[test]
fn legacy_hold_with_zero_address() {
    let offer = "v=0\r\no=- 1 2 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n";
    let answer = answer_ok(offer, &MediaPolicy::default());
    assert_eq!(answer.negotiated.direction, MediaDirection::RecvOnly);
    assert!(!answer.negotiated.direction.sends());
    assert!(answer.negotiated.remote_rtp.ip().is_unspecified());
    // With inactive as well, nothing flows.
    let inactive = offer.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=inactive\r\n");
    assert_eq!(
        answer_ok(&inactive, &MediaPolicy::default()).negotiated.direction,
        MediaDirection::Inactive
    );
}

#[test]
fn addresses_rtcp_and_rtcp_mux() {
    let a = answer_ok(&offer_sdp("RTP/AVP", "0", ""), &MediaPolicy::default());
    assert_eq!(a.negotiated.remote_rtp, "198.51.100.7:5004".parse().unwrap());
    assert_eq!(a.negotiated.remote_rtcp, "198.51.100.7:5005".parse().unwrap());
    assert!(!a.negotiated.rtcp_mux);
    assert!(!a.sdp.to_string().contains("rtcp-mux"));

    let a = answer_ok(&offer_sdp("RTP/AVP", "0", "a=rtcp:6000\r\n"), &MediaPolicy::default());
    assert_eq!(a.negotiated.remote_rtcp, "198.51.100.7:6000".parse().unwrap());
    let a = answer_ok(
        &offer_sdp("RTP/AVP", "0", "a=rtcp:6000 IN IP4 203.0.113.5\r\n"),
        &MediaPolicy::default(),
    );
    assert_eq!(a.negotiated.remote_rtcp, "203.0.113.5:6000".parse().unwrap());

    let a = answer_ok(&offer_sdp("RTP/AVP", "0", "a=rtcp-mux\r\n"), &MediaPolicy::default());
    assert!(a.negotiated.rtcp_mux);
    assert_eq!(a.negotiated.remote_rtcp, a.negotiated.remote_rtp);
    assert!(reparse(&a).media_descriptions[0].rtcp_mux);

    let no_mux = MediaPolicy { rtcp_mux: false, ..MediaPolicy::default() };
    let a = answer_ok(&offer_sdp("RTP/AVP", "0", "a=rtcp-mux\r\n"), &no_mux);
    assert!(!a.negotiated.rtcp_mux);
    assert_eq!(a.negotiated.remote_rtcp.port(), 5005);

    // Media-level c= wins over session-level; IPv6 works.
    let offer = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP6 2001:db8::1\r\n";
    assert_eq!(
        answer_ok(offer, &MediaPolicy::default()).negotiated.remote_rtp,
        "[2001:db8::1]:5004".parse().unwrap()
    );
    // RTP on 65535 leaves no room for RTCP unless muxed.
    let top = offer_sdp("RTP/AVP", "0", "").replace("5004", "65535");
    assert!(matches!(answer_err(&top, &MediaPolicy::default()), SdpError::Malformed(_)));
    let top_mux = offer_sdp("RTP/AVP", "0", "a=rtcp-mux\r\n").replace("5004", "65535");
    assert_eq!(answer_ok(&top_mux, &MediaPolicy::default()).negotiated.remote_rtp.port(), 65535);
}

#[test]
fn hostname_connection_is_rejected_cleanly() {
    let offer =
        offer_sdp("RTP/AVP", "0", "").replace("c=IN IP4 198.51.100.7", "c=IN IP4 pbx.example.com");
    assert_eq!(
        answer_err(&offer, &MediaPolicy::default()),
        SdpError::UnresolvedAddress("pbx.example.com".into())
    );
    assert_eq!(SdpError::UnresolvedAddress(String::new()).sip_status(), 488);
    let no_c = offer_sdp("RTP/AVP", "0", "").replace("c=IN IP4 198.51.100.7\r\n", "");
    assert!(matches!(answer_err(&no_c, &MediaPolicy::default()), SdpError::Malformed(_)));
}

const KEY_A: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
const KEY_B: &str = "PS1uQCVeeCFCPiYzYX1bdjEfr1ssYg4SCnVubGVz";

fn savp_offer(cryptos: &str) -> String {
    offer_sdp("RTP/SAVP", "0 101", &format!("a=rtpmap:101 telephone-event/8000\r\n{cryptos}"))
}

#[test]
fn sdes_picks_80_before_32_and_returns_both_keys() {
    let offer = savp_offer(&format!(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_A}\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B}|2^20\r\n"
    ));
    let answer = answer_ok(&offer, &MediaPolicy::default());
    let keys = answer.negotiated.srtp.clone().expect("SRTP negotiated");
    assert_eq!(keys.profile, SrtpProfile::AesCm128HmacSha1_80);
    assert_eq!(keys.remote_key.to_vec(), STANDARD.decode(KEY_B).unwrap());
    let md = &reparse(&answer).media_descriptions[0];
    assert_eq!(md.media.proto, TransportProtocol::RtpSavp);
    let [crypto] = md.crypto.as_slice() else {
        panic!("one crypto line expected: {:?}", md.crypto)
    };
    assert_eq!(crypto.tag, 2);
    assert_eq!(crypto.suite, SrtpSuite::AES_CM_128_HMAC_SHA1_80);
    let ours = STANDARD.decode(crypto.keys[0].key_and_salt.as_str()).unwrap();
    assert_eq!(ours.len(), 30);
    assert_eq!(ours, keys.local_key.to_vec());
    assert_ne!(keys.local_key, keys.remote_key);
    // Keys never show in Debug output.
    assert!(!format!("{keys:?}").contains(&format!("{:?}", keys.local_key[0..4].to_vec())));
}

#[test]
fn sdes_falls_back_to_32_and_skips_unusable_lines() {
    let offer = savp_offer(&format!(
        "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{KEY_A}\r\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|1:4\r\n\
         a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A} UNENCRYPTED_SRTP\r\n\
         a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=\r\n\
         a=crypto:5 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}\r\n"
    ));
    let answer = answer_ok(&offer, &MediaPolicy::default());
    let keys = answer.negotiated.srtp.clone().unwrap();
    assert_eq!(keys.profile, SrtpProfile::AesCm128HmacSha1_32);
    assert_eq!(reparse(&answer).media_descriptions[0].crypto[0].tag, 5);
}

#[test]
fn fresh_keys_per_answer() {
    let offer =
        parse(&savp_offer(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}\r\n")))
            .unwrap();
    let a = answer(&offer, &MediaPolicy::default(), &local()).unwrap();
    let b = answer(&offer, &MediaPolicy::default(), &local()).unwrap();
    assert_ne!(a.negotiated.srtp.unwrap().local_key, b.negotiated.srtp.unwrap().local_key);
}

#[test]
fn srtp_policy_and_missing_crypto() {
    let savp = savp_offer(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}\r\n"));
    let disabled = MediaPolicy { srtp: SrtpPolicy::Disabled, ..MediaPolicy::default() };
    assert_eq!(answer_err(&savp, &disabled), SdpError::NoUsableCrypto);
    let required = MediaPolicy { srtp: SrtpPolicy::Required, ..MediaPolicy::default() };
    assert_eq!(answer_err(&offer_sdp("RTP/AVP", "0", ""), &required), SdpError::NoUsableCrypto);
    assert!(answer_ok(&savp, &required).negotiated.srtp.is_some());
    assert_eq!(answer_err(&savp_offer(""), &MediaPolicy::default()), SdpError::NoUsableCrypto);
    assert_eq!(SdpError::NoUsableCrypto.sip_status(), 488);
    // Plain RTP gets no keys.
    assert!(
        answer_ok(&offer_sdp("RTP/AVP", "0", ""), &MediaPolicy::default())
            .negotiated
            .srtp
            .is_none()
    );
}

#[test]
fn no_common_codec_is_488() {
    let offer = offer_sdp("RTP/AVP", "18 3", &rtpmaps(&[(18, "G729/8000")]));
    let err = answer_err(&offer, &MediaPolicy::default());
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(err.sip_status(), 488);
    // Only telephone-event is not a codec.
    let offer = offer_sdp("RTP/AVP", "101", &rtpmaps(&[(101, "telephone-event/8000")]));
    assert_eq!(answer_err(&offer, &MediaPolicy::default()), SdpError::NoCommonCodec);
    // Empty policy.
    assert_eq!(
        answer_err(&offer_sdp("RTP/AVP", "0", ""), &policy_with(&[])),
        SdpError::NoCommonCodec
    );
}

#[test]
fn no_audio_at_all() {
    let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=video 5006 RTP/AVP 96\r\n";
    assert_eq!(answer_err(offer, &MediaPolicy::default()), SdpError::NoAudio);
    let none = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nt=0 0\r\n";
    assert_eq!(answer_err(none, &MediaPolicy::default()), SdpError::NoAudio);
}

#[test]
fn multiple_m_lines_keep_order_and_reject_extras_with_port_zero() {
    let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
        m=video 5010 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        m=audio 5020 RTP/AVP 18\r\n\
        m=audio 5030 RTP/AVP 8 0\r\n\
        m=audio 5040 RTP/AVP 0\r\n\
        m=application 5050 UDP/BFCP *\r\n";
    // The last line is not parseable by every stack; drop it for this case.
    let offer = offer.replace("m=application 5050 UDP/BFCP *\r\n", "m=text 5050 RTP/AVP 98\r\n");
    let answer = answer_ok(&offer, &MediaPolicy::default());
    assert_eq!(answer.negotiated.remote_rtp.port(), 5030);
    assert_eq!(answer.negotiated.codec, Codec::Pcmu);
    let sdp = reparse(&answer);
    let summary: Vec<(MediaType, u16)> =
        sdp.media_descriptions.iter().map(|md| (md.media.media_type, md.media.port)).collect();
    assert_eq!(
        summary,
        vec![
            (MediaType::Video, 0),
            (MediaType::Audio, 0),
            (MediaType::Audio, 40000),
            (MediaType::Audio, 0),
            (MediaType::Text, 0),
        ]
    );
}

#[test]
fn dtls_and_disabled_lines_are_skipped() {
    let offer = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
        m=audio 5010 UDP/TLS/RTP/SAVPF 0\r\n\
        m=audio 0 RTP/AVP 0\r\n\
        m=audio 5030 RTP/AVPF 8\r\n";
    let answer = answer_ok(offer, &MediaPolicy::default());
    assert_eq!(answer.negotiated.codec, Codec::Pcma);
    let sdp = reparse(&answer);
    let ports: Vec<u16> = sdp.media_descriptions.iter().map(|m| m.media.port).collect();
    assert_eq!(ports, vec![0, 0, 40000]);
    assert_eq!(sdp.media_descriptions[2].media.proto, TransportProtocol::RtpAvpf);
}

#[test]
fn answer_header_fields() {
    let mut l = local();
    l.session_version = 7;
    let offer = parse(&offer_sdp("RTP/AVP", "0", "")).unwrap();
    let text =
        answer_with_rng(&offer, &MediaPolicy::default(), &l, &mut rng()).unwrap().sdp.to_string();
    assert!(
        text.starts_with(
            "v=0\r\no=tutti 1234 7 IN IP4 192.0.2.10\r\ns=tutti\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        ),
        "{text}"
    );
    assert!(text.contains("m=audio 40000 RTP/AVP 0\r\n"), "{text}");
}

#[test]
fn malformed_input_is_an_error() {
    let bad = [
        "",
        "hello",
        "v=1\r\n",
        "v=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\nt=0 0\r\n",
        "v=0\r\no=garbage\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=x y\r\n",
    ];
    for text in bad {
        let err = answer_str(text, &MediaPolicy::default(), &local()).unwrap_err();
        assert!(matches!(err, SdpError::Malformed(_)), "{text:?} gave {err:?}");
        assert_eq!(err.sip_status(), 400);
    }
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_SDP_LEN));
    assert!(matches!(parse(&huge), Err(SdpError::TooLarge(_))));
}

#[test]
fn late_offer_round_trip() {
    let policy = MediaPolicy::default();
    let ours = offer_with_rng(&policy, &local(), &mut rng());
    let text = ours.sdp.to_string();
    assert!(text.contains("m=audio 40000 RTP/AVP 96 9 0 8 100 101 13\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:13 CN/8000\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:96 opus/48000/2\r\n"), "{text}");
    assert!(text.contains("a=fmtp:96 useinbandfec=1;usedtx=1\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:100 telephone-event/48000\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{text}");
    assert!(text.contains("a=rtcp-mux\r\n") && text.contains("a=ptime:20\r\n"), "{text}");
    assert!(!text.contains("a=crypto"), "{text}");

    // The peer answers PCMA with its own telephone-event number.
    let answer = "v=0\r\no=- 5 5 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n\
        m=audio 7000 RTP/AVP 8 98\r\na=rtpmap:98 telephone-event/8000\r\na=ptime:30\r\na=rtcp-mux\r\n";
    let n = apply_answer_str(&ours.pending, answer).unwrap();
    assert_eq!(n.codec, Codec::Pcma);
    assert_eq!((n.payload_type, n.recv_payload_type), (8, 8));
    assert_eq!((n.telephone_event, n.recv_telephone_event), (Some(98), Some(101)));
    assert_eq!(n.remote_rtp, "203.0.113.9:7000".parse().unwrap());
    assert!(n.rtcp_mux);
    assert_eq!(n.ptime_ms, 30);
    assert_eq!(n.direction, MediaDirection::SendRecv);
    assert!(n.srtp.is_none());

    // Our own offer, answered by our own answer function, agrees with itself.
    let theirs = answer_with_rng(&ours.sdp, &policy, &local(), &mut rng()).unwrap();
    let n = apply_answer(&ours.pending, &reparse(&theirs)).unwrap();
    assert_eq!(n.codec, theirs.negotiated.codec);
    assert_eq!(n.codec, Codec::Opus);
    assert_eq!(n.telephone_event, Some(100));
}

#[test]
fn late_offer_answer_with_different_opus_number() {
    let ours = offer_with_rng(&MediaPolicy::default(), &local(), &mut rng());
    let answer = "v=0\r\no=- 5 5 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n\
        m=audio 7000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n";
    let n = apply_answer_str(&ours.pending, answer).unwrap();
    assert_eq!((n.codec, n.payload_type, n.recv_payload_type), (Codec::Opus, 111, 96));
    assert_eq!(n.direction, MediaDirection::RecvOnly);
    assert_eq!(n.telephone_event, None);
}

#[test]
fn late_offer_with_srtp() {
    let policy = MediaPolicy { srtp: SrtpPolicy::Required, ..MediaPolicy::default() };
    let ours = offer_with_rng(&policy, &local(), &mut rng());
    let md = &ours.sdp.media_descriptions[0];
    assert_eq!(md.media.proto, TransportProtocol::RtpSavp);
    assert_eq!(md.crypto.len(), 2);
    assert_eq!(md.crypto[0].suite, SrtpSuite::AES_CM_128_HMAC_SHA1_80);
    assert_eq!(md.crypto[1].suite, SrtpSuite::AES_CM_128_HMAC_SHA1_32);
    let our_key_2 = STANDARD.decode(md.crypto[1].keys[0].key_and_salt.as_str()).unwrap();

    let answer = format!(
        "v=0\r\no=- 5 5 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n\
         m=audio 7000 RTP/SAVP 0\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}\r\n"
    );
    let n = apply_answer_str(&ours.pending, &answer).unwrap();
    let keys = n.srtp.unwrap();
    assert_eq!(keys.profile, SrtpProfile::AesCm128HmacSha1_32);
    assert_eq!(keys.local_key.to_vec(), our_key_2);
    assert_eq!(keys.remote_key.to_vec(), STANDARD.decode(KEY_B).unwrap());

    // Wrong tag/suite pairing, missing crypto, and a plain RTP answer are refused.
    let wrong = answer.replace("crypto:2", "crypto:1");
    assert_eq!(apply_answer_str(&ours.pending, &wrong).unwrap_err(), SdpError::NoUsableCrypto);
    let none =
        answer.replace(&format!("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}\r\n"), "");
    assert_eq!(apply_answer_str(&ours.pending, &none).unwrap_err(), SdpError::NoUsableCrypto);
    let plain = none.replace("RTP/SAVP", "RTP/AVP");
    assert!(matches!(
        apply_answer_str(&ours.pending, &plain).unwrap_err(),
        SdpError::AnswerMismatch(_)
    ));
}

#[test]
fn late_offer_bad_answers() {
    let ours = offer_with_rng(&policy_with(&[Codec::Pcmu]), &local(), &mut rng());
    let head = "v=0\r\no=- 5 5 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n";
    let rejected = format!("{head}m=audio 0 RTP/AVP 0\r\n");
    assert_eq!(apply_answer_str(&ours.pending, &rejected).unwrap_err(), SdpError::NoCommonCodec);
    let not_offered = format!("{head}m=audio 7000 RTP/AVP 8\r\n");
    assert_eq!(apply_answer_str(&ours.pending, &not_offered).unwrap_err(), SdpError::NoCommonCodec);
    let two = format!("{head}m=audio 7000 RTP/AVP 0\r\nm=audio 7002 RTP/AVP 0\r\n");
    assert!(matches!(
        apply_answer_str(&ours.pending, &two).unwrap_err(),
        SdpError::AnswerMismatch(_)
    ));
    let video = format!("{head}m=video 7000 RTP/AVP 0\r\n");
    assert!(matches!(
        apply_answer_str(&ours.pending, &video).unwrap_err(),
        SdpError::AnswerMismatch(_)
    ));
    assert!(matches!(apply_answer_str(&ours.pending, "junk").unwrap_err(), SdpError::Malformed(_)));
    // Legacy hold in an answer: the peer will not receive.
    let hold = format!("{head}m=audio 7000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n");
    assert_eq!(apply_answer_str(&ours.pending, &hold).unwrap().direction, MediaDirection::RecvOnly);
}

#[test]
fn offer_only_lists_allowed_codecs_and_matching_events() {
    let ours = offer_with_rng(&policy_with(&[Codec::Pcma, Codec::Pcma]), &local(), &mut rng());
    let text = ours.sdp.to_string();
    assert!(text.contains("m=audio 40000 RTP/AVP 8 101 13\r\n"), "{text}");
    assert!(!text.contains("48000"), "{text}");
    let mut hold = local();
    hold.direction = MediaDirection::SendOnly;
    let text = offer_with_rng(&MediaPolicy::default(), &hold, &mut rng()).sdp.to_string();
    assert!(text.contains("a=sendonly\r\n"), "{text}");
}

#[test]
fn mutated_offers_never_panic() {
    let seeds = [
        full_offer(),
        savp_offer(&format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}\r\na=rtcp:5005 IN IP4 1.2.3.4\r\n"
        )),
    ];
    let mut r = rng();
    let alphabet = b"v=0omcta:/ \r\n0123456789.IN IP4RTP/SAVP;|^-";
    let mut accepted = 0;
    for _ in 0..20_000 {
        let base = seeds[(r.next_u32() % 2) as usize].as_bytes();
        let mut bytes = base.to_vec();
        for _ in 0..(1 + r.next_u32() % 8) {
            let at = (r.next_u32() as usize) % (bytes.len() + 1);
            match r.next_u32() % 3 {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 if at < bytes.len() => {
                    bytes[at] = alphabet[(r.next_u32() as usize) % alphabet.len()]
                }
                _ => bytes.insert(at, alphabet[(r.next_u32() as usize) % alphabet.len()]),
            }
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Ok(answer) = answer_str(text, &MediaPolicy::default(), &local()) {
                let rendered = answer.sdp.to_string();
                assert!(parse(&rendered).is_ok(), "unparseable answer to {text:?}: {rendered}");
                accepted += 1;
            }
            let _ = apply_answer_str(
                &offer_with_rng(&MediaPolicy::default(), &local(), &mut r).pending,
                text,
            );
        }
    }
    // The mutations must leave many offers answerable, or this test proves little.
    assert!(accepted > 1000, "only {accepted} mutated offers were answered");
}
