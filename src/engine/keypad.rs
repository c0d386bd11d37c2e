//! The in-call keypad map (docs/keypad.md): plain `1`/`2` mute and unmute for
//! callers allowed DTMF control, and `*` codes for the microphone, invitations,
//! room control and raising a hand. A sans-IO state machine per caller: digits,
//! the time and the caller's standing go in, actions come out.
//!
//! `*` starts a code; a code runs as soon as it is complete (`*1`, `*7`, `*90`),
//! and an unfinished one (`*`, `*9`) is dropped after a pause, so plain digits
//! keep working for everyone else (every digit is also reported as a DIGIT event
//! by the engine).

use std::time::{Duration, Instant};

/// What a key sequence asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// `1`: mute myself.
    MuteSelf,
    /// `2`: unmute myself.
    UnmuteSelf,
    /// `*1`: toggle my microphone.
    ToggleMic,
    /// `*7`: raise or lower my hand (MaestroConference attention).
    ToggleHand,
    /// `*8`: prompt for a number to invite.
    InvitePrompt,
    /// The number typed after `*8`, ended by `#`.
    Invite(String),
    /// `*8` abandoned (`*` or a long pause).
    InviteCancelled,
    /// `*90`: unmute all non-moderators.
    UnmuteAll,
    /// `*91`: mute all non-moderators.
    MuteAll,
    /// `*92`: lock the conference.
    Lock,
    /// `*93`: unlock it.
    Unlock,
    /// `*94`: no entry notifications.
    NotificationsOff,
    /// `*95`: entry notifications again.
    NotificationsOn,
    /// A known code the caller may not use (the engine may play a prompt).
    Denied(&'static str),
}

/// What the keypad needs to know about the caller and the conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub moderator: bool,
    /// DTMFUSER/DTMFALL, Aculab dtmf_enabled: may use `1` and `2`.
    pub dtmf_allowed: bool,
    /// With mute_non_moderator, only moderators may use `*1`.
    pub mute_non_moderator: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeypadConfig {
    /// How long an unfinished `*` code waits for its next digit.
    pub code_timeout: Duration,
    /// How long `*8` waits between digits of the number.
    pub number_timeout: Duration,
    pub max_number_digits: usize,
}

impl Default for KeypadConfig {
    fn default() -> Self {
        Self {
            code_timeout: Duration::from_secs(2),
            number_timeout: Duration::from_secs(10),
            max_number_digits: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// After `*`: the code so far (without the star), and when the last key came.
    Code {
        code: String,
        last: Instant,
    },
    /// After `*8`: the number so far.
    Number {
        number: String,
        last: Instant,
    },
}

#[derive(Debug, Clone)]
pub struct Keypad {
    config: KeypadConfig,
    state: State,
}

impl Keypad {
    pub fn new(config: KeypadConfig) -> Self {
        Self { config, state: State::Idle }
    }

    #[must_use]
    pub fn handle_digit(&mut self, now: Instant, digit: char, who: Standing) -> Option<KeyAction> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => match digit {
                '*' => {
                    self.state = State::Code { code: String::new(), last: now };
                    None
                }
                '1' if who.dtmf_allowed => Some(KeyAction::MuteSelf),
                '2' if who.dtmf_allowed => Some(KeyAction::UnmuteSelf),
                _ => None,
            },
            State::Code { mut code, .. } => {
                match digit {
                    // A second star starts the code again; `#` abandons it.
                    '*' => {
                        self.state = State::Code { code: String::new(), last: now };
                        return None;
                    }
                    '#' => return None,
                    _ => code.push(digit),
                }
                match code.as_str() {
                    "1" if who.mute_non_moderator && !who.moderator => {
                        Some(KeyAction::Denied("moderators only under mute_non_moderator"))
                    }
                    "1" => Some(KeyAction::ToggleMic),
                    "7" => Some(KeyAction::ToggleHand),
                    "8" => {
                        self.state = State::Number { number: String::new(), last: now };
                        Some(KeyAction::InvitePrompt)
                    }
                    "9" => {
                        self.state = State::Code { code, last: now };
                        None
                    }
                    "90" | "91" | "92" | "93" | "94" | "95" if !who.moderator => {
                        Some(KeyAction::Denied("moderators only"))
                    }
                    "90" => Some(KeyAction::UnmuteAll),
                    "91" => Some(KeyAction::MuteAll),
                    "92" => Some(KeyAction::Lock),
                    "93" => Some(KeyAction::Unlock),
                    "94" => Some(KeyAction::NotificationsOff),
                    "95" => Some(KeyAction::NotificationsOn),
                    // Not a code: forget it.
                    _ => None,
                }
            }
            State::Number { mut number, .. } => match digit {
                '#' if number.is_empty() => Some(KeyAction::InviteCancelled),
                '#' => Some(KeyAction::Invite(number)),
                '*' => Some(KeyAction::InviteCancelled),
                '0'..='9' => {
                    number.push(digit);
                    if number.len() > self.config.max_number_digits {
                        return Some(KeyAction::InviteCancelled);
                    }
                    self.state = State::Number { number, last: now };
                    None
                }
                _ => {
                    self.state = State::Number { number, last: now };
                    None
                }
            },
        }
    }

    /// When [`Keypad::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Idle => None,
            State::Code { last, .. } => Some(*last + self.config.code_timeout),
            State::Number { last, .. } => Some(*last + self.config.number_timeout),
        }
    }

    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> Option<KeyAction> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Number { .. } => Some(KeyAction::InviteCancelled),
            State::Idle | State::Code { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: Standing =
        Standing { moderator: false, dtmf_allowed: true, mute_non_moderator: false };
    const MODERATOR: Standing =
        Standing { moderator: true, dtmf_allowed: true, mute_non_moderator: false };

    fn keys(pad: &mut Keypad, now: Instant, who: Standing, seq: &str) -> Vec<KeyAction> {
        seq.chars().filter_map(|d| pad.handle_digit(now, d, who)).collect()
    }

    #[test]
    fn plain_digits_mute_and_unmute_when_allowed() {
        let now = Instant::now();
        let mut pad = Keypad::new(KeypadConfig::default());
        assert_eq!(
            keys(&mut pad, now, CALLER, "1234"),
            [KeyAction::MuteSelf, KeyAction::UnmuteSelf]
        );
        let denied = Standing { dtmf_allowed: false, ..CALLER };
        assert_eq!(keys(&mut pad, now, denied, "12"), []);
    }

    #[test]
    fn star_codes_for_everyone() {
        let now = Instant::now();
        let mut pad = Keypad::new(KeypadConfig::default());
        assert_eq!(keys(&mut pad, now, CALLER, "*1"), [KeyAction::ToggleMic]);
        assert_eq!(keys(&mut pad, now, CALLER, "*7"), [KeyAction::ToggleHand]);
        assert_eq!(keys(&mut pad, now, CALLER, "1"), [KeyAction::MuteSelf], "back to plain digits");
    }

    #[test]
    fn moderator_codes() {
        let now = Instant::now();
        let mut pad = Keypad::new(KeypadConfig::default());
        let all = keys(&mut pad, now, MODERATOR, "*90*91*92*93*94*95");
        assert_eq!(
            all,
            [
                KeyAction::UnmuteAll,
                KeyAction::MuteAll,
                KeyAction::Lock,
                KeyAction::Unlock,
                KeyAction::NotificationsOff,
                KeyAction::NotificationsOn
            ]
        );
        assert_eq!(keys(&mut pad, now, CALLER, "*91"), [KeyAction::Denied("moderators only")]);
    }

    #[test]
    fn mute_non_moderator_reserves_star_one_for_moderators() {
        let now = Instant::now();
        let mut pad = Keypad::new(KeypadConfig::default());
        let strict = Standing { mute_non_moderator: true, ..CALLER };
        assert!(matches!(keys(&mut pad, now, strict, "*1")[..], [KeyAction::Denied(_)]));
        let strict_mod = Standing { mute_non_moderator: true, ..MODERATOR };
        assert_eq!(keys(&mut pad, now, strict_mod, "*1"), [KeyAction::ToggleMic]);
    }

    #[test]
    fn invite_collects_a_number_ended_by_hash() {
        let now = Instant::now();
        let mut pad = Keypad::new(KeypadConfig::default());
        assert_eq!(
            keys(&mut pad, now, CALLER, "*8015550100#"),
            [KeyAction::InvitePrompt, KeyAction::Invite("015550100".into())]
        );
        assert_eq!(
            keys(&mut pad, now, CALLER, "*812*"),
            [KeyAction::InvitePrompt, KeyAction::InviteCancelled]
        );
        assert_eq!(
            keys(&mut pad, now, CALLER, "*8#"),
            [KeyAction::InvitePrompt, KeyAction::InviteCancelled]
        );
        let _ = keys(&mut pad, now, CALLER, "*8");
        let long = "9".repeat(40);
        assert_eq!(keys(&mut pad, now, CALLER, &long), [KeyAction::InviteCancelled]);
    }

    #[test]
    fn unfinished_codes_and_numbers_time_out() {
        let t0 = Instant::now();
        let mut pad = Keypad::new(KeypadConfig::default());
        assert_eq!(keys(&mut pad, t0, MODERATOR, "*9"), []);
        let due = pad.poll_timeout().expect("waiting for the code's next digit");
        assert_eq!(due, t0 + Duration::from_secs(2));
        assert_eq!(pad.handle_timeout(due), None);
        assert_eq!(pad.poll_timeout(), None);
        assert_eq!(
            keys(&mut pad, due, MODERATOR, "1"),
            [KeyAction::MuteSelf],
            "the 1 is plain again"
        );

        let _ = keys(&mut pad, t0, CALLER, "*855");
        let due = pad.poll_timeout().expect("waiting for the number");
        assert_eq!(pad.handle_timeout(due - Duration::from_millis(1)), None);
        assert_eq!(pad.handle_timeout(due), Some(KeyAction::InviteCancelled));
    }

    #[test]
    fn unknown_codes_and_star_restart() {
        let now = Instant::now();
        let mut pad = Keypad::new(KeypadConfig::default());
        assert_eq!(keys(&mut pad, now, MODERATOR, "*4"), []);
        assert_eq!(keys(&mut pad, now, MODERATOR, "*99"), []);
        assert_eq!(keys(&mut pad, now, MODERATOR, "**91"), [KeyAction::MuteAll]);
        assert_eq!(keys(&mut pad, now, MODERATOR, "*#1"), [KeyAction::MuteSelf]);
    }
}
