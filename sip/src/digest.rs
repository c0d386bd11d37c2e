//! Server-side HTTP digest authentication for SIP (RFC 3261 section 22, RFC 7616 and
//! RFC 8760): challenges, parsing of `Authorization`/`Proxy-Authorization` values and
//! verification, with MD5 and SHA-256 and `qop=auth`.
//!
//! Nonces are self-validating: each carries its issue time and a serial number, sealed
//! with an HMAC-SHA-256 over a server secret, so issuing one stores nothing. Only nonces
//! actually used are remembered, with the highest nonce-count seen, to refuse replays;
//! that table is bounded ([`DigestConfig::max_tracked_nonces`]). A nonce evicted from it
//! is answered as stale, so the client simply re-authenticates with a fresh one.
//! Time is passed in as Unix seconds; nothing here reads a clock.

use std::collections::BTreeMap;
use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest credentials header value we parse.
pub const MAX_CREDENTIALS_LEN: usize = 8 * 1024;

/// Bytes of HMAC kept in a nonce: 128 bits is beyond guessing.
const NONCE_MAC_LEN: usize = 16;
/// Issue time (8) + serial (8) + MAC.
const NONCE_LEN: usize = 16 + NONCE_MAC_LEN;
/// How far in the future a nonce's issue time may be (clock adjustments between
/// nodes sharing a secret).
const MAX_FUTURE_SKEW_SECS: u64 = 5;

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header value is not valid digest credentials.
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    /// A parameter the verification needs is absent.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    /// The credentials are for another realm.
    #[error("wrong realm")]
    WrongRealm,
    /// An algorithm we do not offer (for example MD5-sess).
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// A qop other than `auth`.
    #[error("unsupported qop {0}")]
    UnsupportedQop(String),
    /// The nonce was not issued by us (or by a node with our secret).
    #[error("invalid nonce")]
    InvalidNonce,
    /// The response does not match: wrong password or tampered parameters.
    #[error("wrong credentials")]
    WrongCredentials,
    /// The credentials are right but the nonce has expired or was forgotten:
    /// challenge again with `stale=true`.
    #[error("stale nonce")]
    Stale,
    /// The nonce-count is not greater than one already accepted for this nonce.
    #[error("replayed nonce count")]
    Replay,
}

impl DigestError {
    /// Whether the client should be challenged again with `stale=true` (it knows the
    /// password; only the nonce needs renewing).
    pub fn is_stale(&self) -> bool {
        matches!(self, DigestError::Stale)
    }
}

/// Digest hash algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 2617; what most SIP phones support).
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token used in `algorithm=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an `algorithm=` token (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lowercase hex of the hash of `parts` joined with `:`.
    fn hex(self, parts: &[&str]) -> String {
        fn run<D: Digest>(parts: &[&str]) -> String {
            let mut d = D::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(part.as_bytes());
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The request-response of RFC 7616 section 3.4.1 with `qop=auth`, lowercase hex.
#[allow(clippy::too_many_arguments)]
pub fn compute_response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
) -> String {
    response_with_qop(algorithm, username, realm, password, method, uri, nonce, nc, cnonce, "auth")
}

#[allow(clippy::too_many_arguments)]
fn response_with_qop(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
) -> String {
    let ha1 = algorithm.hex(&[username, realm, password]);
    let ha2 = algorithm.hex(&[method, uri]);
    algorithm.hex(&[&ha1, nonce, nc, cnonce, qop, &ha2])
}

/// Server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    /// The realm we challenge for.
    pub realm: String,
    /// Seconds a nonce stays valid after issue.
    pub nonce_lifetime_secs: u64,
    /// Upper bound on nonces remembered for replay protection.
    pub max_tracked_nonces: usize,
    /// Algorithms we challenge with, one challenge each, in this order (RFC 8760:
    /// the preferred first).
    pub algorithms: Vec<Algorithm>,
}

impl DigestConfig {
    /// Defaults for `realm`: 300 s nonces, 10,000 tracked, SHA-256 then MD5.
    pub fn new(realm: impl Into<String>) -> Self {
        DigestConfig {
            realm: realm.into(),
            nonce_lifetime_secs: 300,
            max_tracked_nonces: 10_000,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }
}

/// One challenge: the value of a `WWW-Authenticate` or `Proxy-Authenticate` header
/// (its `Display` writes the header value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The realm.
    pub realm: String,
    /// The nonce.
    pub nonce: String,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Whether this renews a stale nonce.
    pub stale: bool,
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
            QuotedEscape(&self.realm),
            self.nonce,
            self.algorithm
        )?;
        if self.stale {
            f.write_str(", stale=true")?;
        }
        Ok(())
    }
}

struct QuotedEscape<'a>(&'a str);

impl fmt::Display for QuotedEscape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Parsed digest credentials (`Authorization` / `Proxy-Authorization` value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `username`
    pub username: String,
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `uri`: the caller should check it names the request's Request-URI.
    pub uri: String,
    /// `response`
    pub response: String,
    /// `algorithm`, when given (absent means MD5).
    pub algorithm: Option<String>,
    /// `cnonce`
    pub cnonce: Option<String>,
    /// `qop`
    pub qop: Option<String>,
    /// `nc`, as written (it enters the hash as written).
    pub nc: Option<String>,
    /// `opaque`
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses a header value such as `Digest username="bob", realm="x", ...`.
    ///
    /// Tolerant of what clients really send: any case for the scheme and parameter
    /// names, spaces around `=` and `,`, quoted or unquoted values (`qop=auth` and
    /// `qop="auth"`), backslash escapes in quoted strings, unknown parameters.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        if value.len() > MAX_CREDENTIALS_LEN {
            return Err(DigestError::Malformed("too long"));
        }
        let mut reader = Reader::new(value);
        reader.skip_ws();
        let scheme = reader.token();
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::Malformed("scheme is not Digest"));
        }
        if !reader.at_end() && !reader.skip_ws() {
            return Err(DigestError::Malformed("no space after scheme"));
        }

        let mut creds = Credentials::default();
        let mut seen: Vec<String> = Vec::new();
        loop {
            reader.skip_ws_and_commas();
            if reader.at_end() {
                break;
            }
            let name = reader.token();
            if name.is_empty() {
                return Err(DigestError::Malformed("expected a parameter name"));
            }
            reader.skip_ws();
            if !reader.eat('=') {
                return Err(DigestError::Malformed("expected = after parameter name"));
            }
            reader.skip_ws();
            let value = if reader.peek() == Some('"') {
                reader.quoted()?
            } else {
                reader.token().to_string()
            };
            reader.skip_ws();
            if !reader.at_end() && !reader.eat(',') {
                return Err(DigestError::Malformed("expected , between parameters"));
            }

            let name = name.to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(DigestError::Malformed("duplicate parameter"));
            }
            let slot = match name.as_str() {
                "username" => Some(&mut creds.username),
                "realm" => Some(&mut creds.realm),
                "nonce" => Some(&mut creds.nonce),
                "uri" => Some(&mut creds.uri),
                "response" => Some(&mut creds.response),
                _ => None,
            };
            match slot {
                Some(slot) => *slot = value,
                None => {
                    let optional = match name.as_str() {
                        "algorithm" => Some(&mut creds.algorithm),
                        "cnonce" => Some(&mut creds.cnonce),
                        "qop" => Some(&mut creds.qop),
                        "nc" => Some(&mut creds.nc),
                        "opaque" => Some(&mut creds.opaque),
                        _ => None,
                    };
                    if let Some(optional) = optional {
                        *optional = Some(value);
                    }
                }
            }
            seen.push(name);
        }

        for required in ["username", "realm", "nonce", "uri", "response"] {
            if !seen.iter().any(|s| s == required) {
                return Err(DigestError::MissingParameter(required));
            }
        }
        Ok(creds)
    }
}

/// A cursor over a header value that cannot read past its end.
struct Reader<'a> {
    rest: &'a str,
}

impl<'a> Reader<'a> {
    fn new(s: &'a str) -> Self {
        Reader { rest: s }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Skips linear white space; whether any was skipped.
    fn skip_ws(&mut self) -> bool {
        let before = self.rest.len();
        self.rest = self.rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.rest.len() != before
    }

    fn skip_ws_and_commas(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\r', '\n', ',']);
    }

    /// A token: everything up to white space, `,`, `=` or `"`.
    fn token(&mut self) -> &'a str {
        let end = self.rest.find([' ', '\t', '\r', '\n', ',', '=', '"']).unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        token
    }

    /// A quoted string starting at `"`, with `\` escapes removed.
    fn quoted(&mut self) -> Result<String, DigestError> {
        if !self.eat('"') {
            return Err(DigestError::Malformed("expected a quoted string"));
        }
        let mut out = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + c.len_utf8()..];
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                _ => out.push(c),
            }
        }
        Err(DigestError::Malformed("unterminated quoted string"))
    }
}

/// What we remember of a nonce that has been used.
#[derive(Debug, Clone, Copy)]
struct UsedNonce {
    issued_at: u64,
    last_nc: u32,
}

/// The server side of digest authentication: issues challenges and verifies
/// credentials. One per realm; feed it the time.
pub struct DigestServer {
    config: DigestConfig,
    secret: [u8; 32],
    next_serial: u64,
    /// Used nonces by serial; serials grow with time, so the first entry is the oldest.
    used: BTreeMap<u64, UsedNonce>,
    /// Nonces with a serial below this were evicted: their nc history is lost.
    evicted_below: u64,
}

impl fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("config", &self.config)
            .field("tracked", &self.used.len())
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// A server with `secret` sealing its nonces. Use 32 random bytes, new for each
    /// process unless several nodes must accept each other's nonces.
    pub fn new(config: DigestConfig, secret: [u8; 32]) -> Self {
        DigestServer { config, secret, next_serial: 0, used: BTreeMap::new(), evicted_below: 0 }
    }

    /// A server with a secret from the thread RNG.
    pub fn with_random_secret(config: DigestConfig) -> Self {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        Self::new(config, secret)
    }

    /// The configuration.
    pub fn config(&self) -> &DigestConfig {
        &self.config
    }

    /// How many used nonces are remembered now.
    pub fn tracked_nonces(&self) -> usize {
        self.used.len()
    }

    /// Challenges for a 401/407, one per configured algorithm, sharing a fresh nonce.
    /// `stale` is true when answering [`DigestError::Stale`].
    #[must_use]
    pub fn challenges(&mut self, now_secs: u64, stale: bool) -> Vec<Challenge> {
        let nonce = self.issue_nonce(now_secs);
        self.config
            .algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: self.config.realm.clone(),
                nonce: nonce.clone(),
                algorithm,
                stale,
            })
            .collect()
    }

    fn issue_nonce(&mut self, now_secs: u64) -> String {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let mut raw = [0u8; NONCE_LEN];
        raw[..8].copy_from_slice(&now_secs.to_be_bytes());
        raw[8..16].copy_from_slice(&serial.to_be_bytes());
        let mac = self.nonce_mac(&raw[..16]);
        raw[16..].copy_from_slice(&mac);
        hex::encode(raw)
    }

    fn nonce_mac(&self, body: &[u8]) -> [u8; NONCE_MAC_LEN] {
        let full = hmac_sha256(
            &self.secret,
            &[b"tutti digest nonce\0", body, self.config.realm.as_bytes()],
        );
        let mut mac = [0u8; NONCE_MAC_LEN];
        mac.copy_from_slice(&full[..NONCE_MAC_LEN]);
        mac
    }

    /// (issued_at, serial) of a nonce we issued, or `None` for anything else.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, u64)> {
        if nonce.len() != NONCE_LEN * 2 {
            return None;
        }
        let raw: [u8; NONCE_LEN] = hex::decode(nonce).ok()?.try_into().ok()?;
        let expected = self.nonce_mac(&raw[..16]);
        if !bool::from(expected.ct_eq(&raw[16..])) {
            return None;
        }
        let issued_at = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let serial = u64::from_be_bytes(raw[8..16].try_into().ok()?);
        Some((issued_at, serial))
    }

    /// Verifies `creds` for a request with `method`, given the user's password.
    /// On success the nonce-count is recorded, so the same credentials fail next time.
    pub fn verify(
        &mut self,
        creds: &Credentials,
        method: &str,
        password: &str,
        now_secs: u64,
    ) -> Result<(), DigestError> {
        if creds.realm != self.config.realm {
            return Err(DigestError::WrongRealm);
        }
        let algorithm = match &creds.algorithm {
            None => Algorithm::Md5,
            Some(name) => Algorithm::from_name(name)
                .ok_or_else(|| DigestError::UnsupportedAlgorithm(name.clone()))?,
        };
        if !self.config.algorithms.contains(&algorithm) {
            return Err(DigestError::UnsupportedAlgorithm(algorithm.name().into()));
        }
        let qop = creds.qop.as_deref().ok_or(DigestError::MissingParameter("qop"))?;
        if !qop.eq_ignore_ascii_case("auth") {
            return Err(DigestError::UnsupportedQop(qop.into()));
        }
        let nc_text = creds.nc.as_deref().ok_or(DigestError::MissingParameter("nc"))?;
        let cnonce = creds.cnonce.as_deref().ok_or(DigestError::MissingParameter("cnonce"))?;
        // RFC 7616 says exactly 8 hex digits; some clients drop the leading zeros.
        // Either way the value is hex, and the text enters the hash as written.
        if !(1..=8).contains(&nc_text.len()) || !nc_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::Malformed("nc must be 1 to 8 hex digits"));
        }
        let nc = u32::from_str_radix(nc_text, 16)
            .map_err(|_| DigestError::Malformed("nc must be 1 to 8 hex digits"))?;

        let (issued_at, serial) = self.open_nonce(&creds.nonce).ok_or(DigestError::InvalidNonce)?;
        if issued_at > now_secs.saturating_add(MAX_FUTURE_SKEW_SECS) {
            return Err(DigestError::InvalidNonce);
        }

        // The qop enters the hash as the client wrote it.
        let expected = response_with_qop(
            algorithm,
            &creds.username,
            &creds.realm,
            password,
            method,
            &creds.uri,
            &creds.nonce,
            nc_text,
            cnonce,
            qop,
        );
        let given = creds.response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(DigestError::WrongCredentials);
        }

        if now_secs > issued_at.saturating_add(self.config.nonce_lifetime_secs) {
            return Err(DigestError::Stale);
        }
        self.forget_expired(now_secs);

        match self.used.get_mut(&serial) {
            Some(used) => {
                if nc <= used.last_nc {
                    return Err(DigestError::Replay);
                }
                used.last_nc = nc;
            }
            None => {
                if serial < self.evicted_below {
                    // Its history is gone; accepting could accept a replay.
                    return Err(DigestError::Stale);
                }
                if nc == 0 {
                    return Err(DigestError::Replay);
                }
                self.used.insert(serial, UsedNonce { issued_at, last_nc: nc });
                while self.used.len() > self.config.max_tracked_nonces.max(1) {
                    if let Some((evicted, _)) = self.used.pop_first() {
                        self.evicted_below = self.evicted_below.max(evicted.saturating_add(1));
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops used nonces that have expired: they are refused as stale before their
    /// nonce-count matters, so their history is no longer needed.
    fn forget_expired(&mut self, now_secs: u64) {
        // Serials grow with issue time, so expired entries gather at the front; a
        // clock step backwards only delays their removal.
        let lifetime = self.config.nonce_lifetime_secs;
        while let Some((_, oldest)) = self.used.first_key_value() {
            if now_secs <= oldest.issued_at.saturating_add(lifetime) {
                break;
            }
            self.used.pop_first();
        }
    }
}

/// HMAC-SHA-256 (RFC 2104) over the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block_key.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block_key.map(|b| b ^ 0x5c));
    outer.update(inner);
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize());
    out
}

#[cfg(test)]
mod tests;
