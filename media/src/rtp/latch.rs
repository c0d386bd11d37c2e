//! Symmetric RTP with latching: until media arrives, send to the address the
//! SDP gave; once a valid packet arrives, send to where it came from (phones
//! behind NAT) and drop packets from anywhere else, counting them, until a
//! re-INVITE names a new peer.

use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latch {
    signalled: SocketAddr,
    latched: Option<SocketAddr>,
    dropped: u64,
}

impl Latch {
    pub fn new(signalled: SocketAddr) -> Self {
        Self { signalled, latched: None, dropped: 0 }
    }

    /// Whether a packet from `from` (already known to be valid RTP of a
    /// negotiated payload type) belongs to this leg. The first one latches.
    pub fn accept(&mut self, from: SocketAddr) -> bool {
        match self.latched {
            Some(addr) if addr == from => true,
            Some(_) => {
                self.dropped += 1;
                false
            }
            None => {
                self.latched = Some(from);
                true
            }
        }
    }

    /// Where to send: the latched source, else the signalled address. `None`
    /// while the peer holds the call with a 0.0.0.0 connection address.
    pub fn destination(&self) -> Option<SocketAddr> {
        let addr = self.latched.unwrap_or(self.signalled);
        (!addr.ip().is_unspecified() && addr.port() != 0).then_some(addr)
    }

    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Packets dropped for coming from the wrong address.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A re-INVITE or UPDATE gave a new address: latch afresh.
    pub fn reset(&mut self, signalled: SocketAddr) {
        self.signalled = signalled;
        self.latched = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn latches_on_the_first_source_and_drops_others() {
        let mut latch = Latch::new(addr("10.0.0.5:4000"));
        assert_eq!(
            latch.destination(),
            Some(addr("10.0.0.5:4000")),
            "the SDP address until media flows"
        );
        assert!(latch.accept(addr("203.0.113.7:31000")), "NATed source latches");
        assert_eq!(latch.destination(), Some(addr("203.0.113.7:31000")));
        assert!(latch.accept(addr("203.0.113.7:31000")));
        assert!(!latch.accept(addr("198.51.100.9:5000")));
        assert!(!latch.accept(addr("203.0.113.7:31002")));
        assert_eq!(latch.dropped(), 2);
    }

    #[test]
    fn a_reinvite_unlatches() {
        let mut latch = Latch::new(addr("10.0.0.5:4000"));
        assert!(latch.accept(addr("10.0.0.5:4000")));
        latch.reset(addr("10.0.0.6:4002"));
        assert_eq!(latch.destination(), Some(addr("10.0.0.6:4002")));
        assert!(latch.accept(addr("10.0.0.6:4002")));
        assert!(!latch.accept(addr("10.0.0.5:4000")));
    }

    #[test]
    fn legacy_hold_sends_nowhere() {
        let latch = Latch::new(addr("0.0.0.0:4000"));
        assert_eq!(latch.destination(), None);
    }
}
