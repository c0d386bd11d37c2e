//! Helpers shared by the media tests that use real sockets.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::net::{Ipv4Addr, SocketAddr};

use tutti_media::codec::CodecKind;
use tutti_media::leg::LegConfig;
use tutti_media::ports::PortPool;

/// A pool over `len` UDP ports that are free on loopback now, picked at random
/// below the kernel's ephemeral range so parallel tests rarely meet.
pub fn free_pool(len: u16) -> PortPool {
    use rand::RngExt;
    for _ in 0..100 {
        let base = rand::rng().random_range(10_000u16..30_000) & !1;
        if (base..base + len).all(|p| std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return PortPool::new(base, base + len - 1).expect("pool");
        }
    }
    panic!("no free port range on loopback");
}

/// A plain PCMU leg with telephone-event 101, sending to `remote`.
pub fn pcmu_leg(remote: SocketAddr) -> LegConfig {
    LegConfig {
        codec: CodecKind::Pcmu,
        send_payload_type: 0,
        recv_payload_type: 0,
        send_telephone_event: Some(101),
        recv_telephone_event: Some(101),
        send_comfort_noise: None,
        recv_comfort_noise: None,
        send_dtx: false,
        remote_rtp: remote,
        remote_rtcp: None,
        srtp: None,
        cname: "test@tutti".into(),
    }
}
