//! SDP offer/answer (RFC 3264) for tutti's audio legs, over `ezk-sdp-types`.
//! Pure functions: an offer and a [`MediaPolicy`] go in, an answer and a [`Negotiated`]
//! summary in plain Rust types come out for the media layer; nothing here does IO.
//!
//! Policy decisions, in one place:
//! - Exactly one audio stream is accepted: the first audio m-line we can serve. Every
//!   other m-line (video, a second audio line, DTLS-SRTP, ...) is answered with port 0,
//!   in its original position, as RFC 3264 section 6 requires.
//! - The answer carries one codec (plus telephone-event), so the mixer never has to
//!   follow a codec switch that was not signalled.
//! - By default *our* preference order picks the codec ([`CodecOrder::Ours`]): the
//!   server pays the transcoding cost, so it chooses. [`CodecOrder::Offerer`] honours
//!   the offerer's order instead.
//! - telephone-event is only accepted at the clock rate of the chosen codec (RFC 4733
//!   section 2.1): 48000 with opus, 8000 otherwise.
//! - Legacy hold (`c=0.0.0.0`, RFC 2543) is read as "the offerer does not want to
//!   receive": it removes the receive half of the offered direction.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use bytesstr::BytesStr;
use ezk_sdp_types::{
    Connection, Direction, Fmtp, Media, MediaDescription, MediaType, Origin, RtpMap,
    SessionDescription, SrtpCrypto, SrtpKeyingMaterial, SrtpSuite, TaggedAddress, Time,
    TransportProtocol, UnknownAttribute,
};
use rand::CryptoRng;

/// Length of an SDES master key plus master salt for the AES_CM_128 suites (16 + 14).
pub const SRTP_KEY_SALT_LEN: usize = 30;

/// Largest SDP body we parse; larger bodies are rejected before parsing so a peer
/// cannot make us build huge structures.
pub const MAX_SDP_LEN: usize = 16 * 1024;

/// Payload type we use for opus in our own offers.
const OFFER_PT_OPUS: u8 = 96;
/// Payload type we use for telephone-event/48000 in our own offers.
const OFFER_PT_TEL_48K: u8 = 100;
/// Payload type we use for telephone-event/8000 in our own offers.
const OFFER_PT_TEL_8K: u8 = 101;
/// RFC 3389 comfort noise in our offers: its static payload type (RFC 3551), at 8000 Hz.
const OFFER_PT_CN: u8 = 13;

/// Errors of offer/answer. [`SdpError::sip_status`] gives the SIP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The peer sent something that is not valid SDP.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// The SDP body is larger than [`MAX_SDP_LEN`].
    #[error("SDP body of {0} bytes is too large")]
    TooLarge(usize),
    /// No audio stream offers a codec our policy allows.
    #[error("no common codec")]
    NoCommonCodec,
    /// The only usable audio streams are SRTP without a crypto suite we support,
    /// or plain RTP while our policy requires SRTP.
    #[error("no acceptable SRTP crypto parameters")]
    NoUsableCrypto,
    /// The SDP has no audio m-line at all.
    #[error("no audio stream offered")]
    NoAudio,
    /// The connection address is a host name; resolving it is not SDP's job.
    #[error("connection address {0} is not an IP address")]
    UnresolvedAddress(String),
    /// An answer that does not fit the offer it answers (RFC 3264 section 6).
    #[error("answer does not match our offer: {0}")]
    AnswerMismatch(&'static str),
}

impl SdpError {
    /// The SIP status code a UAS answers an offer failing this way with.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Malformed(_) => 400,
            SdpError::TooLarge(_) => 413,
            SdpError::NoCommonCodec
            | SdpError::UnresolvedAddress(_)
            | SdpError::NoUsableCrypto
            | SdpError::NoAudio
            | SdpError::AnswerMismatch(_) => 488,
        }
    }
}

/// The audio codecs tutti can encode and decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// opus/48000/2 (RFC 7587).
    Opus,
    /// G722/8000 (the RTP clock is 8000 although the audio is 16 kHz, RFC 3551).
    G722,
    /// PCMU/8000, G.711 mu-law.
    Pcmu,
    /// PCMA/8000, G.711 A-law.
    Pcma,
}

impl Codec {
    /// All codecs, in tutti's default preference order.
    pub const ALL: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];

    /// The encoding name used in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::G722 => "G722",
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            Codec::G722 | Codec::Pcmu | Codec::Pcma => 8000,
        }
    }

    /// The static payload type (RFC 3551), if the codec has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus => None,
        }
    }

    fn offer_payload_type(self) -> u8 {
        self.static_payload_type().unwrap_or(OFFER_PT_OPUS)
    }

    /// What we ask of the peer's encoder in `a=fmtp` (RFC 7587 section 6.1):
    /// for Opus, in-band FEC (the jitter buffer rebuilds a lost frame from
    /// it) and DTX (a silent phone then sends a packet every 400 ms instead of
    /// every 20 ms, and tutti decodes almost nothing for it).
    fn fmtp_params(self) -> Option<&'static str> {
        match self {
            Codec::Opus => Some("useinbandfec=1;usedtx=1"),
            _ => None,
        }
    }

    fn rtpmap_params(self) -> Option<&'static str> {
        match self {
            Codec::Opus => Some("2"),
            _ => None,
        }
    }

    /// Whether an rtpmap (name, rate, params) describes this codec.
    fn matches(self, name: &str, rate: u32, params: Option<&str>) -> bool {
        if !name.eq_ignore_ascii_case(self.encoding_name()) || rate != self.clock_rate() {
            return false;
        }
        match self {
            // RFC 7587 requires "/2"; tolerate its absence, refuse anything else.
            Codec::Opus => matches!(params.map(str::trim), None | Some("2")),
            _ => matches!(params.map(str::trim), None | Some("1")),
        }
    }

    fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            9 => Some(Codec::G722),
            _ => None,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// Whose order of preference picks the codec when several are common.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecOrder {
    /// Our [`MediaPolicy::codecs`] order (the default: the server pays for transcoding).
    #[default]
    Ours,
    /// The order of the formats on the offer's m-line.
    Offerer,
}

/// How SRTP (SDES, RFC 4568) is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only; RTP/SAVP streams are rejected.
    Disabled,
    /// Accept RTP/SAVP and RTP/AVP offers; our own offers are RTP/AVP.
    #[default]
    Optional,
    /// RTP/SAVP only; our own offers are RTP/SAVP; RTP/AVP streams are rejected.
    Required,
}

/// SRTP protection profiles tutti supports, in our order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// AES_CM_128_HMAC_SHA1_80
    AesCm128HmacSha1_80,
    /// AES_CM_128_HMAC_SHA1_32
    AesCm128HmacSha1_32,
}

impl SrtpProfile {
    const PREFERENCE: [SrtpProfile; 2] =
        [SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AesCm128HmacSha1_32];

    fn suite(self) -> SrtpSuite {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => SrtpSuite::AES_CM_128_HMAC_SHA1_80,
            SrtpProfile::AesCm128HmacSha1_32 => SrtpSuite::AES_CM_128_HMAC_SHA1_32,
        }
    }

    fn from_suite(suite: &SrtpSuite) -> Option<Self> {
        match suite {
            SrtpSuite::AES_CM_128_HMAC_SHA1_80 => Some(SrtpProfile::AesCm128HmacSha1_80),
            SrtpSuite::AES_CM_128_HMAC_SHA1_32 => Some(SrtpProfile::AesCm128HmacSha1_32),
            _ => None,
        }
    }
}

/// The SDES keys of one negotiated SRTP stream.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The crypto suite both sides use.
    pub profile: SrtpProfile,
    /// Our master key and salt (we protect what we send with it).
    pub local_key: [u8; SRTP_KEY_SALT_LEN],
    /// The peer's master key and salt (we unprotect what we receive with it).
    pub remote_key: [u8; SRTP_KEY_SALT_LEN],
}

impl fmt::Debug for SrtpKeys {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeys").field("profile", &self.profile).finish_non_exhaustive()
    }
}

/// Media direction from one side's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaDirection {
    /// Send and receive.
    #[default]
    SendRecv,
    /// Send only.
    SendOnly,
    /// Receive only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl MediaDirection {
    fn from_parts(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => MediaDirection::SendRecv,
            (true, false) => MediaDirection::SendOnly,
            (false, true) => MediaDirection::RecvOnly,
            (false, false) => MediaDirection::Inactive,
        }
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::SendOnly)
    }

    /// Whether this side receives media.
    pub fn receives(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::RecvOnly)
    }

    /// The same stream seen from the other side.
    pub fn flipped(self) -> Self {
        Self::from_parts(self.receives(), self.sends())
    }

    fn intersect(self, other: Self) -> Self {
        Self::from_parts(self.sends() && other.sends(), self.receives() && other.receives())
    }

    fn to_sdp(self) -> Direction {
        match self {
            MediaDirection::SendRecv => Direction::SendRecv,
            MediaDirection::SendOnly => Direction::SendOnly,
            MediaDirection::RecvOnly => Direction::RecvOnly,
            MediaDirection::Inactive => Direction::Inactive,
        }
    }

    fn from_sdp(direction: Direction) -> Self {
        match direction {
            Direction::SendRecv => MediaDirection::SendRecv,
            Direction::SendOnly => MediaDirection::SendOnly,
            Direction::RecvOnly => MediaDirection::RecvOnly,
            Direction::Inactive => MediaDirection::Inactive,
        }
    }
}

/// What we are willing to negotiate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Allowed codecs, most preferred first. Codecs not listed are never chosen.
    pub codecs: Vec<Codec>,
    /// Whose preference picks among common codecs.
    pub order: CodecOrder,
    /// Our packetization time in milliseconds: what we ask to receive (`a=ptime`) and
    /// what we send when the peer states no preference.
    pub ptime_ms: u32,
    /// Accept and offer RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// Accept and offer RFC 3389 comfort noise (`CN/8000`) beside an 8 kHz-clock
    /// codec, so that silence can go out as a comfort-noise packet now and then
    /// instead of a packet every 20 ms. Never with Opus (it has DTX of its own).
    pub comfort_noise: bool,
    /// Accept rtcp-mux when offered, and offer it ourselves.
    pub rtcp_mux: bool,
    /// SRTP use.
    pub srtp: SrtpPolicy,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        MediaPolicy {
            codecs: Codec::ALL.to_vec(),
            order: CodecOrder::Ours,
            ptime_ms: 20,
            telephone_event: true,
            comfort_noise: true,
            rtcp_mux: true,
            srtp: SrtpPolicy::Optional,
        }
    }
}

/// Our side of the stream: where we receive and which SDP session we describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// The address we receive RTP on (written in `c=` and `o=`).
    pub address: IpAddr,
    /// The port we receive RTP on; RTCP is on the next port unless rtcp-mux is used.
    pub rtp_port: u16,
    /// The `o=` session id; stays the same for the whole dialog.
    pub session_id: u64,
    /// The `o=` version; the caller increments it for every new offer or answer that
    /// changes the session (RFC 3264 section 8).
    pub session_version: u64,
    /// The direction we want (for example `SendOnly` to put the peer on hold).
    pub direction: MediaDirection,
}

/// The result of a negotiation, in the terms the media layer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP (the address may be `0.0.0.0` for legacy hold; then
    /// `direction` does not send).
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP (equal to `remote_rtp` with rtcp-mux).
    pub remote_rtcp: SocketAddr,
    /// The codec both sides use.
    pub codec: Codec,
    /// Payload type to put on the RTP packets we send (the peer's number).
    pub payload_type: u8,
    /// Payload type the peer puts on the packets it sends us (our number).
    pub recv_payload_type: u8,
    /// telephone-event payload type for what we send, at the codec's clock rate.
    pub telephone_event: Option<u8>,
    /// telephone-event payload type the peer uses towards us.
    pub recv_telephone_event: Option<u8>,
    /// Comfort-noise (RFC 3389) payload type for what we send, when both sides
    /// agreed to it.
    pub comfort_noise: Option<u8>,
    /// Comfort-noise payload type the peer uses towards us.
    pub recv_comfort_noise: Option<u8>,
    /// The Opus peer asked for DTX (`usedtx=1` in its `a=fmtp`, RFC 7587
    /// section 6.1: a receiver's preference) and the policy sends silence as
    /// comfort noise: silence may go out as DTX.
    pub send_dtx: bool,
    /// Packetization time in ms for what we send.
    pub ptime_ms: u32,
    /// Our direction: what we may send and should expect to receive.
    pub direction: MediaDirection,
    /// SDES keys, when the stream is RTP/SAVP.
    pub srtp: Option<SrtpKeys>,
    /// RTP and RTCP share one port.
    pub rtcp_mux: bool,
}

/// An answer to send and what it settles.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The SDP answer to put in the response (or the ACK for a late offer).
    pub sdp: SessionDescription,
    /// The negotiated stream.
    pub negotiated: Negotiated,
}

/// An offer we made, with what is needed to read its answer.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The SDP offer to send.
    pub sdp: SessionDescription,
    /// The state [`apply_answer`] needs (payload types, our SRTP keys).
    pub pending: PendingOffer,
}

/// What we offered, kept until the answer comes.
#[derive(Clone)]
pub struct PendingOffer {
    policy: MediaPolicy,
    direction: MediaDirection,
    /// (payload type, codec) in the order offered.
    codecs: Vec<(u8, Codec)>,
    /// (tag, profile, our key) for each a=crypto line offered.
    crypto: Vec<(u32, SrtpProfile, [u8; SRTP_KEY_SALT_LEN])>,
    proto: TransportProtocol,
}

impl fmt::Debug for PendingOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingOffer")
            .field("codecs", &self.codecs)
            .field("direction", &self.direction)
            .field("proto", &self.proto)
            .finish_non_exhaustive()
    }
}

/// Parses an SDP body, with the checks `ezk-sdp-types` leaves out (size, `v=0` first).
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge(text.len()));
    }
    let first = text.trim_start().lines().next().unwrap_or("").trim_end();
    if first != "v=0" {
        return Err(SdpError::Malformed("SDP does not start with v=0".into()));
    }
    SessionDescription::parse(&BytesStr::from(text)).map_err(|e| SdpError::Malformed(e.to_string()))
}

/// Answers an SDP offer given as text. See [`answer`].
pub fn answer_str(
    offer: &str,
    policy: &MediaPolicy,
    local: &LocalMedia,
) -> Result<Answer, SdpError> {
    answer(&parse(offer)?, policy, local)
}

/// Answers an offer (RFC 3264 section 6), generating SRTP keys from the thread RNG.
pub fn answer(
    offer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
) -> Result<Answer, SdpError> {
    answer_with_rng(offer, policy, local, &mut rand::rng())
}

/// Answers an offer with SRTP keys drawn from `rng` (tests pass a seeded one).
pub fn answer_with_rng<R: CryptoRng + ?Sized>(
    offer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
    rng: &mut R,
) -> Result<Answer, SdpError> {
    let mut chosen: Option<(usize, Negotiated, MediaDescription)> = None;
    let mut saw_audio = false;
    let mut first_failure: Option<SdpError> = None;

    for (index, md) in offer.media_descriptions.iter().enumerate() {
        if chosen.is_some() || md.media.media_type != MediaType::Audio || md.media.port == 0 {
            continue;
        }
        saw_audio = true;
        match answer_audio(offer, md, policy, local, rng) {
            Ok((negotiated, answer_md)) => chosen = Some((index, negotiated, answer_md)),
            Err(e) => {
                if first_failure.is_none() || e == SdpError::NoCommonCodec {
                    // NoCommonCodec is the most telling reason for a 488.
                    first_failure = Some(e);
                }
            }
        }
    }

    let Some((chosen_index, negotiated, answer_md)) = chosen else {
        return Err(if saw_audio {
            first_failure.unwrap_or(SdpError::NoCommonCodec)
        } else {
            SdpError::NoAudio
        });
    };

    // Same number and order of m-lines as the offer (RFC 3264 section 6).
    let mut media_descriptions: Vec<MediaDescription> =
        offer.media_descriptions.iter().map(rejected).collect();
    if let Some(slot) = media_descriptions.get_mut(chosen_index) {
        *slot = answer_md;
    }

    let mut sdp = session_skeleton(local);
    sdp.media_descriptions = media_descriptions;
    Ok(Answer { sdp, negotiated })
}

/// An m-line answering `offered` with port 0, keeping its media type, proto and formats
/// so the answer still lines up with the offer.
fn rejected(offered: &MediaDescription) -> MediaDescription {
    let mut md = MediaDescription::rejected(offered.media.media_type);
    md.media.proto = offered.media.proto.clone();
    md.media.fmts = offered.media.fmts.iter().copied().take(1).collect();
    if md.media.fmts.is_empty() {
        md.media.fmts.push(0);
    }
    md
}

fn session_skeleton(local: &LocalMedia) -> SessionDescription {
    let mut sdp = empty_session();
    sdp.origin = Origin {
        username: "tutti".into(),
        session_id: local.session_id.to_string().into(),
        session_version: local.session_version.to_string().into(),
        address: TaggedAddress::from(local.address),
    };
    sdp.connection =
        Some(Connection { address: TaggedAddress::from(local.address), ttl: None, num: None });
    sdp
}

fn empty_session() -> SessionDescription {
    SessionDescription {
        origin: Origin {
            username: "-".into(),
            session_id: "0".into(),
            session_version: "0".into(),
            address: TaggedAddress::IP4(Ipv4Addr::UNSPECIFIED),
        },
        name: "tutti".into(),
        connection: None,
        bandwidth: vec![],
        time: Time { start: 0, stop: 0 },
        direction: Direction::SendRecv,
        group: vec![],
        extmap: vec![],
        extmap_allow_mixed: false,
        ice_lite: false,
        ice_options: Default::default(),
        ice_ufrag: None,
        ice_pwd: None,
        setup: None,
        fingerprint: vec![],
        attributes: vec![],
        media_descriptions: vec![],
    }
}

/// Whether the transport protocol is one we serve, and whether it is SRTP.
fn classify_proto(proto: &TransportProtocol) -> Option<bool> {
    match proto {
        TransportProtocol::RtpAvp | TransportProtocol::RtpAvpf => Some(false),
        TransportProtocol::RtpSavp | TransportProtocol::RtpSavpf => Some(true),
        _ => None,
    }
}

/// The formats an m-line lists that we understand.
struct OfferedFormats {
    /// (payload type, codec), in m-line order.
    codecs: Vec<(u8, Codec)>,
    /// (payload type, clock rate) of each telephone-event, in m-line order.
    events: Vec<(u8, u32)>,
    /// (payload type, clock rate) of each comfort-noise format, in m-line order.
    comfort_noise: Vec<(u8, u32)>,
}

fn offered_formats(md: &MediaDescription) -> OfferedFormats {
    let mut codecs = Vec::new();
    let mut events = Vec::new();
    let mut comfort_noise = Vec::new();
    for &pt in &md.media.fmts {
        match md.rtpmap.iter().find(|m| m.payload == pt) {
            Some(map) => {
                let name = map.encoding.as_str().trim();
                let params = map.params.as_ref().map(|p| p.as_str());
                if name.eq_ignore_ascii_case("telephone-event") {
                    events.push((pt, map.clock_rate));
                } else if name.eq_ignore_ascii_case("CN") {
                    comfort_noise.push((pt, map.clock_rate));
                } else if let Some(codec) =
                    Codec::ALL.into_iter().find(|c| c.matches(name, map.clock_rate, params))
                {
                    codecs.push((pt, codec));
                }
            }
            None => {
                if let Some(codec) = Codec::from_static_payload_type(pt) {
                    codecs.push((pt, codec));
                } else if pt == OFFER_PT_CN {
                    comfort_noise.push((pt, 8000));
                }
            }
        }
    }
    OfferedFormats { codecs, events, comfort_noise }
}

fn pick_codec(offered: &[(u8, Codec)], policy: &MediaPolicy) -> Option<(u8, Codec)> {
    match policy.order {
        CodecOrder::Ours => {
            policy.codecs.iter().find_map(|want| offered.iter().find(|(_, c)| c == want).copied())
        }
        CodecOrder::Offerer => offered.iter().find(|(_, c)| policy.codecs.contains(c)).copied(),
    }
}

fn attribute<'a>(
    md: &'a MediaDescription,
    sdp: &'a SessionDescription,
    name: &str,
) -> Option<&'a str> {
    md.attributes
        .iter()
        .chain(sdp.attributes.iter())
        .find(|a| a.name.as_str().eq_ignore_ascii_case(name))
        .and_then(|a| a.value.as_ref())
        .map(|v| v.as_str().trim())
}

fn numeric_attribute(
    md: &MediaDescription,
    sdp: &SessionDescription,
    name: &str,
) -> Result<Option<u32>, SdpError> {
    match attribute(md, sdp, name) {
        None => Ok(None),
        Some(v) => {
            // Some phones write fractional ptimes (a=ptime:20.0); keep the integer part.
            let int = v.split('.').next().unwrap_or(v);
            int.parse::<u32>().map(Some).map_err(|_| SdpError::Malformed(format!("a={name}:{v}")))
        }
    }
}

/// The packetization time we send with: the peer's a=ptime if stated, else ours,
/// capped by its a=maxptime, rounded down to whole 10 ms frames within 10..=120.
fn send_ptime(
    md: &MediaDescription,
    sdp: &SessionDescription,
    policy: &MediaPolicy,
) -> Result<u32, SdpError> {
    let mut ptime = numeric_attribute(md, sdp, "ptime")?.unwrap_or(policy.ptime_ms);
    if let Some(max) = numeric_attribute(md, sdp, "maxptime")? {
        ptime = ptime.min(max);
    }
    Ok((ptime / 10 * 10).clamp(10, 120))
}

fn ip_of(address: &TaggedAddress) -> Result<IpAddr, SdpError> {
    match address {
        TaggedAddress::IP4(ip) => Ok(IpAddr::V4(*ip)),
        TaggedAddress::IP6(ip) => Ok(IpAddr::V6(*ip)),
        TaggedAddress::IP4FQDN(host) | TaggedAddress::IP6FQDN(host) => {
            Err(SdpError::UnresolvedAddress(host.to_string()))
        }
    }
}

/// The remote RTP address, and whether it is the legacy hold address 0.0.0.0.
fn remote_address(
    md: &MediaDescription,
    sdp: &SessionDescription,
) -> Result<(IpAddr, bool), SdpError> {
    let connection = md
        .connection
        .as_ref()
        .or(sdp.connection.as_ref())
        .ok_or_else(|| SdpError::Malformed("no c= line for the audio stream".into()))?;
    let ip = ip_of(&connection.address)?;
    Ok((ip, ip.is_unspecified()))
}

fn remote_rtcp(md: &MediaDescription, rtp: SocketAddr, mux: bool) -> Result<SocketAddr, SdpError> {
    if mux {
        return Ok(rtp);
    }
    if let Some(rtcp) = &md.rtcp {
        let ip = match &rtcp.address {
            Some(address) => ip_of(address)?,
            None => rtp.ip(),
        };
        return Ok(SocketAddr::new(ip, rtcp.port));
    }
    let port = rtp
        .port()
        .checked_add(1)
        .ok_or_else(|| SdpError::Malformed("RTP port 65535 leaves no port for RTCP".into()))?;
    Ok(SocketAddr::new(rtp.ip(), port))
}

fn decode_key(material: &SrtpKeyingMaterial) -> Option<[u8; SRTP_KEY_SALT_LEN]> {
    if material.mki.is_some() {
        // An MKI would have to be carried in every packet; the media layer does not.
        return None;
    }
    let bytes = STANDARD_PAD_INDIFFERENT.decode(material.key_and_salt.as_str()).ok()?;
    bytes.try_into().ok()
}

/// The first offered crypto line with our most preferred supported suite.
fn pick_crypto(offered: &[SrtpCrypto]) -> Option<(u32, SrtpProfile, [u8; SRTP_KEY_SALT_LEN])> {
    SrtpProfile::PREFERENCE.into_iter().find_map(|profile| {
        offered.iter().find_map(|crypto| {
            if SrtpProfile::from_suite(&crypto.suite) != Some(profile) || !crypto.params.is_empty()
            {
                // Session parameters (UNENCRYPTED_SRTP, FEC, KDR...) are not supported.
                return None;
            }
            let [material] = crypto.keys.as_slice() else {
                return None;
            };
            decode_key(material).map(|key| (crypto.tag, profile, key))
        })
    })
}

fn generate_key<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; SRTP_KEY_SALT_LEN] {
    let mut key = [0u8; SRTP_KEY_SALT_LEN];
    rng.fill_bytes(&mut key);
    key
}

fn crypto_line(tag: u32, profile: SrtpProfile, key: &[u8; SRTP_KEY_SALT_LEN]) -> SrtpCrypto {
    SrtpCrypto {
        tag,
        suite: profile.suite(),
        keys: vec![SrtpKeyingMaterial {
            key_and_salt: STANDARD.encode(key).into(),
            lifetime: None,
            mki: None,
        }],
        params: vec![],
    }
}

fn rtpmap_for(pt: u8, codec: Codec) -> RtpMap {
    RtpMap {
        payload: pt,
        encoding: codec.encoding_name().into(),
        clock_rate: codec.clock_rate(),
        params: codec.rtpmap_params().map(BytesStr::from_static),
    }
}

fn telephone_event_lines(md: &mut MediaDescription, pt: u8, rate: u32) {
    md.media.fmts.push(pt);
    md.rtpmap.push(RtpMap {
        payload: pt,
        encoding: "telephone-event".into(),
        clock_rate: rate,
        params: None,
    });
    md.fmtp.push(Fmtp { format: pt, params: "0-16".into() });
}

/// Whether comfort noise may go with `codec`: an 8 kHz RTP clock (G.711, and
/// G.722 whose clock is 8 kHz by RFC 3551); not Opus, whose DTX does the job.
fn takes_comfort_noise(codec: Codec) -> bool {
    codec != Codec::Opus && codec.clock_rate() == 8000
}

/// The comfort-noise payload type to use with `codec`, among those listed.
fn pick_comfort_noise(listed: &[(u8, u32)], codec: Codec, policy: &MediaPolicy) -> Option<u8> {
    if !policy.comfort_noise || !takes_comfort_noise(codec) {
        return None;
    }
    listed.iter().find(|(_, rate)| *rate == codec.clock_rate()).map(|(pt, _)| *pt)
}

/// Whether `md`'s `a=fmtp` for `pt` asks us for Opus DTX (`usedtx=1`), and
/// `policy` sends silence as comfort noise.
fn asks_for_dtx(md: &MediaDescription, pt: u8, codec: Codec, policy: &MediaPolicy) -> bool {
    let asks = |params: &str| {
        params.split(';').any(|param| {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            key.trim().eq_ignore_ascii_case("usedtx") && value.trim() == "1"
        })
    };
    policy.comfort_noise
        && codec == Codec::Opus
        && md.fmtp.iter().any(|f| f.format == pt && asks(f.params.as_str()))
}

fn comfort_noise_lines(md: &mut MediaDescription, pt: u8) {
    md.media.fmts.push(pt);
    md.rtpmap.push(RtpMap { payload: pt, encoding: "CN".into(), clock_rate: 8000, params: None });
}

fn ptime_attribute(ms: u32) -> UnknownAttribute {
    UnknownAttribute { name: "ptime".into(), value: Some(ms.to_string().into()) }
}

fn audio_line(
    local: &LocalMedia,
    proto: TransportProtocol,
    direction: MediaDirection,
) -> MediaDescription {
    let mut md = MediaDescription::rejected(MediaType::Audio);
    md.media = Media {
        media_type: MediaType::Audio,
        port: local.rtp_port,
        ports_num: None,
        proto,
        fmts: vec![],
    };
    md.direction = direction.to_sdp();
    md
}

fn answer_audio<R: CryptoRng + ?Sized>(
    offer: &SessionDescription,
    md: &MediaDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
    rng: &mut R,
) -> Result<(Negotiated, MediaDescription), SdpError> {
    let is_srtp = classify_proto(&md.media.proto).ok_or(SdpError::NoCommonCodec)?;
    match (is_srtp, policy.srtp) {
        (true, SrtpPolicy::Disabled) | (false, SrtpPolicy::Required) => {
            return Err(SdpError::NoUsableCrypto);
        }
        _ => {}
    }

    let OfferedFormats { codecs, events, comfort_noise } = offered_formats(md);
    let (pt, codec) = pick_codec(&codecs, policy).ok_or(SdpError::NoCommonCodec)?;
    let telephone_event = if policy.telephone_event {
        events.iter().find(|(_, rate)| *rate == codec.clock_rate()).map(|(pt, _)| *pt)
    } else {
        None
    };
    let comfort_noise = pick_comfort_noise(&comfort_noise, codec, policy);

    let srtp = if is_srtp {
        let (tag, profile, remote_key) = pick_crypto(&md.crypto).ok_or(SdpError::NoUsableCrypto)?;
        Some((tag, profile, remote_key, generate_key(rng)))
    } else {
        None
    };

    let (ip, legacy_hold) = remote_address(md, offer)?;
    let mut offered_direction = MediaDirection::from_sdp(md.direction);
    if legacy_hold {
        offered_direction = MediaDirection::from_parts(offered_direction.sends(), false);
    }
    let direction = offered_direction.flipped().intersect(local.direction);

    let rtcp_mux = policy.rtcp_mux && md.rtcp_mux;
    let remote_rtp = SocketAddr::new(ip, md.media.port);
    let remote_rtcp = remote_rtcp(md, remote_rtp, rtcp_mux)?;
    let ptime_ms = send_ptime(md, offer, policy)?;

    let mut answer_md = audio_line(local, md.media.proto.clone(), direction);
    answer_md.media.fmts.push(pt);
    answer_md.rtpmap.push(rtpmap_for(pt, codec));
    if let Some(params) = codec.fmtp_params() {
        answer_md.fmtp.push(Fmtp { format: pt, params: params.into() });
    }
    if let Some(te) = telephone_event {
        telephone_event_lines(&mut answer_md, te, codec.clock_rate());
    }
    if let Some(cn) = comfort_noise {
        comfort_noise_lines(&mut answer_md, cn);
    }
    answer_md.rtcp_mux = rtcp_mux;
    answer_md.attributes.push(ptime_attribute(policy.ptime_ms));
    if let Some((tag, profile, _, local_key)) = &srtp {
        answer_md.crypto.push(crypto_line(*tag, *profile, local_key));
    }

    let negotiated = Negotiated {
        remote_rtp,
        remote_rtcp,
        codec,
        payload_type: pt,
        recv_payload_type: pt,
        telephone_event,
        recv_telephone_event: telephone_event,
        comfort_noise,
        recv_comfort_noise: comfort_noise,
        send_dtx: asks_for_dtx(md, pt, codec, policy),
        ptime_ms,
        direction,
        srtp: srtp.map(|(_, profile, remote_key, local_key)| SrtpKeys {
            profile,
            local_key,
            remote_key,
        }),
        rtcp_mux,
    };
    Ok((negotiated, answer_md))
}

/// Builds our offer (for a late offer: INVITE without SDP, offer in our 200, answer in
/// the ACK; also for re-INVITEs and outbound calls). SRTP keys come from the thread RNG.
pub fn offer(policy: &MediaPolicy, local: &LocalMedia) -> Offer {
    offer_with_rng(policy, local, &mut rand::rng())
}

/// Builds our offer with SRTP keys drawn from `rng`.
pub fn offer_with_rng<R: CryptoRng + ?Sized>(
    policy: &MediaPolicy,
    local: &LocalMedia,
    rng: &mut R,
) -> Offer {
    let proto = if policy.srtp == SrtpPolicy::Required {
        TransportProtocol::RtpSavp
    } else {
        TransportProtocol::RtpAvp
    };
    let mut md = audio_line(local, proto.clone(), local.direction);

    let mut codecs: Vec<(u8, Codec)> = Vec::new();
    for &codec in &policy.codecs {
        if codecs.iter().any(|(_, c)| *c == codec) {
            continue;
        }
        let pt = codec.offer_payload_type();
        codecs.push((pt, codec));
        md.media.fmts.push(pt);
        md.rtpmap.push(rtpmap_for(pt, codec));
        if let Some(params) = codec.fmtp_params() {
            md.fmtp.push(Fmtp { format: pt, params: params.into() });
        }
    }
    if policy.telephone_event {
        if codecs.iter().any(|(_, c)| c.clock_rate() == 48000) {
            telephone_event_lines(&mut md, OFFER_PT_TEL_48K, 48000);
        }
        if codecs.iter().any(|(_, c)| c.clock_rate() == 8000) {
            telephone_event_lines(&mut md, OFFER_PT_TEL_8K, 8000);
        }
    }
    if policy.comfort_noise && codecs.iter().any(|(_, c)| takes_comfort_noise(*c)) {
        comfort_noise_lines(&mut md, OFFER_PT_CN);
    }
    md.rtcp_mux = policy.rtcp_mux;
    md.attributes.push(ptime_attribute(policy.ptime_ms));

    let mut crypto = Vec::new();
    if policy.srtp == SrtpPolicy::Required {
        for (tag, profile) in (1u32..).zip(SrtpProfile::PREFERENCE) {
            let key = generate_key(rng);
            md.crypto.push(crypto_line(tag, profile, &key));
            crypto.push((tag, profile, key));
        }
    }

    let mut sdp = session_skeleton(local);
    sdp.media_descriptions.push(md);
    Offer {
        sdp,
        pending: PendingOffer {
            policy: policy.clone(),
            direction: local.direction,
            codecs,
            crypto,
            proto,
        },
    }
}

/// Applies the peer's answer (given as text) to our offer. See [`apply_answer`].
pub fn apply_answer_str(pending: &PendingOffer, answer: &str) -> Result<Negotiated, SdpError> {
    apply_answer(pending, &parse(answer)?)
}

/// Applies the peer's answer to the offer we made (RFC 3264 section 7).
pub fn apply_answer(
    pending: &PendingOffer,
    answer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    // We offer exactly one m-line, so the answer must have exactly one.
    let [md] = answer.media_descriptions.as_slice() else {
        return Err(SdpError::AnswerMismatch("answer must have exactly one m-line"));
    };
    if md.media.media_type != MediaType::Audio {
        return Err(SdpError::AnswerMismatch("answer m-line is not audio"));
    }
    if md.media.port == 0 {
        return Err(SdpError::NoCommonCodec);
    }
    if classify_proto(&md.media.proto) != classify_proto(&pending.proto) {
        return Err(SdpError::AnswerMismatch("answer changed the transport protocol"));
    }

    let OfferedFormats { codecs, events, comfort_noise } = offered_formats(md);
    // The answerer lists what it will use; take its first codec that we offered.
    let (pt, codec) = codecs
        .iter()
        .find(|(_, c)| pending.codecs.iter().any(|(_, ours)| ours == c))
        .copied()
        .ok_or(SdpError::NoCommonCodec)?;
    let recv_payload_type = pending
        .codecs
        .iter()
        .find(|(_, c)| *c == codec)
        .map(|(pt, _)| *pt)
        .ok_or(SdpError::NoCommonCodec)?;

    let rate = codec.clock_rate();
    let (telephone_event, recv_telephone_event) = if pending.policy.telephone_event {
        let ours = if rate == 48000 { OFFER_PT_TEL_48K } else { OFFER_PT_TEL_8K };
        match events.iter().find(|(_, r)| *r == rate) {
            Some((theirs, _)) => (Some(*theirs), Some(ours)),
            None => (None, None),
        }
    } else {
        (None, None)
    };
    // We offered CN under its static number; the answer's number is theirs.
    let comfort_noise = pick_comfort_noise(&comfort_noise, codec, &pending.policy);
    let recv_comfort_noise = comfort_noise.map(|_| OFFER_PT_CN);

    let srtp = if pending.crypto.is_empty() {
        None
    } else {
        let [crypto] = md.crypto.as_slice() else {
            return Err(SdpError::NoUsableCrypto);
        };
        let (_, profile, local_key) = pending
            .crypto
            .iter()
            .find(|(tag, profile, _)| {
                *tag == crypto.tag && SrtpProfile::from_suite(&crypto.suite) == Some(*profile)
            })
            .ok_or(SdpError::NoUsableCrypto)?;
        if !crypto.params.is_empty() {
            return Err(SdpError::NoUsableCrypto);
        }
        let [material] = crypto.keys.as_slice() else {
            return Err(SdpError::NoUsableCrypto);
        };
        let remote_key = decode_key(material).ok_or(SdpError::NoUsableCrypto)?;
        Some(SrtpKeys { profile: *profile, local_key: *local_key, remote_key })
    };

    let (ip, legacy_hold) = remote_address(md, answer)?;
    let mut answered = MediaDirection::from_sdp(md.direction);
    if legacy_hold {
        answered = MediaDirection::from_parts(answered.sends(), false);
    }
    let direction = answered.flipped().intersect(pending.direction);

    let rtcp_mux = pending.policy.rtcp_mux && md.rtcp_mux;
    let remote_rtp = SocketAddr::new(ip, md.media.port);
    let remote_rtcp = remote_rtcp(md, remote_rtp, rtcp_mux)?;
    let ptime_ms = send_ptime(md, answer, &pending.policy)?;

    Ok(Negotiated {
        remote_rtp,
        remote_rtcp,
        codec,
        payload_type: pt,
        recv_payload_type,
        telephone_event,
        recv_telephone_event,
        comfort_noise,
        recv_comfort_noise,
        send_dtx: asks_for_dtx(md, pt, codec, &pending.policy),
        ptime_ms,
        direction,
        srtp,
        rtcp_mux,
    })
}

#[cfg(test)]
mod tests;
