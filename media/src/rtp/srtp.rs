//! SRTP and SRTCP with SDES keys (RFC 4568) through rtc-srtp: one context
//! protects what we send with our key, another unprotects what we receive with
//! the peer's. Replay protection and authentication failures are errors that
//! the leg counts and drops, never panics on.

use rtc_crypto::providers::RingCrypto;
use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;

/// Length of an SDES master key plus salt for the AES_CM_128 suites.
pub const KEY_SALT_LEN: usize = 30;
const KEY_LEN: usize = 16;
/// The E flag and SRTCP index word before the SRTCP tag.
const SRTCP_INDEX_LEN: usize = 4;
/// Packets of reordering tolerated before an old index counts as a replay
/// (RFC 3711 suggests at least 64).
const REPLAY_WINDOW: usize = 128;

/// The SDES crypto suites tutti offers and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    fn profile(self) -> ProtectionProfile {
        match self {
            Self::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Self::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("SRTP setup failed: {0}")]
    Setup(String),
    /// Authentication failed, replayed packet, or malformed input.
    #[error("SRTP packet rejected: {0}")]
    Rejected(String),
}

pub struct SrtpSession {
    outbound: Context,
    inbound: Context,
    /// Bytes of the SRTCP authentication tag (80 bits for both suites).
    rtcp_tag_len: usize,
}

impl std::fmt::Debug for SrtpSession {
    // Contexts hold keys: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession").finish_non_exhaustive()
    }
}

impl SrtpSession {
    /// Contexts for our key (what we send) and the peer's (what we receive).
    pub fn new(
        suite: SrtpSuite,
        local_key: &[u8; KEY_SALT_LEN],
        remote_key: &[u8; KEY_SALT_LEN],
    ) -> Result<Self, SrtpError> {
        let context = |key: &[u8; KEY_SALT_LEN], replay: bool| {
            let (rtp, rtcp) = if replay {
                (
                    Some(srtp_replay_protection(REPLAY_WINDOW)),
                    Some(srtcp_replay_protection(REPLAY_WINDOW)),
                )
            } else {
                (None, None)
            };
            Context::new(&key[..KEY_LEN], &key[KEY_LEN..], suite.profile(), rtp, rtcp, &RingCrypto)
                .map_err(|e| SrtpError::Setup(e.to_string()))
        };
        Ok(Self {
            outbound: context(local_key, false)?,
            inbound: context(remote_key, true)?,
            rtcp_tag_len: suite.profile().rtcp_auth_tag_len(),
        })
    }

    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.outbound
            .encrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Rejected(e.to_string()))
    }

    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.inbound
            .decrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Rejected(e.to_string()))
    }

    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.outbound
            .encrypt_rtcp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Rejected(e.to_string()))
    }

    /// Authenticates and decrypts an SRTCP packet. Only encrypted SRTCP (the E
    /// flag set) is accepted: we never negotiate UNENCRYPTED_SRTCP, and
    /// rtc-srtp 0.21 returns a packet whose E flag is clear without checking
    /// its authentication tag, so anyone could inject RTCP (and burn its index
    /// in the replay window) by clearing that bit. Found by the `srtp` fuzz
    /// target.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let trailer = self.rtcp_tag_len + SRTCP_INDEX_LEN;
        let Some(e_flag_at) = packet.len().checked_sub(trailer).filter(|&at| at >= 8) else {
            return Err(SrtpError::Rejected("SRTCP packet too short".into()));
        };
        if packet[e_flag_at] & 0x80 == 0 {
            return Err(SrtpError::Rejected(
                "unencrypted SRTCP (E flag clear) is not accepted".into(),
            ));
        }
        self.inbound
            .decrypt_rtcp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Rejected(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RtpSender, RtpView};
    use super::*;

    fn keys() -> ([u8; KEY_SALT_LEN], [u8; KEY_SALT_LEN]) {
        let mut a = [0u8; KEY_SALT_LEN];
        let mut b = [0u8; KEY_SALT_LEN];
        for i in 0..KEY_SALT_LEN {
            a[i] = i as u8;
            b[i] = 0xF0 ^ i as u8;
        }
        (a, b)
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut tx = RtpSender::new(0xCAFE, seq, 0, 0, 160);
        let mut buf = [0u8; 200];
        let n = tx.write_frame(&mut buf, &[0x55; 160], false).expect("fits");
        buf[..n].to_vec()
    }

    #[test]
    fn both_suites_round_trip_between_two_ends() {
        for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AesCm128HmacSha1_32] {
            let (ka, kb) = keys();
            let mut alice = SrtpSession::new(suite, &ka, &kb).expect("alice");
            let mut bob = SrtpSession::new(suite, &kb, &ka).expect("bob");
            let plain = rtp(1);
            let wire = alice.protect_rtp(&plain).expect("protect");
            let tag = if suite == SrtpSuite::AesCm128HmacSha1_80 { 10 } else { 4 };
            assert_eq!(wire.len(), plain.len() + tag);
            assert_eq!(wire[..12], plain[..12], "the header stays readable");
            assert_ne!(wire[12..12 + 160], plain[12..], "the payload is encrypted");
            assert_eq!(bob.unprotect_rtp(&wire).expect("unprotect"), plain);
            let view = RtpView::parse(&wire).expect("header parses");
            assert_eq!(view.ssrc, 0xCAFE);
        }
    }

    #[test]
    fn tampering_and_replay_are_rejected() {
        let (ka, kb) = keys();
        let mut alice = SrtpSession::new(SrtpSuite::AesCm128HmacSha1_80, &ka, &kb).expect("alice");
        let mut bob = SrtpSession::new(SrtpSuite::AesCm128HmacSha1_80, &kb, &ka).expect("bob");
        let wire = alice.protect_rtp(&rtp(7)).expect("protect");
        let mut tampered = wire.clone();
        tampered[20] ^= 1;
        assert!(bob.unprotect_rtp(&tampered).is_err(), "authentication catches a flipped bit");
        assert!(bob.unprotect_rtp(&wire).is_ok());
        assert!(bob.unprotect_rtp(&wire).is_err(), "a replayed packet is refused");
        let mut wrong =
            SrtpSession::new(SrtpSuite::AesCm128HmacSha1_80, &kb, &kb).expect("wrong key");
        assert!(wrong.unprotect_rtp(&alice.protect_rtp(&rtp(8)).expect("protect")).is_err());
        assert!(bob.unprotect_rtp(&[0x80, 0, 1]).is_err(), "short input");
    }

    #[test]
    fn rtcp_round_trips() {
        let (ka, kb) = keys();
        let mut alice = SrtpSession::new(SrtpSuite::AesCm128HmacSha1_80, &ka, &kb).expect("alice");
        let mut bob = SrtpSession::new(SrtpSuite::AesCm128HmacSha1_80, &kb, &ka).expect("bob");
        // A receiver report with no blocks from SSRC 0xCAFE.
        let rr = [0x80, 201, 0, 1, 0, 0, 0xCA, 0xFE];
        let wire = alice.protect_rtcp(&rr).expect("protect");
        assert_eq!(bob.unprotect_rtcp(&wire).expect("unprotect"), rr);
    }

    /// Found by the `srtp` fuzz target: a forged SRTCP packet (wrong tag)
    /// claiming an index must not make the genuine packet with that index a
    /// "duplicate", or anyone could silence a caller's reports by guessing
    /// indices.
    #[test]
    fn a_forged_srtcp_packet_does_not_burn_its_index() {
        for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AesCm128HmacSha1_32] {
            let (ka, kb) = keys();
            let mut alice = SrtpSession::new(suite, &ka, &kb).expect("alice");
            let mut bob = SrtpSession::new(suite, &kb, &ka).expect("bob");
            let rr = [0x80, 201, 0, 1, 0, 0, 0xCA, 0xFE];
            let wire = alice.protect_rtcp(&rr).expect("protect");
            // Same header and index, garbage payload and tag.
            let mut forged = wire.clone();
            let tag = if suite == SrtpSuite::AesCm128HmacSha1_80 { 10 } else { 4 };
            let end = forged.len();
            for b in &mut forged[end - tag..] {
                *b ^= 0x5A;
            }
            assert!(bob.unprotect_rtcp(&forged).is_err(), "a wrong tag is refused");
            assert_eq!(bob.unprotect_rtcp(&wire).expect("the genuine packet"), rr);
            // The same for SRTP.
            let plain = rtp(3);
            let wire = alice.protect_rtp(&plain).expect("protect");
            let mut forged = wire.clone();
            let end = forged.len();
            for b in &mut forged[end - tag..] {
                *b ^= 0x5A;
            }
            assert!(bob.unprotect_rtp(&forged).is_err(), "a wrong tag is refused");
            assert_eq!(bob.unprotect_rtp(&wire).expect("the genuine packet"), plain);
        }
    }

    /// The input the `srtp` fuzz target found: an RTCP packet with the E flag
    /// clear and a made-up tag was accepted unauthenticated, and the genuine
    /// packet with its index was then refused as a duplicate.
    #[test]
    fn unauthenticated_srtcp_with_the_e_flag_clear_is_refused() {
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut alice = SrtpSession::new(suite, &[7; 30], &[42; 30]).expect("alice");
        let mut bob = SrtpSession::new(suite, &[42; 30], &[7; 30]).expect("bob");
        let found: [u8; 23] = [
            179, 2, 42, 78, 78, 78, 10, 0, 78, 10, 0, 78, 0, 0, 0, 0, 0, 0, 255, 255, 255, 246, 179,
        ];
        assert!(bob.unprotect_rtcp(&found).is_err(), "no tag check passed");
        let wire = alice.protect_rtcp(&found).expect("protect");
        assert_eq!(bob.unprotect_rtcp(&wire).expect("the genuine packet"), found);
        // A genuine packet with its E flag cleared is refused too.
        let rr = [0x80, 201, 0, 1, 0, 0, 0xCA, 0xFE];
        let mut cleared = alice.protect_rtcp(&rr).expect("protect");
        let at = cleared.len() - 14;
        cleared[at] &= 0x7F;
        assert!(bob.unprotect_rtcp(&cleared).is_err());
        assert!(bob.unprotect_rtcp(&[0x80, 201, 0, 1]).is_err(), "short input");
    }
}
