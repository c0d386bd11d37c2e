//! The command line and the server's settings. Every option is a flag, an
//! environment variable `TUTTI_<FLAG>` and a key of the optional TOML file given by
//! `--config` (keys spelled like the flags, `sip-listen = "..."`). A flag wins over
//! the environment, the environment over the file, the file over the default.

// The options' doc comments are also their `--help` text, which names paths like
// `<data-dir>/tutti.db` the way users type them, not as HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Deserializer};
use tutti_media::room::MediaNice;

/// The default log filter: tutti at info; the SIP stack only when something is
/// wrong (at info it logs every SIP message in full, several lines per call).
/// `--log info,rsipstack=info` traces SIP messages.
pub const DEFAULT_LOG: &str = "info,rsipstack=warn";

/// The media threads' nice value unless told otherwise: a 6-minute soak on a
/// busy 2-core machine had 0.044 % of its ticks late with the process at -10,
/// against 0.25-0.82 % at 0 (docs/reliability.md).
pub const DEFAULT_MEDIA_NICE: i32 = -10;

/// HTTP connections one address may hold unless told otherwise: far more
/// than a program's connection pool, enough for a reverse proxy in front.
pub const DEFAULT_HTTP_CONNECTIONS_PER_SOURCE: u32 = 256;

/// New HTTP connections one address may open a second unless told otherwise:
/// no limit. The HTTP interfaces serve the operator's own programs (on
/// loopback by default), and a program without keep-alive opens one per
/// request, as fast as it works; an operator who exposes HTTPS further sets
/// a rate so that one address cannot make tutti do TLS handshakes as fast as
/// it asks for them.
pub const DEFAULT_HTTP_CONNECTION_RATE: u32 = 0;

/// Recordings each customer may keep unless told otherwise, in MiB: 10 GiB,
/// about 180 hours of a narrowband room (16-bit PCM at 8 kHz).
pub const DEFAULT_RECORDING_QUOTA_MIB: u64 = 10 * 1024;
/// Default MiB kept free on the recordings' file system: room for the
/// database and its WAL to keep working when recordings fill the disk.
pub const DEFAULT_RECORDING_MIN_FREE_MIB: u64 = 1024;

#[derive(Debug, Parser)]
#[command(name = "tutti", version, about = "SIP/RTP audio conference server")]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Manage customers (accounts that own conferences and hold API keys).
    Customer {
        #[command(subcommand)]
        action: CustomerCommand,
    },
    /// The TCP 4011 control password.
    ControlPassword {
        #[command(subcommand)]
        action: ControlPasswordCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the configuration this invocation would use (its flags,
    /// environment, config file and defaults; secrets hidden) and exit. It is
    /// not read from a running server.
    Config,
}

#[derive(Debug, Subcommand)]
pub enum ControlPasswordCommand {
    /// Generate a new control password, store it and print it once (a running
    /// server checks the new one at the next LOGIN).
    Reset,
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer; prints its UID and API key as one JSON object.
    Create {
        /// A name no other customer has (case and surrounding spaces ignored).
        #[arg(long)]
        name: String,
        /// Its inbound number: callers dialling it are asked for a person's PIN.
        #[arg(long)]
        did: Option<String>,
    },
    /// Change a customer's name, inbound number (`--did ""` removes it) or
    /// the most callers one reservation may be booked for (`--max-callers 0`:
    /// the server's --max-calls).
    Update {
        uid: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        did: Option<String>,
        #[arg(long)]
        max_callers: Option<u32>,
    },
    /// List customers as a JSON array.
    List,
    /// Show the default customer (the owner of TCP 4011 conferences unless
    /// --control-customer names another); its API key is stored only hashed:
    /// `customer rotate-key UID` issues a new one.
    ShowDefault,
    /// Issue a new API key for a customer; the old key stops working.
    RotateKey { uid: String },
}

/// Options as given, before defaults. The same struct is read from the command line
/// and environment (clap) and from the TOML file (serde).
#[derive(Debug, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Options {
    /// TOML file with any of the options below (keys spelled as the flags).
    #[arg(long, env = "TUTTI_CONFIG", global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// SIP listen address, UDP and TCP [default: 0.0.0.0:5060]
    #[arg(long, env = "TUTTI_SIP_LISTEN", global = true, value_name = "ADDR:PORT")]
    pub sip_listen: Option<OrEmpty<SocketAddr>>,

    /// Address written into SDP [default: the SIP listen address, or the primary
    /// interface's address when that is 0.0.0.0]
    #[arg(long, env = "TUTTI_MEDIA_ADDRESS", global = true, value_name = "IP")]
    pub media_address: Option<OrEmpty<IpAddr>>,

    /// RTP port range [default: 16384-32767]
    #[arg(long, env = "TUTTI_RTP_PORTS", global = true, value_name = "LOW-HIGH")]
    pub rtp_ports: Option<OrEmpty<PortRange>>,

    /// TCP 4011 control protocol listen address; loopback by default because the
    /// protocol sends its password in plain text: give 0.0.0.0:4011 (or a private
    /// address) to reach it from other machines [default: 127.0.0.1:4011]
    #[arg(long, env = "TUTTI_CONTROL_LISTEN", global = true, value_name = "ADDR:PORT")]
    pub control_listen: Option<OrEmpty<SocketAddr>>,

    /// The TCP 4011 LOGIN password [default: generated on first start and printed once]
    #[arg(
        long,
        env = "TUTTI_CONTROL_PASSWORD",
        global = true,
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub control_password: Option<String>,

    /// The customer (UID) that owns conferences created over TCP 4011, which
    /// has no notion of customers [default: the default customer, made on the
    /// first start]
    #[arg(long, env = "TUTTI_CONTROL_CUSTOMER", global = true, value_name = "UID")]
    pub control_customer: Option<String>,

    /// HTTP listen address (/healthz, /metrics, the APIs); loopback by default: give
    /// 0.0.0.0:8080 (or a private address) to reach it from other machines
    /// [default: 127.0.0.1:8080]
    #[arg(long, env = "TUTTI_HTTP_LISTEN", global = true, value_name = "ADDR:PORT")]
    pub http_listen: Option<OrEmpty<SocketAddr>>,

    /// Conductor API XMLSocket event port (the `socketXML` of a Call); loopback
    /// by default like the other control listeners [default: 127.0.0.1:4012]
    #[arg(long, env = "TUTTI_EVENTS_LISTEN", global = true, value_name = "ADDR:PORT")]
    pub events_listen: Option<OrEmpty<SocketAddr>>,

    /// Data directory: database, sounds/, recordings/, tts/ [default: ./data]
    #[arg(long, env = "TUTTI_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<OrEmpty<PathBuf>>,

    /// Database URL [default: sqlite://<data-dir>/tutti.db]
    #[arg(long, env = "TUTTI_DATABASE", global = true, value_name = "URL")]
    pub database: Option<String>,

    /// Where outbound calls go (a SIP URI); without it, SIP URIs are dialled directly
    #[arg(long, env = "TUTTI_OUTBOUND_PROXY", global = true, value_name = "SIP-URI")]
    pub outbound_proxy: Option<String>,

    /// Digest username for the outbound proxy
    #[arg(long, env = "TUTTI_OUTBOUND_USERNAME", global = true, value_name = "NAME")]
    pub outbound_username: Option<String>,

    /// Digest password for the outbound proxy
    #[arg(
        long,
        env = "TUTTI_OUTBOUND_PASSWORD",
        global = true,
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub outbound_password: Option<String>,

    /// IANA time zone of times a protocol gives without one [default: the system's]
    #[arg(long, env = "TUTTI_TIMEZONE", global = true, value_name = "ZONE")]
    pub timezone: Option<String>,

    /// Concurrent calls, both directions, beyond which INVITEs get 503 [default: 500]
    #[arg(long, env = "TUTTI_MAX_CALLS", global = true, value_name = "N")]
    pub max_calls: Option<OrEmpty<usize>>,

    /// Seconds an outbound call may ring before it is cancelled [default: 60]
    #[arg(long, env = "TUTTI_RING_TIMEOUT", global = true, value_name = "SECONDS")]
    pub ring_timeout: Option<OrEmpty<u64>>,

    /// New calls (INVITEs over UDP) per second accepted from one source
    /// address, in bursts of twice that; more get 503 with Retry-After; 0
    /// turns it off [default: 50]
    #[arg(long, env = "TUTTI_INVITE_RATE", global = true, value_name = "N")]
    pub invite_rate: Option<OrEmpty<u32>>,

    /// SIP over TCP and TLS connections one source address may hold at once
    /// (both transports together); one more is closed as it is accepted; 0
    /// turns it off [default: 64]
    #[arg(long, env = "TUTTI_SIP_CONNECTIONS_PER_SOURCE", global = true, value_name = "N")]
    pub sip_connections_per_source: Option<OrEmpty<u32>>,

    /// New SIP TCP and TLS connections one source address may open a second,
    /// in bursts of twice that; more are closed as they are accepted, before
    /// any TLS handshake; 0 turns it off [default: 50]
    #[arg(long, env = "TUTTI_SIP_CONNECTION_RATE", global = true, value_name = "N")]
    pub sip_connection_rate: Option<OrEmpty<u32>>,

    /// HTTP connections one source address may hold at once; one more is
    /// closed as it is accepted; 0 turns it off [default: 256]
    #[arg(long, env = "TUTTI_HTTP_CONNECTIONS_PER_SOURCE", global = true, value_name = "N")]
    pub http_connections_per_source: Option<OrEmpty<u32>>,

    /// New HTTP connections one source address may open a second, in bursts
    /// of twice that; more are closed as they are accepted, before any TLS
    /// handshake; 0 (the default) turns it off
    #[arg(long, env = "TUTTI_HTTP_CONNECTION_RATE", global = true, value_name = "N")]
    pub http_connection_rate: Option<OrEmpty<u32>>,

    /// Wrong credentials (API key, basic credentials, security token) from
    /// one source address within 10 minutes that lock it out of every HTTP
    /// interface for 5 minutes; 0 turns the lockout off [default: 20]
    #[arg(long, env = "TUTTI_HTTP_AUTH_FAILURES", global = true, value_name = "N")]
    pub http_auth_failures: Option<OrEmpty<usize>>,

    /// Seconds a caller's phone may send no RTP or RTCP before it is hung up
    /// (a phone that vanished without a BYE); 0 turns it off [default: 60]
    #[arg(long, env = "TUTTI_RTP_TIMEOUT", global = true, value_name = "SECONDS")]
    pub rtp_timeout: Option<OrEmpty<u64>>,

    /// The same while the phone holds the call (sendonly or inactive, when it
    /// legitimately sends nothing); 0 turns it off [default: 3600]
    #[arg(long, env = "TUTTI_RTP_HOLD_TIMEOUT", global = true, value_name = "SECONDS")]
    pub rtp_hold_timeout: Option<OrEmpty<u64>>,

    /// MiB of uploaded sounds each customer may keep (as stored, after
    /// conversion); an upload past it is refused; 0 refuses every upload
    /// [default: 256]
    #[arg(long, env = "TUTTI_SOUND_QUOTA_MIB", global = true, value_name = "MIB")]
    pub sound_quota_mib: Option<OrEmpty<u64>>,

    /// MiB of recordings each customer may keep (their WAV files); a recording
    /// stops when they take this much, and none starts until some are
    /// deleted; 0 refuses every recording [default: 10240]
    #[arg(long, env = "TUTTI_RECORDING_QUOTA_MIB", global = true, value_name = "MIB")]
    pub recording_quota_mib: Option<OrEmpty<u64>>,

    /// MiB kept free on the file system of the recordings: no recording starts
    /// with less free, and one running stops when it gets there (the call goes
    /// on); 0 turns it off [default: 1024]
    #[arg(long, env = "TUTTI_RECORDING_MIN_FREE_MIB", global = true, value_name = "MIB")]
    pub recording_min_free_mib: Option<OrEmpty<u64>>,

    /// The nice value of the threads that mix and move audio (-20 to 19, lower
    /// runs first), so that a busy machine delays ticks less; below 0 needs
    /// root or CAP_SYS_NICE, without which they run at the process's priority;
    /// 0 asks for nothing [default: -10]
    #[arg(
        long,
        env = "TUTTI_MEDIA_NICE",
        global = true,
        value_name = "NICE",
        allow_negative_numbers = true
    )]
    pub media_nice: Option<OrEmpty<i32>>,

    /// SRTP (SDES keys in the SDP): `off` refuses RTP/SAVP offers, `optional`
    /// accepts encrypted and plain calls, `required` refuses a plain RTP offer
    /// with 488 and offers only RTP/SAVP when dialling out [default: optional]
    #[arg(long, env = "TUTTI_SRTP", global = true, value_name = "off|optional|required")]
    pub srtp: Option<OrEmpty<SrtpMode>>,

    /// RFC 3389 comfort noise: `on` accepts and offers `CN/8000` beside G.711
    /// and G.722, and a caller whose phone takes it gets one comfort-noise
    /// packet every 500 ms while it hears silence, instead of a silent packet
    /// every 20 ms; `off` neither offers nor accepts it [default: on]
    #[arg(long, env = "TUTTI_COMFORT_NOISE", global = true, value_name = "on|off")]
    pub comfort_noise: Option<OrEmpty<Switch>>,

    /// The bundled music on hold for a caller alone in a conference: `off`
    /// lets that caller hear silence (comfort noise or Opus DTX where the
    /// phone takes it); a conference's own `music_on_hold_sound` still plays
    /// [default: on]
    #[arg(long, env = "TUTTI_MUSIC_ON_HOLD", global = true, value_name = "on|off")]
    pub music_on_hold: Option<OrEmpty<Switch>>,

    /// SIP over TLS listen address (RFC 3261 `transport=tls`); needs
    /// --sip-tls-cert and --sip-tls-key [default: none, no TLS listener]
    #[arg(long, env = "TUTTI_SIP_TLS_LISTEN", global = true, value_name = "ADDR:PORT")]
    pub sip_tls_listen: Option<OrEmpty<SocketAddr>>,

    /// PEM certificate chain for SIP over TLS
    #[arg(long, env = "TUTTI_SIP_TLS_CERT", global = true, value_name = "FILE")]
    pub sip_tls_cert: Option<OrEmpty<PathBuf>>,

    /// PEM private key for SIP over TLS
    #[arg(long, env = "TUTTI_SIP_TLS_KEY", global = true, value_name = "FILE")]
    pub sip_tls_key: Option<OrEmpty<PathBuf>>,

    /// PEM certificate chain: with --http-tls-key, the HTTP listener speaks
    /// HTTPS only [default: plain HTTP]
    #[arg(long, env = "TUTTI_HTTP_TLS_CERT", global = true, value_name = "FILE")]
    pub http_tls_cert: Option<OrEmpty<PathBuf>>,

    /// PEM private key for HTTPS
    #[arg(long, env = "TUTTI_HTTP_TLS_KEY", global = true, value_name = "FILE")]
    pub http_tls_key: Option<OrEmpty<PathBuf>>,

    /// PEM certificate chain: with --control-tls-key, the TCP 4011 control
    /// listener speaks TLS only [default: plain TCP]
    #[arg(long, env = "TUTTI_CONTROL_TLS_CERT", global = true, value_name = "FILE")]
    pub control_tls_cert: Option<OrEmpty<PathBuf>>,

    /// PEM private key for the control protocol over TLS
    #[arg(long, env = "TUTTI_CONTROL_TLS_KEY", global = true, value_name = "FILE")]
    pub control_tls_key: Option<OrEmpty<PathBuf>>,

    /// PEM certificate chain: with --events-tls-key, the Conductor's
    /// XMLSocket events port speaks TLS only [default: plain TCP]
    #[arg(long, env = "TUTTI_EVENTS_TLS_CERT", global = true, value_name = "FILE")]
    pub events_tls_cert: Option<OrEmpty<PathBuf>>,

    /// PEM private key for the XMLSocket events over TLS
    #[arg(long, env = "TUTTI_EVENTS_TLS_KEY", global = true, value_name = "FILE")]
    pub events_tls_key: Option<OrEmpty<PathBuf>>,

    /// Log filter, tracing syntax (e.g. `info,tutti_sip=debug`) [default: info,rsipstack=warn]
    #[arg(long, env = "TUTTI_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// For tests only: lets `POST /_test/clock` move the wall clock the
    /// schedule follows. Command line only, never from the environment or a file.
    #[arg(long, global = true, hide = true)]
    #[serde(skip)]
    pub test_clock: bool,
}

/// A typed option whose empty text means "not given", as for the text options:
/// compose files and shells pass `TUTTI_X=` for "unset", and the default
/// should then apply rather than a parse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrEmpty<T>(pub Option<T>);

impl<T: FromStr> FromStr for OrEmpty<T>
where
    T::Err: fmt::Display,
{
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self(None));
        }
        s.parse().map(|v| Self(Some(v))).map_err(|e: T::Err| e.to_string())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|v| Self(Some(v)))
    }
}

/// The value of a typed option, if one was given.
fn given<T>(option: Option<OrEmpty<T>>) -> Option<T> {
    option.and_then(|o| o.0)
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/London)")]
    Timezone(String),
    #[error("the system time zone cannot be determined: {0}")]
    SystemTimezone(String),
    #[error("invalid log filter {0:?}: {1}")]
    Log(String, String),
    #[error("--{0} must be at least 1 (0 would {1})")]
    Zero(&'static str, &'static str),
    #[error("--{0} must be {1}")]
    OutOfRange(&'static str, &'static str),
    #[error("--{0} go together: give all of them or none")]
    Incomplete(&'static str),
}

impl Options {
    /// Fills every option not given on the command line or in the environment
    /// from the `--config` file, if there is one.
    pub fn with_file(mut self) -> Result<Self, ConfigError> {
        self.drop_empty_text();
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let mut file: Options = toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path, source: Box::new(source) })?;
        file.drop_empty_text();
        macro_rules! fill {
            ($($field:ident),*) => { $( if self.$field.is_none() { self.$field = file.$field; } )* };
        }
        fill!(
            sip_listen,
            media_address,
            rtp_ports,
            control_listen,
            control_password,
            control_customer,
            http_listen,
            events_listen,
            data_dir,
            database,
            outbound_proxy,
            outbound_username,
            outbound_password,
            timezone,
            max_calls,
            ring_timeout,
            invite_rate,
            sip_connections_per_source,
            sip_connection_rate,
            http_connections_per_source,
            http_connection_rate,
            http_auth_failures,
            rtp_timeout,
            rtp_hold_timeout,
            sound_quota_mib,
            recording_quota_mib,
            recording_min_free_mib,
            media_nice,
            srtp,
            comfort_noise,
            music_on_hold,
            sip_tls_listen,
            sip_tls_cert,
            sip_tls_key,
            http_tls_cert,
            http_tls_key,
            control_tls_cert,
            control_tls_key,
            events_tls_cert,
            events_tls_key,
            log
        );
        Ok(self)
    }

    /// An empty text value counts as not given: compose files and shells often
    /// pass `TUTTI_CONTROL_PASSWORD=` for "unset", and an empty password must
    /// never become the password. (Typed options read empty text as not given
    /// through [`OrEmpty`].)
    fn drop_empty_text(&mut self) {
        for text in [
            &mut self.control_password,
            &mut self.control_customer,
            &mut self.database,
            &mut self.outbound_proxy,
            &mut self.outbound_username,
            &mut self.outbound_password,
            &mut self.timezone,
            &mut self.log,
        ] {
            if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                *text = None;
            }
        }
    }

    /// The settings the server runs with: given options over built-in defaults.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let sip_listen = given(self.sip_listen).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 5060)));
        let media_address =
            given(self.media_address).unwrap_or_else(|| default_media_address(sip_listen));
        let data_dir = given(self.data_dir).unwrap_or_else(|| PathBuf::from("./data"));
        let database = self.database.unwrap_or_else(|| default_database(&data_dir));
        // Validated here so a typo stops the server at start, not at the first
        // request that carries a local time.
        let timezone = match self.timezone {
            Some(name) => {
                jiff::tz::TimeZone::get(&name).map_err(|_| ConfigError::Timezone(name.clone()))?;
                Some(name)
            }
            None => jiff::tz::TimeZone::try_system()
                .map_err(|e| ConfigError::SystemTimezone(e.to_string()))?
                .iana_name()
                .map(str::to_owned),
        };
        let log = self.log.unwrap_or_else(|| DEFAULT_LOG.to_owned());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log) {
            return Err(ConfigError::Log(log, e.to_string()));
        }
        let max_calls = given(self.max_calls).unwrap_or(500);
        if max_calls == 0 {
            return Err(ConfigError::Zero("max-calls", "refuse every call"));
        }
        let ring_timeout = given(self.ring_timeout).unwrap_or(60);
        if ring_timeout == 0 {
            return Err(ConfigError::Zero("ring-timeout", "cancel every outbound call at once"));
        }
        let media_nice = given(self.media_nice);
        if media_nice.is_some_and(|n| !(-20..=19).contains(&n)) {
            return Err(ConfigError::OutOfRange("media-nice", "from -20 to 19"));
        }
        let sip_tls =
            match (given(self.sip_tls_listen), given(self.sip_tls_cert), given(self.sip_tls_key)) {
                (None, None, None) => None,
                (Some(listen), Some(cert), Some(key)) => Some(TlsListen { listen, cert, key }),
                _ => {
                    return Err(ConfigError::Incomplete(
                        "sip-tls-listen, --sip-tls-cert and --sip-tls-key",
                    ));
                }
            };
        let http_tls = TlsFiles::pair(
            given(self.http_tls_cert),
            given(self.http_tls_key),
            "http-tls-cert and --http-tls-key",
        )?;
        let control_tls = TlsFiles::pair(
            given(self.control_tls_cert),
            given(self.control_tls_key),
            "control-tls-cert and --control-tls-key",
        )?;
        let events_tls = TlsFiles::pair(
            given(self.events_tls_cert),
            given(self.events_tls_key),
            "events-tls-cert and --events-tls-key",
        )?;
        Ok(Settings {
            sip_listen,
            media_address,
            rtp_ports: given(self.rtp_ports).unwrap_or(PortRange { low: 16384, high: 32767 }),
            control_listen: given(self.control_listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 4011))),
            control_password: self.control_password,
            control_customer: self.control_customer,
            http_listen: given(self.http_listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            events_listen: given(self.events_listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 4012))),
            data_dir,
            database,
            outbound_proxy: self.outbound_proxy,
            outbound_username: self.outbound_username,
            outbound_password: self.outbound_password,
            timezone,
            max_calls,
            ring_timeout: std::time::Duration::from_secs(ring_timeout),
            invite_rate: given(self.invite_rate).unwrap_or(50),
            sip_connections_per_source: given(self.sip_connections_per_source)
                .unwrap_or(tutti_sip::ua::streams::DEFAULT_PER_SOURCE),
            sip_connection_rate: given(self.sip_connection_rate)
                .unwrap_or(tutti_sip::ua::streams::DEFAULT_RATE),
            http_connections_per_source: given(self.http_connections_per_source)
                .unwrap_or(DEFAULT_HTTP_CONNECTIONS_PER_SOURCE),
            http_connection_rate: given(self.http_connection_rate)
                .unwrap_or(DEFAULT_HTTP_CONNECTION_RATE),
            http_auth_failures: given(self.http_auth_failures)
                .unwrap_or(tutti_api::ops::sources::DEFAULT_HTTP_AUTH_FAILURES),
            rtp_timeout: given(self.rtp_timeout).unwrap_or(60),
            rtp_hold_timeout: given(self.rtp_hold_timeout).unwrap_or(3600),
            sound_quota_mib: given(self.sound_quota_mib)
                .unwrap_or(tutti_api::ops::DEFAULT_SOUND_QUOTA_BYTES / (1024 * 1024)),
            recording_quota_mib: given(self.recording_quota_mib)
                .unwrap_or(DEFAULT_RECORDING_QUOTA_MIB),
            recording_min_free_mib: given(self.recording_min_free_mib)
                .unwrap_or(DEFAULT_RECORDING_MIN_FREE_MIB),
            media_nice: MediaNice {
                nice: media_nice.unwrap_or(DEFAULT_MEDIA_NICE),
                explicit: media_nice.is_some(),
            },
            srtp: given(self.srtp).unwrap_or_default(),
            comfort_noise: given(self.comfort_noise).unwrap_or(Switch::On),
            music_on_hold: given(self.music_on_hold).unwrap_or(Switch::On),
            sip_tls,
            http_tls,
            control_tls,
            events_tls,
            log,
            test_clock: self.test_clock,
        })
    }
}

fn default_database(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("tutti.db").display())
}

/// The SIP listen address when it is a real address; otherwise the address of the
/// interface that carries the default route. A UDP "connect" only consults the
/// routing table: no packet is sent. Loopback when there is no route at all.
fn default_media_address(sip_listen: SocketAddr) -> IpAddr {
    if !sip_listen.ip().is_unspecified() {
        return sip_listen.ip();
    }
    // TEST-NET-2 (RFC 5737): any routable destination selects the default route.
    let probe = SocketAddr::from(([198, 51, 100, 1], 9));
    UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
        .and_then(|s| s.connect(probe).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// An inclusive range of UDP ports for RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (low, high) = s.split_once('-').ok_or_else(|| format!("{s:?} is not LOW-HIGH"))?;
        let parse =
            |p: &str| p.trim().parse::<u16>().map_err(|_| format!("{p:?} is not a port number"));
        let (low, high) = (parse(low)?, parse(high)?);
        if low == 0 || low > high {
            return Err(format!("{s:?}: need 1 <= LOW <= HIGH"));
        }
        // RTP wants an even port and RTCP the odd one above it.
        if high - low < 1 {
            return Err(format!("{s:?}: the range must hold at least one RTP/RTCP pair"));
        }
        Ok(Self { low, high })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The resolved settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sip_listen: SocketAddr,
    pub media_address: IpAddr,
    pub rtp_ports: PortRange,
    pub control_listen: SocketAddr,
    pub control_password: Option<String>,
    pub control_customer: Option<String>,
    pub http_listen: SocketAddr,
    pub events_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: String,
    pub outbound_proxy: Option<String>,
    pub outbound_username: Option<String>,
    pub outbound_password: Option<String>,
    /// A valid IANA zone name; `None` when the system zone has no name (it is
    /// then used as the system defines it).
    pub timezone: Option<String>,
    pub max_calls: usize,
    pub ring_timeout: std::time::Duration,
    /// New INVITEs per second per source address; 0: no limit.
    pub invite_rate: u32,
    /// SIP TCP and TLS connections per source address; 0: no limit.
    pub sip_connections_per_source: u32,
    /// New SIP TCP and TLS connections a second per source address; 0: no limit.
    pub sip_connection_rate: u32,
    /// HTTP connections per source address; 0: no limit.
    pub http_connections_per_source: u32,
    /// New HTTP connections a second per source address; 0: no limit.
    pub http_connection_rate: u32,
    /// Wrong HTTP credentials that lock a source address out; 0: never.
    pub http_auth_failures: usize,
    /// Seconds of silence from a phone before hang-up; 0: never.
    pub rtp_timeout: u64,
    /// The same for a held call.
    pub rtp_hold_timeout: u64,
    /// MiB of uploaded sounds per customer.
    pub sound_quota_mib: u64,
    /// MiB of recordings per customer.
    pub recording_quota_mib: u64,
    /// MiB kept free on the recordings' file system.
    pub recording_min_free_mib: u64,
    /// The media threads' nice value.
    pub media_nice: MediaNice,
    pub srtp: SrtpMode,
    /// Comfort noise offered and accepted.
    pub comfort_noise: Switch,
    /// The bundled music played to a caller alone.
    pub music_on_hold: Switch,
    /// SIP over TLS, when configured.
    pub sip_tls: Option<TlsListen>,
    /// HTTPS instead of HTTP, when configured.
    pub http_tls: Option<TlsFiles>,
    /// TLS on the control port (TCP 4011), when configured.
    pub control_tls: Option<TlsFiles>,
    /// The XMLSocket events port over TLS, when configured.
    pub events_tls: Option<TlsFiles>,
    pub log: String,
    pub test_clock: bool,
}

impl Settings {
    pub fn sounds_dir(&self) -> PathBuf {
        self.data_dir.join("sounds")
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    pub fn tts_dir(&self) -> PathBuf {
        self.data_dir.join("tts")
    }

    /// How long a phone may send nothing before it is hung up, active and held
    /// (0 for either means "never" for that state); `None` when both are off.
    pub fn silence_limits(&self) -> Option<tutti_media::leg::SilenceLimits> {
        let limit = |secs: u64| match secs {
            0 => std::time::Duration::MAX / 4,
            secs => std::time::Duration::from_secs(secs),
        };
        (self.rtp_timeout > 0 || self.rtp_hold_timeout > 0).then(|| {
            tutti_media::leg::SilenceLimits {
                active: limit(self.rtp_timeout),
                held: limit(self.rtp_hold_timeout),
            }
        })
    }

    /// The settings as TOML that `--config` accepts, secrets replaced by `<set>`.
    pub fn to_toml(&self) -> String {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<set>".to_owned());
        let mut out = String::new();
        let mut line = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push_str(&format!("{key} = {}\n", toml_string(&v)));
            }
        };
        line("sip-listen", Some(self.sip_listen.to_string()));
        line("media-address", Some(self.media_address.to_string()));
        line("rtp-ports", Some(self.rtp_ports.to_string()));
        line("control-listen", Some(self.control_listen.to_string()));
        line("control-password", secret(&self.control_password));
        line("control-customer", self.control_customer.clone());
        line("http-listen", Some(self.http_listen.to_string()));
        line("events-listen", Some(self.events_listen.to_string()));
        line("data-dir", Some(self.data_dir.display().to_string()));
        line("database", Some(self.database.clone()));
        line("outbound-proxy", self.outbound_proxy.clone());
        line("outbound-username", self.outbound_username.clone());
        line("outbound-password", secret(&self.outbound_password));
        line("timezone", self.timezone.clone());
        line("log", Some(self.log.clone()));
        out.push_str(&format!("max-calls = {}\n", self.max_calls));
        out.push_str(&format!("ring-timeout = {}\n", self.ring_timeout.as_secs()));
        out.push_str(&format!("invite-rate = {}\n", self.invite_rate));
        out.push_str(&format!(
            "sip-connections-per-source = {}\n",
            self.sip_connections_per_source
        ));
        out.push_str(&format!("sip-connection-rate = {}\n", self.sip_connection_rate));
        out.push_str(&format!(
            "http-connections-per-source = {}\n",
            self.http_connections_per_source
        ));
        out.push_str(&format!("http-connection-rate = {}\n", self.http_connection_rate));
        out.push_str(&format!("http-auth-failures = {}\n", self.http_auth_failures));
        out.push_str(&format!("rtp-timeout = {}\n", self.rtp_timeout));
        out.push_str(&format!("rtp-hold-timeout = {}\n", self.rtp_hold_timeout));
        out.push_str(&format!("sound-quota-mib = {}\n", self.sound_quota_mib));
        out.push_str(&format!("recording-quota-mib = {}\n", self.recording_quota_mib));
        out.push_str(&format!("recording-min-free-mib = {}\n", self.recording_min_free_mib));
        out.push_str(&format!("media-nice = {}\n", self.media_nice.nice));
        out.push_str(&format!("srtp = {}\n", toml_string(&self.srtp.to_string())));
        out.push_str(&format!(
            "comfort-noise = {}\n",
            toml_string(&self.comfort_noise.to_string())
        ));
        out.push_str(&format!(
            "music-on-hold = {}\n",
            toml_string(&self.music_on_hold.to_string())
        ));
        let mut line = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push_str(&format!("{key} = {}\n", toml_string(&v)));
            }
        };
        let path = |p: &Path| Some(p.display().to_string());
        if let Some(tls) = &self.sip_tls {
            line("sip-tls-listen", Some(tls.listen.to_string()));
            line("sip-tls-cert", path(&tls.cert));
            line("sip-tls-key", path(&tls.key));
        }
        if let Some(tls) = &self.http_tls {
            line("http-tls-cert", path(&tls.cert));
            line("http-tls-key", path(&tls.key));
        }
        if let Some(tls) = &self.control_tls {
            line("control-tls-cert", path(&tls.cert));
            line("control-tls-key", path(&tls.key));
        }
        if let Some(tls) = &self.events_tls {
            line("events-tls-cert", path(&tls.cert));
            line("events-tls-key", path(&tls.key));
        }
        out
    }
}

/// Certificate and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both files or neither; one alone is refused, naming the two options
    /// (`what`).
    fn pair(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        what: &'static str,
    ) -> Result<Option<Self>, ConfigError> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            _ => Err(ConfigError::Incomplete(what)),
        }
    }
}

/// A TLS listener: where, and with which certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListen {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `--srtp`: whether calls must, may or must not be encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SrtpMode {
    Off,
    #[default]
    Optional,
    Required,
}

impl SrtpMode {
    pub fn policy(self) -> tutti_sip::sdp::SrtpPolicy {
        use tutti_sip::sdp::SrtpPolicy;
        match self {
            SrtpMode::Off => SrtpPolicy::Disabled,
            SrtpMode::Optional => SrtpPolicy::Optional,
            SrtpMode::Required => SrtpPolicy::Required,
        }
    }
}

impl FromStr for SrtpMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(SrtpMode::Off),
            "optional" => Ok(SrtpMode::Optional),
            "required" => Ok(SrtpMode::Required),
            other => Err(format!("{other:?} is not off, optional or required")),
        }
    }
}

impl fmt::Display for SrtpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SrtpMode::Off => "off",
            SrtpMode::Optional => "optional",
            SrtpMode::Required => "required",
        })
    }
}

impl<'de> Deserialize<'de> for SrtpMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An option that is on or off (`on`/`off`, also `true`/`false`, `yes`/`no`, `1`/`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

impl FromStr for Switch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Ok(Switch::On),
            "off" | "false" | "no" | "0" => Ok(Switch::Off),
            other => Err(format!("{other:?} is not on or off")),
        }
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_on() { "on" } else { "off" })
    }
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A TOML boolean or a string.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(on) => Ok(if on { Switch::On } else { Switch::Off }),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!("16384-32767".parse(), Ok(PortRange { low: 16384, high: 32767 }));
        assert_eq!(" 10000 - 10001 ".parse(), Ok(PortRange { low: 10000, high: 10001 }));
        for bad in ["", "10000", "10001-10000", "0-10", "10-70000", "a-b", "10000-10000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults() {
        let s = Options { timezone: Some("UTC".into()), ..Options::default() }
            .resolve()
            .expect("resolves");
        assert_eq!(s.sip_listen.to_string(), "0.0.0.0:5060");
        // The control listeners stay on loopback unless exposed on purpose.
        assert_eq!(s.control_listen.to_string(), "127.0.0.1:4011");
        assert_eq!(s.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.events_listen.to_string(), "127.0.0.1:4012");
        assert_eq!(s.rtp_ports.to_string(), "16384-32767");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.database, "sqlite://./data/tutti.db");
        assert_eq!(s.log, "info,rsipstack=warn");
        assert!(!s.media_address.is_unspecified());
    }

    #[test]
    fn media_address_follows_a_concrete_sip_address() {
        let s = Options {
            sip_listen: Some("127.0.0.7:5080".parse().expect("addr")),
            timezone: Some("UTC".into()),
            ..Options::default()
        }
        .resolve()
        .expect("resolves");
        assert_eq!(s.media_address.to_string(), "127.0.0.7");
    }

    #[test]
    fn bad_timezone_and_log_filter_are_errors() {
        let tz = Options { timezone: Some("Mars/Olympus".into()), ..Options::default() }.resolve();
        assert!(matches!(tz, Err(ConfigError::Timezone(_))));
        let log = Options {
            timezone: Some("UTC".into()),
            log: Some("info,[".into()),
            ..Options::default()
        }
        .resolve();
        assert!(matches!(log, Err(ConfigError::Log(..))));
    }

    #[test]
    fn file_keys_are_the_flag_names_and_typos_are_refused() {
        let ok: Options =
            toml::from_str("sip-listen = \"127.0.0.1:5070\"\nrtp-ports = \"20000-20099\"")
                .expect("parses");
        assert_eq!(given(ok.sip_listen).map(|a| a.port()), Some(5070));
        assert_eq!(given(ok.rtp_ports), Some(PortRange { low: 20000, high: 20099 }));
        assert!(toml::from_str::<Options>("sip_listen = \"127.0.0.1:5070\"").is_err());
        assert!(toml::from_str::<Options>("rtp-ports = \"5-1\"").is_err());
    }

    #[test]
    fn printed_settings_parse_back_and_hide_secrets() {
        let s = Options {
            timezone: Some("Europe/London".into()),
            control_password: Some("hunter2".into()),
            ..Options::default()
        }
        .resolve()
        .expect("resolves");
        let text = s.to_toml();
        assert!(!text.contains("hunter2"));
        let back: Options = toml::from_str(&text).expect("round trip");
        assert_eq!(back.timezone.as_deref(), Some("Europe/London"));
        assert_eq!(back.control_password.as_deref(), Some("<set>"));
    }
}
