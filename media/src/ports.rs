//! RTP/RTCP ports from the configured range (`--rtp-ports`): RTP on an even port,
//! RTCP on the odd one above it unless rtcp-mux is used. A rotating cursor hands
//! out ports round the range, so a port just released is not reused at once and
//! stray packets of an old call do not land in a new one.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use tokio::net::UdpSocket;

/// The sockets of one leg. The RTP socket is a plain non-blocking socket
/// with kernel arrival timestamps on, read by whoever ticks the leg
/// ([`crate::recv`]); the RTCP socket is a tokio one, read by the leg's task.
#[derive(Debug)]
pub struct RtpSockets {
    pub rtp: std::net::UdpSocket,
    /// `None` with rtcp-mux.
    pub rtcp: Option<UdpSocket>,
}

impl RtpSockets {
    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

#[derive(Debug)]
pub struct PortPool {
    /// First and last even RTP port usable.
    first: u16,
    last: u16,
    cursor: Mutex<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("the RTP port range {0}-{1} holds no RTP/RTCP pair")]
    EmptyRange(u16, u16),
    #[error("no free RTP port in {0}-{1}")]
    Exhausted(u16, u16),
    #[error("cannot bind RTP socket: {0}")]
    Bind(#[from] io::Error),
}

impl PortPool {
    /// A pool over the inclusive range `low..=high`.
    pub fn new(low: u16, high: u16) -> Result<Self, PortError> {
        let first = low.saturating_add(low % 2);
        // The RTCP port (RTP + 1) must be in the range too.
        let last = if high.is_multiple_of(2) { high.saturating_sub(2) } else { high - 1 };
        if first == 0 || first > last || high < 2 {
            return Err(PortError::EmptyRange(low, high));
        }
        Ok(Self { first, last, cursor: Mutex::new(first) })
    }

    /// How many RTP/RTCP pairs the range holds.
    pub fn capacity(&self) -> usize {
        usize::from((self.last - self.first) / 2 + 1)
    }

    fn next_candidate(&self) -> u16 {
        // A poisoned lock only means another thread panicked mid-increment; the
        // cursor is still a valid port, so carry on with it.
        let mut cursor = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let port = *cursor;
        *cursor = if port >= self.last { self.first } else { port + 2 };
        port
    }

    /// Binds a free RTP port (and the RTCP port above it unless `rtcp_mux`) on
    /// `ip`, trying each pair of the range at most once.
    pub async fn bind(&self, ip: IpAddr, rtcp_mux: bool) -> Result<RtpSockets, PortError> {
        for _ in 0..self.capacity() {
            let port = self.next_candidate();
            let Ok(rtp) = std::net::UdpSocket::bind(SocketAddr::new(ip, port)) else {
                continue;
            };
            rtp.set_nonblocking(true)?;
            crate::recv::enable_timestamps(&rtp)?;
            if rtcp_mux {
                return Ok(RtpSockets { rtp, rtcp: None });
            }
            match UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
                Ok(rtcp) => return Ok(RtpSockets { rtp, rtcp: Some(rtcp) }),
                Err(_) => continue,
            }
        }
        Err(PortError::Exhausted(self.first, self.last + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A random even-based range of `len` ports that are free on loopback now,
    /// below the kernel's ephemeral range so parallel tests rarely meet.
    fn free_range(len: u16) -> u16 {
        use rand::RngExt;
        for _ in 0..100 {
            let base = rand::rng().random_range(10_000u16..30_000) & !1;
            let held: Vec<_> = (base..base + len)
                .map_while(|p| std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).ok())
                .collect();
            if held.len() == usize::from(len) {
                return base;
            }
        }
        panic!("no free port range on loopback");
    }

    #[test]
    fn ranges() {
        let p = PortPool::new(16384, 32767).expect("default range");
        assert_eq!((p.first, p.last), (16384, 32766));
        assert_eq!(p.capacity(), 8192);
        let odd = PortPool::new(10001, 10004).expect("odd start");
        assert_eq!((odd.first, odd.last), (10002, 10002), "10004 has no 10005 above it");
        assert!(PortPool::new(10000, 10000).is_err());
        assert!(PortPool::new(10001, 10002).is_err());
        assert!(PortPool::new(0, 1).is_err());
    }

    #[tokio::test]
    async fn pairs_are_even_and_odd_and_rotate() {
        let base = free_range(10);
        let pool = PortPool::new(base, base + 9).expect("pool");
        let a = pool.bind(LOOPBACK, false).await.expect("first pair");
        let b = pool.bind(LOOPBACK, true).await.expect("second, muxed");
        let (pa, pb) = (a.rtp_port(), b.rtp_port());
        assert_eq!(pa % 2, 0);
        assert_eq!(
            a.rtcp.as_ref().and_then(|s| s.local_addr().ok()).map(|x| x.port()),
            Some(pa + 1)
        );
        assert!(b.rtcp.is_none());
        assert_ne!(pa, pb);
        drop(a);
        // The freed pair is not handed out next: the cursor moves on.
        let c = pool.bind(LOOPBACK, false).await.expect("third");
        assert_ne!(c.rtp_port(), pa);
    }

    #[tokio::test]
    async fn busy_ports_are_skipped_and_exhaustion_is_an_error() {
        let base = free_range(4);
        let pool = PortPool::new(base, base + 3).expect("two pairs");
        // Someone else holds the RTCP port of the first pair.
        let _squatter = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, base + 1)).expect("squat");
        let got = pool.bind(LOOPBACK, false).await.expect("second pair");
        assert_eq!(got.rtp_port(), base + 2);
        assert!(matches!(pool.bind(LOOPBACK, false).await, Err(PortError::Exhausted(..))));
    }
}
