//! A bad network between a test phone and tutti, in user space: a UDP relay
//! that loses, duplicates and delays (so also reorders) datagrams in both
//! directions, like `tc netem` would on a veth pair. (The test machines'
//! kernel has no `sch_netem`, so the same impairments are made here, with a
//! seeded random generator so a run can be repeated.)
//!
//! The phone advertises the relay's address in its SDP and sends to the
//! relay; the relay forwards what comes from the phone to tutti and what comes
//! from tutti to the phone. tutti sees one peer address, as it would through a
//! NAT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;

/// What the network does to each datagram, each way.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Share of datagrams lost, 0.0 to 1.0.
    pub loss: f64,
    /// Share of datagrams delivered twice.
    pub duplicate: f64,
    /// Each datagram is delayed by a uniform 0 to this many milliseconds,
    /// which reorders packets sent closer together than the spread.
    pub jitter_ms: u64,
    pub seed: u64,
}

impl Impairment {
    pub fn loss(loss: f64, jitter_ms: u64) -> Self {
        Self { loss, duplicate: 0.01, jitter_ms, seed: 7 }
    }
}

/// Counts of what the relay did, and a switch that cuts the line.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub forwarded: AtomicU64,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    /// Everything is dropped while set (a phone that vanished).
    pub cut: AtomicBool,
}

/// A bound relay, before it knows where tutti is.
pub struct Relay {
    socket: Arc<UdpSocket>,
    pub stats: Arc<RelayStats>,
}

impl Relay {
    pub async fn bind() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("relay socket");
        Self { socket: Arc::new(socket), stats: Arc::default() }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("relay address")
    }

    /// Starts relaying between `phone` and `tutti` with `impairment`; runs
    /// until the test's runtime ends.
    pub fn start(&self, phone: SocketAddr, tutti: SocketAddr, impairment: Impairment) {
        let (socket, stats) = (self.socket.clone(), self.stats.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(impairment.seed);
            let mut buf = [0u8; 2048];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
                let to = if from == phone { tutti } else { phone };
                if stats.cut.load(Ordering::Relaxed) || rng.random_bool(impairment.loss) {
                    stats.lost.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let copies = if rng.random_bool(impairment.duplicate) {
                    stats.duplicated.fetch_add(1, Ordering::Relaxed);
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let delay = Duration::from_millis(rng.random_range(0..=impairment.jitter_ms));
                    let (socket, data) = (socket.clone(), buf[..n].to_vec());
                    stats.forwarded.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = socket.send_to(&data, to).await;
                    });
                }
            }
        });
    }
}
