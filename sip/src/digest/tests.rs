use super::*;

const SECRET: [u8; 32] = [42; 32];
const T0: u64 = 1_700_000_000;
const URI: &str = "sip:1000@tutti.example";

fn server() -> DigestServer {
    DigestServer::new(DigestConfig::new("tutti.example"), SECRET)
}

/// What a client would send for `challenge`, built from the header text it received.
fn client_header(challenge: &Challenge, password: &str, nc: u32, method: &str) -> String {
    let nc = format!("{nc:08x}");
    let response = compute_response(
        challenge.algorithm,
        "alice",
        &challenge.realm,
        password,
        method,
        URI,
        &challenge.nonce,
        &nc,
        "0a4f113b",
    );
    format!(
        "Digest username=\"alice\", realm=\"{}\", nonce=\"{}\", uri=\"{URI}\", response=\"{response}\", algorithm={}, cnonce=\"0a4f113b\", qop=auth, nc={nc}",
        challenge.realm, challenge.nonce, challenge.algorithm
    )
}

fn verify_header(
    server: &mut DigestServer,
    header: &str,
    password: &str,
    now: u64,
) -> Result<(), DigestError> {
    let creds = Credentials::parse(header)?;
    server.verify(&creds, "INVITE", password, now)
}

#[test]
fn rfc7616_test_vectors() {
    // RFC 7616 section 3.9.1, values re-checked with Python's hashlib.
    let args = (
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "00000001",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    );
    let run =
        |alg| compute_response(alg, args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7);
    assert_eq!(run(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
    assert_eq!(
        run(Algorithm::Sha256),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn sip_vectors_computed_with_python() {
    // python3: hashlib over alice:tutti.example:s3cr3t, INVITE:sip:1000@tutti.example
    let nonce = "00000000000000010000000000000002deadbeefdeadbeefdeadbeefdeadbeef";
    let run = |alg| {
        compute_response(
            alg,
            "alice",
            "tutti.example",
            "s3cr3t",
            "INVITE",
            URI,
            nonce,
            "0000000a",
            "0a4f113b",
        )
    };
    assert_eq!(run(Algorithm::Md5), "34badb760dd450c1278c12146f8f2841");
    assert_eq!(
        run(Algorithm::Sha256),
        "41a4330a41e249550061fd215eda34988c01b667995ffa1c7f2f015f9b31bfce"
    );
}

#[test]
fn hmac_matches_python() {
    assert_eq!(
        hex::encode(hmac_sha256(b"key", &[b"The quick brown fox ", b"jumps over the lazy dog"])),
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
    assert_eq!(
        hex::encode(hmac_sha256(&[b'k'; 100], &[b"msg"])),
        "bd56a1782c2830e8abc6ed866a57a1230661e650b84c62f7ee3accc5fa5af491"
    );
}

#[test]
fn challenge_header_text() {
    let mut s = server();
    let challenges = s.challenges(T0, false);
    assert_eq!(challenges.len(), 2);
    assert_eq!(challenges[0].algorithm, Algorithm::Sha256);
    assert_eq!(challenges[1].algorithm, Algorithm::Md5);
    assert_eq!(challenges[0].nonce, challenges[1].nonce);
    let text = challenges[1].to_string();
    assert_eq!(
        text,
        format!(
            "Digest realm=\"tutti.example\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"",
            challenges[1].nonce
        )
    );
    assert!(s.challenges(T0, true)[0].to_string().ends_with(", stale=true"));
    // Every challenge gets a fresh nonce, even within one second.
    assert_ne!(s.challenges(T0, false)[0].nonce, s.challenges(T0, false)[0].nonce);
    let odd = Challenge {
        realm: "a\"b\\c".into(),
        nonce: "n".into(),
        algorithm: Algorithm::Md5,
        stale: false,
    };
    assert!(odd.to_string().starts_with("Digest realm=\"a\\\"b\\\\c\""));
}

#[test]
fn md5_and_sha256_accept_the_right_password() {
    for index in 0..2 {
        let mut s = server();
        let challenge = s.challenges(T0, false)[index].clone();
        let header = client_header(&challenge, "s3cr3t", 1, "INVITE");
        assert_eq!(
            verify_header(&mut s, &header, "s3cr3t", T0 + 1),
            Ok(()),
            "{}",
            challenge.algorithm
        );
    }
}

#[test]
fn wrong_password_method_or_tampering_is_refused() {
    let mut s = server();
    let challenge = s.challenges(T0, false)[0].clone();
    let header = client_header(&challenge, "s3cr3t", 1, "INVITE");
    assert_eq!(verify_header(&mut s, &header, "guess", T0), Err(DigestError::WrongCredentials));
    let creds = Credentials::parse(&header).unwrap();
    assert_eq!(s.verify(&creds, "REGISTER", "s3cr3t", T0), Err(DigestError::WrongCredentials));
    let other_uri = header.replace(URI, "sip:2000@tutti.example");
    assert_eq!(verify_header(&mut s, &other_uri, "s3cr3t", T0), Err(DigestError::WrongCredentials));
    let other_user = header.replace("username=\"alice\"", "username=\"mallory\"");
    assert_eq!(
        verify_header(&mut s, &other_user, "s3cr3t", T0),
        Err(DigestError::WrongCredentials)
    );
    // Claiming MD5 for a SHA-256 response.
    let downgraded = header.replace("algorithm=SHA-256", "algorithm=MD5");
    assert_eq!(
        verify_header(&mut s, &downgraded, "s3cr3t", T0),
        Err(DigestError::WrongCredentials)
    );
    // Failed attempts do not burn the nonce-count: the genuine request still passes.
    assert_eq!(verify_header(&mut s, &header, "s3cr3t", T0), Ok(()));
}

#[test]
fn short_nc_without_leading_zeros_is_read_as_hex() {
    let mut s = server();
    let c = s.challenges(T0, false)[1].clone();
    let header = |nc: &str| {
        let response = compute_response(
            c.algorithm,
            "alice",
            &c.realm,
            "s3cr3t",
            "INVITE",
            URI,
            &c.nonce,
            nc,
            "x",
        );
        format!(
            "Digest username=\"alice\", realm=\"{}\", nonce=\"{}\", uri=\"{URI}\", response=\"{response}\", cnonce=\"x\", qop=auth, nc={nc}",
            c.realm, c.nonce
        )
    };
    assert_eq!(verify_header(&mut s, &header("a"), "s3cr3t", T0), Ok(()));
    // 9 decimal would be below 0xa: a replay, not an increase.
    assert_eq!(verify_header(&mut s, &header("9"), "s3cr3t", T0), Err(DigestError::Replay));
    assert_eq!(verify_header(&mut s, &header("10"), "s3cr3t", T0), Ok(()));
}

#[test]
fn uppercase_response_hex_is_accepted() {
    let mut s = server();
    let challenge = s.challenges(T0, false)[1].clone();
    let header = client_header(&challenge, "s3cr3t", 1, "INVITE");
    let creds = Credentials::parse(&header).unwrap();
    let upper = header.replace(&creds.response, &creds.response.to_ascii_uppercase());
    assert_eq!(verify_header(&mut s, &upper, "s3cr3t", T0), Ok(()));
}

#[test]
fn wrong_realm_is_refused() {
    let mut s = server();
    let challenge = s.challenges(T0, false)[0].clone();
    let mut other = challenge.clone();
    other.realm = "evil.example".into();
    let header = client_header(&other, "s3cr3t", 1, "INVITE");
    assert_eq!(verify_header(&mut s, &header, "s3cr3t", T0), Err(DigestError::WrongRealm));
}

#[test]
fn forged_or_foreign_nonces_are_invalid() {
    let mut s = server();
    let challenge = s.challenges(T0, false)[0].clone();
    // A nonce from a server with another secret.
    let mut other = DigestServer::new(DigestConfig::new("tutti.example"), [7; 32]);
    let foreign = other.challenges(T0, false)[0].clone();
    assert_eq!(
        verify_header(&mut s, &client_header(&foreign, "s3cr3t", 1, "INVITE"), "s3cr3t", T0),
        Err(DigestError::InvalidNonce)
    );
    // Moving the timestamp forward breaks the MAC.
    let mut forged = challenge.clone();
    forged.nonce.replace_range(0..16, &format!("{:016x}", T0 + 10_000));
    assert_eq!(
        verify_header(&mut s, &client_header(&forged, "s3cr3t", 1, "INVITE"), "s3cr3t", T0),
        Err(DigestError::InvalidNonce)
    );
    for junk in ["", "abc", "zz", &"0".repeat(64), &"é".repeat(32)] {
        let mut bad = challenge.clone();
        bad.nonce = junk.to_string();
        assert_eq!(
            verify_header(&mut s, &client_header(&bad, "s3cr3t", 1, "INVITE"), "s3cr3t", T0),
            Err(DigestError::InvalidNonce),
            "{junk:?}"
        );
    }
    // A nonce dated in the future (beyond skew) is not ours to honour.
    let future = s.challenges(T0 + 60, false)[0].clone();
    assert_eq!(
        verify_header(&mut s, &client_header(&future, "s3cr3t", 1, "INVITE"), "s3cr3t", T0),
        Err(DigestError::InvalidNonce)
    );
}

#[test]
fn expired_nonce_is_stale_only_with_the_right_password() {
    let mut s = server();
    let challenge = s.challenges(T0, false)[0].clone();
    let header = client_header(&challenge, "s3cr3t", 1, "INVITE");
    assert_eq!(verify_header(&mut s, &header, "s3cr3t", T0 + 300), Ok(()));
    let next = client_header(&challenge, "s3cr3t", 2, "INVITE");
    let err = verify_header(&mut s, &next, "s3cr3t", T0 + 301).unwrap_err();
    assert_eq!(err, DigestError::Stale);
    assert!(err.is_stale());
    assert_eq!(verify_header(&mut s, &next, "wrong", T0 + 301), Err(DigestError::WrongCredentials));
}

#[test]
fn nonce_count_replay_protection() {
    let mut s = server();
    let challenge = s.challenges(T0, false)[0].clone();
    let first = client_header(&challenge, "s3cr3t", 1, "INVITE");
    assert_eq!(verify_header(&mut s, &first, "s3cr3t", T0), Ok(()));
    assert_eq!(verify_header(&mut s, &first, "s3cr3t", T0), Err(DigestError::Replay));
    let third = client_header(&challenge, "s3cr3t", 3, "INVITE");
    assert_eq!(verify_header(&mut s, &third, "s3cr3t", T0), Ok(()));
    let second = client_header(&challenge, "s3cr3t", 2, "INVITE");
    assert_eq!(verify_header(&mut s, &second, "s3cr3t", T0), Err(DigestError::Replay));
    // nc is hex: 0x10 is greater than 3.
    let sixteen = client_header(&challenge, "s3cr3t", 16, "INVITE");
    assert!(sixteen.contains("nc=00000010"));
    assert_eq!(verify_header(&mut s, &sixteen, "s3cr3t", T0), Ok(()));
    assert_eq!(verify_header(&mut s, &third, "s3cr3t", T0), Err(DigestError::Replay));
    // nc=0 is never valid.
    let zero = client_header(&s.challenges(T0, false)[0], "s3cr3t", 0, "INVITE");
    assert_eq!(verify_header(&mut s, &zero, "s3cr3t", T0), Err(DigestError::Replay));
    // A different nonce has its own count.
    let other = s.challenges(T0, false)[0].clone();
    assert_eq!(
        verify_header(&mut s, &client_header(&other, "s3cr3t", 1, "INVITE"), "s3cr3t", T0),
        Ok(())
    );
}

#[test]
fn replay_table_is_bounded_and_evicted_nonces_go_stale() {
    let mut config = DigestConfig::new("tutti.example");
    config.max_tracked_nonces = 3;
    let mut s = DigestServer::new(config, SECRET);
    let challenges: Vec<Challenge> = (0..5).map(|_| s.challenges(T0, false)[0].clone()).collect();
    for c in &challenges {
        assert_eq!(
            verify_header(&mut s, &client_header(c, "s3cr3t", 1, "INVITE"), "s3cr3t", T0),
            Ok(())
        );
        assert!(s.tracked_nonces() <= 3);
    }
    assert_eq!(s.tracked_nonces(), 3);
    // The oldest were evicted: replaying them must not succeed.
    let replay_old = client_header(&challenges[0], "s3cr3t", 1, "INVITE");
    assert_eq!(verify_header(&mut s, &replay_old, "s3cr3t", T0), Err(DigestError::Stale));
    let next_old = client_header(&challenges[1], "s3cr3t", 2, "INVITE");
    assert_eq!(verify_header(&mut s, &next_old, "s3cr3t", T0), Err(DigestError::Stale));
    // The newest are still tracked.
    let replay_new = client_header(&challenges[4], "s3cr3t", 1, "INVITE");
    assert_eq!(verify_header(&mut s, &replay_new, "s3cr3t", T0), Err(DigestError::Replay));
    // Expired entries are dropped as time passes.
    let fresh = s.challenges(T0 + 1000, false)[0].clone();
    assert_eq!(
        verify_header(&mut s, &client_header(&fresh, "s3cr3t", 1, "INVITE"), "s3cr3t", T0 + 1000),
        Ok(())
    );
    assert_eq!(s.tracked_nonces(), 1);
}

#[test]
fn algorithm_and_qop_rules() {
    let mut s = server();
    let challenge = s.challenges(T0, false)[1].clone();
    let header = client_header(&challenge, "s3cr3t", 1, "INVITE");
    // Absent algorithm means MD5.
    let no_alg = header.replace(", algorithm=MD5", "");
    assert_eq!(verify_header(&mut s, &no_alg, "s3cr3t", T0), Ok(()));
    let sess = header.replace("algorithm=MD5", "algorithm=MD5-sess");
    assert_eq!(
        verify_header(&mut s, &sess, "s3cr3t", T0),
        Err(DigestError::UnsupportedAlgorithm("MD5-sess".into()))
    );
    let int = header.replace("qop=auth", "qop=auth-int");
    assert_eq!(
        verify_header(&mut s, &int, "s3cr3t", T0),
        Err(DigestError::UnsupportedQop("auth-int".into()))
    );
    let no_qop = header.replace(", qop=auth", "");
    assert_eq!(
        verify_header(&mut s, &no_qop, "s3cr3t", T0),
        Err(DigestError::MissingParameter("qop"))
    );
    let no_nc = header.replace(", nc=00000001", "");
    assert_eq!(
        verify_header(&mut s, &no_nc, "s3cr3t", T0),
        Err(DigestError::MissingParameter("nc"))
    );
    for bad_nc in ["nc=000000001", "nc=xyz", "nc=\"\"", "nc=-1"] {
        let bad = header.replace("nc=00000001", bad_nc);
        assert!(
            matches!(verify_header(&mut s, &bad, "s3cr3t", T0), Err(DigestError::Malformed(_))),
            "{bad_nc}"
        );
    }
    // A short nc is read as hex and must match what the client hashed.
    let short = header.replace("nc=00000001", "nc=1");
    assert_eq!(verify_header(&mut s, &short, "s3cr3t", T0), Err(DigestError::WrongCredentials));
    // An MD5-only server refuses SHA-256.
    let mut config = DigestConfig::new("tutti.example");
    config.algorithms = vec![Algorithm::Md5];
    let mut md5_only = DigestServer::new(config, SECRET);
    let mut sha = md5_only.challenges(T0, false)[0].clone();
    sha.algorithm = Algorithm::Sha256;
    assert_eq!(
        verify_header(&mut md5_only, &client_header(&sha, "s3cr3t", 1, "INVITE"), "s3cr3t", T0),
        Err(DigestError::UnsupportedAlgorithm("SHA-256".into()))
    );
}

#[test]
fn parsing_quoting_variants() {
    let c = Credentials::parse(
        "digest  USERNAME = \"bo\\\"b\" ,Realm=\"r, with comma\",nonce=\"n\",uri=\"sip:a@b;transport=tcp\", \
         response=\"abc\",qop=\"auth\",nc=0000000A,cnonce=\"c\",opaque=\"\",foo=bar,algorithm=\"SHA-256\"",
    )
    .unwrap();
    assert_eq!(c.username, "bo\"b");
    assert_eq!(c.realm, "r, with comma");
    assert_eq!(c.uri, "sip:a@b;transport=tcp");
    assert_eq!(c.qop.as_deref(), Some("auth"));
    assert_eq!(c.nc.as_deref(), Some("0000000A"));
    assert_eq!(c.opaque.as_deref(), Some(""));
    assert_eq!(c.algorithm.as_deref(), Some("SHA-256"));
    // rsipstack's client style: quoted qop, tabs.
    let c = Credentials::parse("Digest\tusername=\"u\",\trealm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"0\", qop=\"auth\", nc=00000001, cnonce=\"c\"").unwrap();
    assert_eq!(c.qop.as_deref(), Some("auth"));
}

#[test]
fn parsing_rejects_garbage() {
    let bad = [
        "",
        "Basic dXNlcjpwYXNz",
        "Digestusername=\"u\"",
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"x\"",
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"x\", response=\"unterminated",
        "Digest username=\"u\", username=\"v\", realm=\"r\", nonce=\"n\", uri=\"x\", response=\"0\"",
        "Digest username",
        "Digest =\"x\"",
        "Digest username=\"u\" realm=\"r\"",
        "Digest username=\"u\\",
    ];
    for text in bad {
        assert!(Credentials::parse(text).is_err(), "{text:?}");
    }
    assert_eq!(
        Credentials::parse("Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"x\""),
        Err(DigestError::MissingParameter("response"))
    );
    assert!(
        Credentials::parse(&format!("Digest username=\"{}\"", "a".repeat(MAX_CREDENTIALS_LEN)))
            .is_err()
    );
}

#[test]
fn parsing_never_panics_on_mutations() {
    let mut s = server();
    let challenge = s.challenges(T0, false)[0].clone();
    let base = client_header(&challenge, "s3cr3t", 1, "INVITE");
    let alphabet: Vec<char> = "\"\\=, \tabcé0".chars().collect();
    let mut state = 0x1234_5678u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut chars: Vec<char> = base.chars().collect();
        for _ in 0..(1 + next() % 6) {
            let at = (next() as usize) % (chars.len() + 1);
            let c = alphabet[(next() as usize) % alphabet.len()];
            if next() % 2 == 0 && at < chars.len() {
                chars[at] = c;
            } else {
                chars.insert(at, c);
            }
        }
        let text: String = chars.into_iter().collect();
        if let Ok(creds) = Credentials::parse(&text) {
            let _ = s.verify(&creds, "INVITE", "s3cr3t", T0);
        }
    }
}
