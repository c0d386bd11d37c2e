//! The dial plan: what the user part of a request URI means and which role a
//! PIN gives. Pure functions; whether a caller may enter is the domain's rule
//! (`tutti_api::rules::admission`), which the engine applies with its seats.
//!
//! - `<number>` is a conference's dial-in number (TCP 4011 `cn`, PBX number,
//!   Aculab `conference_name`) or a customer's DID (MaestroConference: the PIN then
//!   picks the person, and thereby the conference and role).
//! - `<number>*<pin>` supplies the PIN in the URI, for trunks and test tools.

use tutti_api::model::{Conference, Role};

/// A request URI's user part, split into the number dialled and a PIN given with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialled {
    pub number: String,
    pub pin: Option<String>,
}

/// The longest user part we look at; longer ones cannot be a number of ours.
const MAX_USER_PART: usize = 128;

/// Splits `4001*1234` into number `4001` and PIN `1234`. Visual separators that
/// phones and trunks add (`-`, `.`, spaces, `(`, `)`) are dropped from the number;
/// a leading `+` is kept, as DIDs are stored in E.164. Returns `None` for an empty
/// or oversized user part.
pub fn parse_user_part(user: &str) -> Option<Dialled> {
    let user = percent_decode(user.trim())?;
    if user.is_empty() || user.len() > MAX_USER_PART {
        return None;
    }
    let (number, pin) = match user.split_once('*') {
        Some((number, pin)) => (number, Some(pin)),
        None => (user.as_str(), None),
    };
    let number: String =
        number.chars().filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')')).collect();
    if number.is_empty() {
        return None;
    }
    let pin = pin.map(|p| p.trim_end_matches('#').to_owned()).filter(|p| !p.is_empty());
    Some(Dialled { number, pin })
}

/// RFC 3261 allows escaped characters in the user part (`%2A` for `*`).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a PIN typed into a conference's own number gives: the participant PIN
/// makes a participant, the moderator PIN a moderator. `None`: wrong PIN.
pub fn role_for_pin(conference: &Conference, pin: &str) -> Option<Role> {
    let matches =
        |stored: &Option<String>| stored.as_deref().is_some_and(|s| !s.is_empty() && s == pin);
    if matches(&conference.moderator_pin) {
        Some(Role::Moderator)
    } else if matches(&conference.participant_pin) {
        Some(Role::Participant)
    } else {
        None
    }
}

/// Whether callers to this conference's number must type a PIN.
pub fn needs_pin(conference: &Conference) -> bool {
    [&conference.participant_pin, &conference.moderator_pin]
        .iter()
        .any(|pin| pin.as_deref().is_some_and(|p| !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_api::model::Customer;

    fn conference() -> Conference {
        Conference::new(&Customer::new("Acme"), "Weekly")
    }

    #[test]
    fn user_parts() {
        let d = |number: &str, pin: Option<&str>| {
            Some(Dialled { number: number.into(), pin: pin.map(str::to_owned) })
        };
        assert_eq!(parse_user_part("4001"), d("4001", None));
        assert_eq!(parse_user_part("4001*1234"), d("4001", Some("1234")));
        assert_eq!(parse_user_part("4001*1234#"), d("4001", Some("1234")));
        assert_eq!(parse_user_part("4001%2A99"), d("4001", Some("99")));
        assert_eq!(parse_user_part("+44 (20) 7946-0000"), d("+442079460000", None));
        assert_eq!(parse_user_part("4001*"), d("4001", None));
        assert_eq!(parse_user_part("MyConferenceRoom"), d("MyConferenceRoom", None));
        for bad in ["", "  ", "*1234", "%zz", "%4", &"9".repeat(200)] {
            assert_eq!(parse_user_part(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pins_pick_roles() {
        let mut c = conference();
        assert!(!needs_pin(&c));
        assert_eq!(role_for_pin(&c, ""), None);
        c.participant_pin = Some("1234".into());
        c.moderator_pin = Some("9999".into());
        assert!(needs_pin(&c));
        assert_eq!(role_for_pin(&c, "1234"), Some(Role::Participant));
        assert_eq!(role_for_pin(&c, "9999"), Some(Role::Moderator));
        assert_eq!(role_for_pin(&c, "12345"), None);
        assert_eq!(role_for_pin(&c, ""), None);
        c.participant_pin = Some(String::new());
        assert_eq!(role_for_pin(&c, ""), None, "an empty stored PIN never matches");
    }
}
