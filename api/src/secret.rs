//! Secrets: random identifiers and tokens, and the hashes under which the control
//! password and customer API keys are stored. Comparisons are constant time.

use argon2::Argon2;
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// RFC 4648 base32 alphabet, the shape of Aculab's reservation tokens.
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new object UID (random UUID, hyphenated, lower case).
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())])).collect()
}

/// A customer API key: 32 alphanumeric characters (about 190 bits).
pub fn new_api_key() -> String {
    random_from(ALPHANUMERIC, 32)
}

/// A conference security token: 32 hex characters (128 bits), as the
/// MaestroConference documents describe it.
pub fn new_security_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    hex::encode(bytes)
}

/// An Aculab-style reservation token: 80 base32 characters (400 bits).
pub fn new_reservation_token() -> String {
    random_from(BASE32, 80)
}

/// A generated TCP 4011 control password: 20 alphanumeric characters.
pub fn new_password() -> String {
    random_from(ALPHANUMERIC, 20)
}

/// A numeric PIN of `digits` digits, for persons that are added without one.
pub fn new_pin(digits: usize) -> String {
    random_from(b"0123456789", digits)
}

/// Hash of a high-entropy random key. A fast hash is enough here: the key is 190
/// random bits, so there is nothing to brute-force, and lookups stay cheap.
pub fn hash_api_key(key: &str) -> String {
    format!("sha256${}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// Whether `key` matches a hash made by [`hash_api_key`], in constant time.
pub fn verify_api_key(key: &str, stored: &str) -> bool {
    let candidate = hash_api_key(key);
    candidate.as_bytes().ct_eq(stored.as_bytes()).into()
}

const ARGON2_SALT_LEN: usize = 16;
const ARGON2_OUT_LEN: usize = 32;

/// Hash of a human-chosen password: Argon2id with a random salt, written as
/// `argon2id$<salt hex>$<hash hex>`.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; ARGON2_SALT_LEN];
    rand::rng().fill(&mut salt);
    // Default parameters accept any password below 4 GiB with a 16-byte salt.
    let out = argon2_raw(password, &salt).expect("argon2 accepts a 16-byte salt");
    format!("argon2id${}${}", hex::encode(salt), hex::encode(out))
}

/// Whether `password` matches a hash made by [`hash_password`], in constant time.
/// A malformed stored hash matches nothing.
///
/// A password that matched is remembered for a while (see `Remembered`), so a
/// control program that logs in again and again costs one Argon2 hash, not one
/// per connection; a wrong password always pays the full hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let digest = Remembered::digest(password, stored);
    if Remembered::holds(stored, &digest) {
        return true;
    }
    let verified = verify_password_slow(password, stored);
    if verified {
        Remembered::insert(stored, digest);
    }
    verified
}

/// Passwords that verified recently, as a keyed SHA-256 of the password and
/// the stored hash under a random key made for this process (never stored):
/// what an auth cache such as Dovecot's does. Each Argon2 hash takes 19 MiB
/// and tens of milliseconds of a core; a TCP 4011 client logging in twice a
/// second took that from the mixer's threads on a two-core machine. Only the
/// right password can find its entry, so a hit tells a client nothing the
/// `LOGIN,OK` does not; a changed password has a new stored hash and so no
/// entry; entries expire after [`REMEMBER_FOR`].
struct Remembered {
    stored: String,
    digest: [u8; 32],
    at: std::time::Instant,
}

/// How long a verified password is remembered.
const REMEMBER_FOR: std::time::Duration = std::time::Duration::from_secs(3600);
/// Stored hashes remembered at once (one control password per server today).
const REMEMBER_MAX: usize = 16;

static REMEMBERED: std::sync::Mutex<Vec<Remembered>> = std::sync::Mutex::new(Vec::new());

impl Remembered {
    fn digest(password: &str, stored: &str) -> [u8; 32] {
        static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
        let key = KEY.get_or_init(|| {
            let mut key = [0u8; 32];
            rand::rng().fill(&mut key);
            key
        });
        let mut hash = Sha256::new();
        hash.update(key);
        hash.update((stored.len() as u64).to_be_bytes());
        hash.update(stored.as_bytes());
        hash.update(password.as_bytes());
        hash.finalize().into()
    }

    fn holds(stored: &str, digest: &[u8; 32]) -> bool {
        let list = REMEMBERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        list.iter().any(|r| {
            r.stored == stored
                && r.at.elapsed() < REMEMBER_FOR
                && bool::from(r.digest.ct_eq(digest))
        })
    }

    fn insert(stored: &str, digest: [u8; 32]) {
        let mut list = REMEMBERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        list.retain(|r| r.stored != stored && r.at.elapsed() < REMEMBER_FOR);
        if list.len() >= REMEMBER_MAX {
            list.remove(0);
        }
        list.push(Remembered { stored: stored.to_owned(), digest, at: std::time::Instant::now() });
    }
}

fn verify_password_slow(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("argon2id"), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (hex::decode(salt), hex::decode(hash)) else {
        return false;
    };
    if salt.len() < argon2::MIN_SALT_LEN || hash.len() != ARGON2_OUT_LEN {
        return false;
    }
    argon2_raw(password, &salt).is_some_and(|out| bool::from(out.ct_eq(&hash)))
}

/// The working memory of Argon2 (19 MiB with the default parameters), kept
/// and reused: every hash takes this one buffer in turn. Allocating it per
/// hash on whichever blocking thread ran it left a 19 MiB heap behind in each
/// thread's malloc arena (a 4011 client logging in twice a second grew the
/// server by 200 MB); one shared buffer keeps it at 19 MiB, and serialises
/// the hashing, which also bounds the CPU a LOGIN flood can take.
static ARGON2_MEMORY: std::sync::Mutex<Vec<argon2::Block>> = std::sync::Mutex::new(Vec::new());

fn argon2_raw(password: &str, salt: &[u8]) -> Option<[u8; ARGON2_OUT_LEN]> {
    let mut out = [0u8; ARGON2_OUT_LEN];
    let argon2 = Argon2::default();
    let mut memory = ARGON2_MEMORY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    memory.resize(argon2.params().block_count(), argon2::Block::default());
    match argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut *memory) {
        Ok(()) => Some(out),
        Err(e) => {
            tracing::error!(error = %e, "argon2 refused its input");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let stored = hash_password("s3cret, with spaces");
        assert!(stored.starts_with("argon2id$"));
        assert!(verify_password("s3cret, with spaces", &stored));
        assert!(!verify_password("s3cret, with spaces ", &stored));
        assert!(!verify_password("", &stored));
    }

    #[test]
    fn only_a_password_that_matched_is_remembered_and_only_for_its_hash() {
        let stored = hash_password("remember me");
        let other = hash_password("remember me");
        let right = Remembered::digest("remember me", &stored);
        assert!(!Remembered::holds(&stored, &right));
        assert!(!verify_password("remember you", &stored));
        assert!(!Remembered::holds(&stored, &Remembered::digest("remember you", &stored)));
        assert!(verify_password("remember me", &stored));
        assert!(Remembered::holds(&stored, &right), "the right password is remembered");
        assert!(verify_password("remember me", &stored), "and verified again");
        assert!(!verify_password("remember me ", &stored), "a near miss still fails");
        // The same password under another stored hash (a new salt) has no entry.
        assert!(!Remembered::holds(&other, &Remembered::digest("remember me", &other)));
        assert!(!Remembered::holds(&other, &right));
    }

    #[test]
    fn same_password_hashes_differently_each_time() {
        assert_ne!(hash_password("x"), hash_password("x"));
    }

    #[test]
    fn malformed_stored_hash_matches_nothing() {
        for stored in ["", "argon2id$", "argon2id$zz$zz", "md5$00$00", "argon2id$00$00$00"] {
            assert!(!verify_password("x", stored), "{stored:?}");
        }
    }

    #[test]
    fn api_key_round_trip() {
        let key = new_api_key();
        assert_eq!(key.len(), 32);
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
        let stored = hash_api_key(&key);
        assert!(verify_api_key(&key, &stored));
        assert!(!verify_api_key(&new_api_key(), &stored));
    }

    #[test]
    fn token_shapes() {
        let token = new_security_token();
        assert_eq!(token.len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let res = new_reservation_token();
        assert_eq!(res.len(), 80);
        assert!(res.bytes().all(|b| BASE32.contains(&b)));
        let pin = new_pin(6);
        assert_eq!(pin.len(), 6);
        assert!(pin.chars().all(|c| c.is_ascii_digit()));
        assert_ne!(new_uid(), new_uid());
    }
}
