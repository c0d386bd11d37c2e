//! Test phones and a TCP 4011 client, for end-to-end tests against the real
//! binary: phones are tutti's own SIP user agent and media legs, so they speak
//! real SIP and RTP; what they hear is checked with a Goertzel filter.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tutti_media::codec::Codec;
use tutti_media::io::{LegIo, LegNotice};
use tutti_media::leg::Leg;
use tutti_media::ports::PortPool;
use tutti_media::tone::goertzel_amplitude;
use tutti_sip::sdp::{LocalMedia, MediaDirection};
use tutti_sip::ua::{CallProgress, PlaceCall, SipConfig, SipUa, UaEvent};

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A logged-in TCP 4011 client.
pub struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Event lines that arrived while waiting for answers.
    pub events: Vec<String>,
}

impl Control {
    pub fn connect(addr: SocketAddr, password: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect 4011");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let mut control = Self {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            events: Vec::new(),
        };
        assert_eq!(control.command(&format!("LOGIN,{password}"), "LOGIN"), ["LOGIN,OK"]);
        control
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read 4011");
        line.trim_end().to_owned()
    }

    /// Sends a command and returns its answer lines: the data lines of a
    /// listing, then `<CMD>,OK` (or the error). Other lines are events, kept
    /// for [`Control::event`]: a NEWCONF event (`NEWCONF,<guid>,...`) is not
    /// the NEWCONF answer (`NEWCONF,OK`).
    pub fn command(&mut self, command: &str, name: &str) -> Vec<String> {
        write!(self.writer, "{command}\r\n").expect("write 4011");
        let listing = matches!(name, "LISTUSER" | "LISTCONF" | "GETCONF");
        let mut answer = Vec::new();
        loop {
            let line = self.line();
            let error = line.starts_with("ERROR,") || line.starts_with(&format!("{name},ERROR"));
            let ok = line == format!("{name},OK") || line.starts_with(&format!("{name},OK,"));
            if error || ok {
                answer.push(line);
                return answer;
            }
            if listing && line.starts_with(&format!("{name},")) {
                answer.push(line);
            } else {
                self.events.push(line);
            }
        }
    }

    /// Waits for an event line starting with `prefix`.
    /// The call GUID of the caller whose LISTUSER line mentions `phone` (its
    /// number or name) in conference `conf_guid`.
    pub fn call_guid(&mut self, conf_guid: &str, phone: &str) -> String {
        let users = self.command(&format!("LISTUSER,{conf_guid}"), "LISTUSER");
        let line = users
            .iter()
            .find(|l| l.contains(phone))
            .unwrap_or_else(|| panic!("{phone} not listed: {users:?}"));
        line.split(',').nth(2).expect("call guid").to_owned()
    }

    pub fn event(&mut self, prefix: &str) -> String {
        if let Some(i) = self.events.iter().position(|l| l.starts_with(prefix)) {
            return self.events.remove(i);
        }
        loop {
            let line = self.line();
            if line.starts_with(prefix) {
                return line;
            }
            self.events.push(line);
        }
    }
}

/// A test softphone's SIP user agent and RTP ports, placing calls as phones.
pub struct Phones {
    pub ua: SipUa,
    pub events: mpsc::Receiver<UaEvent>,
    pub pool: PortPool,
    pub notices: mpsc::Sender<LegNotice>,
    _notices_rx: mpsc::Receiver<LegNotice>,
}

impl Phones {
    pub async fn new() -> Self {
        Self::with_srtp(tutti_sip::sdp::SrtpPolicy::Optional).await
    }

    /// Phones that offer SRTP (`Required`: RTP/SAVP only) or plain RTP.
    pub async fn with_srtp(srtp: tutti_sip::sdp::SrtpPolicy) -> Self {
        let policy = tutti_sip::sdp::MediaPolicy { srtp, ..Default::default() };
        Self::with_policy(policy).await
    }

    /// Phones that offer what `policy` says (codecs, SRTP, comfort noise).
    pub async fn with_policy(policy: tutti_sip::sdp::MediaPolicy) -> Self {
        let mut config = SipConfig::new(SocketAddr::new(LOOPBACK, 0), LOOPBACK);
        config.max_calls = 10;
        config.media_policy = policy;
        let (ua, events) = SipUa::start(config).await.expect("phone UA");
        let rtp = super::free_udp_range(16);
        let pool = PortPool::new(rtp, rtp + 15).expect("phone ports");
        let (notices, notices_rx) = mpsc::channel(64);
        Self { ua, events, pool, notices, _notices_rx: notices_rx }
    }

    /// A phone sending `tone` (0: silence) on a call to `target`.
    pub async fn dial(&mut self, target: &str, key: u64, tone: f64) -> Phone {
        let leg = dial(&self.ua, &mut self.events, &self.pool, target, key, &self.notices).await;
        let codec = leg.codec().new_codec();
        Phone { leg, codec, tone, heard: Vec::new() }
    }

    /// A phone whose media crosses a bad network (support/impair.rs).
    pub async fn dial_through(
        &mut self,
        target: &str,
        key: u64,
        tone: f64,
        relay: &super::impair::Relay,
        impairment: super::impair::Impairment,
    ) -> Phone {
        let through = Some((relay, impairment));
        let leg = try_dial_through(
            &self.ua,
            &mut self.events,
            &self.pool,
            target,
            key,
            &self.notices,
            through,
        )
        .await
        .unwrap_or_else(|why| panic!("call failed: {why}"));
        let codec = leg.codec().new_codec();
        Phone { leg, codec, tone, heard: Vec::new() }
    }

    pub async fn try_dial(&mut self, target: &str, key: u64) -> Result<(), String> {
        try_dial(&self.ua, &mut self.events, &self.pool, target, key, &self.notices).await.map(drop)
    }
}

/// The notes of the bundled music on hold (scripts/make_music_on_hold.py).
pub const MUSIC_NOTES: [f64; 8] = [196.00, 220.00, 246.94, 261.63, 293.66, 329.63, 349.23, 392.00];

/// How loud the music on hold is (the loudest of `notes`) in the second half of
/// what `phone` heard last.
pub fn music_level(phone: &Phone, notes: &[f64]) -> f64 {
    notes.iter().map(|f| level(phone, *f)).fold(0.0, f64::max)
}

pub struct Phone {
    pub leg: LegIo,
    pub codec: Box<dyn Codec>,
    pub tone: f64,
    pub heard: Vec<i16>,
}

pub async fn try_dial(
    ua: &SipUa,
    events: &mut mpsc::Receiver<UaEvent>,
    pool: &PortPool,
    target: &str,
    key: u64,
    notices: &mpsc::Sender<LegNotice>,
) -> Result<LegIo, String> {
    try_dial_through(ua, events, pool, target, key, notices, None).await
}

/// [`try_dial`], with the media going through `through`'s relay and its
/// impairments (support/impair.rs) when given.
pub async fn try_dial_through(
    ua: &SipUa,
    events: &mut mpsc::Receiver<UaEvent>,
    pool: &PortPool,
    target: &str,
    key: u64,
    notices: &mpsc::Sender<LegNotice>,
    through: Option<(&super::impair::Relay, super::impair::Impairment)>,
) -> Result<LegIo, String> {
    let sockets = pool.bind(LOOPBACK, false).await.expect("phone ports");
    let phone_rtp = SocketAddr::new(LOOPBACK, sockets.rtp_port());
    let local = LocalMedia {
        address: LOOPBACK,
        // tutti sends to the relay when there is one.
        rtp_port: through.as_ref().map_or(phone_rtp.port(), |(relay, _)| relay.addr().port()),
        session_id: key,
        session_version: 1,
        direction: MediaDirection::SendRecv,
    };
    let place = PlaceCall {
        target: target.to_owned(),
        from_user: Some(format!("phone{key}")),
        from_display_name: Some(format!("Phone {key}")),
        local,
        headers: Vec::new(),
    };
    let call = ua.place_call(place).await.expect("place call");
    let (mut connected, mut negotiated) = (false, None);
    let mut failed = None::<String>;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(connected && negotiated.is_some()) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await.expect("call answered in time") {
            Some(UaEvent::Progress { call: c, state: CallProgress::Connected }) if c == call => {
                connected = true
            }
            Some(UaEvent::Progress { call: c, state: CallProgress::Failed(why) }) if c == call => {
                failed = Some(why);
                break;
            }
            Some(UaEvent::Progress { call: c, state: CallProgress::Busy }) if c == call => {
                failed = Some("busy".into());
                break;
            }
            Some(UaEvent::MediaChanged { call: c, negotiated: n }) if c == call => {
                negotiated = Some(n)
            }
            Some(_) => {}
            None => panic!("phone UA stopped"),
        }
    }
    if let Some(why) = failed {
        return Err(why);
    }
    let mut negotiated = negotiated.expect("negotiated");
    if let Some((relay, impairment)) = through {
        relay.start(phone_rtp, negotiated.remote_rtp, impairment);
        negotiated.remote_rtp = relay.addr();
        negotiated.remote_rtcp = relay.addr();
    }
    let config = tutti::engine::media::leg_config(&negotiated, format!("phone{key}@test"));
    let leg = Leg::new(config, Instant::now()).expect("phone leg");
    Ok(LegIo::spawn(key, leg, sockets, notices.clone()))
}

pub async fn dial(
    ua: &SipUa,
    events: &mut mpsc::Receiver<UaEvent>,
    pool: &PortPool,
    target: &str,
    key: u64,
    notices: &mpsc::Sender<LegNotice>,
) -> LegIo {
    try_dial(ua, events, pool, target, key, notices)
        .await
        .unwrap_or_else(|why| panic!("call failed: {why}"))
}

/// All phones send their tone (or silence) for `frames` ticks and record what
/// they hear.
pub async fn talk(phones: &mut [Phone], frames: usize) {
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let (mut payload, mut packet, mut pcm) = ([0u8; 1500], [0u8; 1500], [0i16; 960]);
    for phone in phones.iter_mut() {
        phone.heard.clear();
    }
    for i in 0..frames {
        ticks.tick().await;
        for phone in phones.iter_mut() {
            let rate = phone.codec.sample_rate();
            let len = phone.codec.samples_per_frame();
            let frame: Vec<i16> = (i * len..(i + 1) * len)
                .map(|n| {
                    (6000.0
                        * (2.0 * std::f64::consts::PI * phone.tone * n as f64 / f64::from(rate))
                            .sin()) as i16
                })
                .collect();
            let n = phone.codec.encode(&frame, &mut payload).expect("encode");
            phone.leg.send_audio(&payload[..n], true, &mut packet).expect("send");
            if let Some(n) = phone.leg.pull_frame(Instant::now(), &mut pcm).expect("pull") {
                phone.heard.extend_from_slice(&pcm[..n]);
            }
        }
    }
}

/// RTP packets `phone` receives in the next second, while every phone talks.
pub async fn packets_in_a_second(phones: &mut [Phone], who: usize) -> u64 {
    let before = phones[who].leg.stats().0.packets_received;
    talk(phones, 50).await;
    phones[who].leg.stats().0.packets_received - before
}

/// Phones offering PCMU and PCMA, telephone-event and comfort noise.
pub fn desk_phones() -> tutti_sip::sdp::MediaPolicy {
    use tutti_sip::sdp::{Codec, MediaPolicy};
    MediaPolicy { codecs: vec![Codec::Pcmu, Codec::Pcma], ..MediaPolicy::default() }
}

pub fn level(phone: &Phone, freq: f64) -> f64 {
    let tail = &phone.heard[phone.heard.len() / 2..];
    goertzel_amplitude(tail, phone.codec.sample_rate(), freq)
}

/// Talks in 0.5 s rounds until `listener` hears `tone` (or, with `heard ==
/// false`, no longer hears it), for at most 5 s; returns the last level. A
/// key press takes effect within milliseconds, but a loaded machine may delay
/// it: the outcome is asserted, not the scheduling.
pub async fn until_level(phones: &mut [Phone], listener: usize, tone: f64, heard: bool) -> f64 {
    let mut last = 0.0;
    for _ in 0..10 {
        talk(phones, 25).await;
        last = level(&phones[listener], tone);
        if (last > 500.0) == heard && (last < 100.0 || heard) {
            break;
        }
    }
    last
}

/// Presses `keys` on a phone as RFC 4733 events, one key per 200 ms, while the
/// phone keeps sending audio (the events replace it while they last).
pub async fn press(phones: &mut [Phone], who: usize, keys: &str) {
    for key in keys.chars() {
        let digit = tutti_media::dtmf::Digit::from_char(key).expect("digit");
        assert!(phones[who].leg.send_digit(digit, 100), "telephone-event negotiated");
        talk(phones, 10).await;
    }
}
