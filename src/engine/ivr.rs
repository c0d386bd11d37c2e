//! PIN entry: the prompt, digit collection ended by `#` or an inter-digit pause,
//! and three tries before goodbye. A sans-IO state machine: digits and the time go
//! in, prompts to play, PINs to check and the hang-up come out.

use std::time::{Duration, Instant};

/// The prompts PIN entry plays; the engine maps them to WAV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    EnterPin,
    WrongPin,
    Goodbye,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinAction {
    /// Stop any prompt and play this one.
    Play(Prompt),
    /// The caller started typing: stop the prompt.
    StopPrompt,
    /// Check this PIN and answer with [`PinEntry::handle_verdict`].
    Check(String),
    /// Play goodbye, then hang up.
    Goodbye,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinConfig {
    pub max_tries: u32,
    /// After the last digit, how long to wait before taking what was typed.
    pub inter_digit_timeout: Duration,
    /// After a prompt, how long to wait for a first digit before re-prompting
    /// (which costs a try, so a silent line is dropped eventually).
    pub first_digit_timeout: Duration,
    /// A PIN longer than this is checked at once, so a stuck key cannot grow it.
    pub max_digits: usize,
}

impl Default for PinConfig {
    fn default() -> Self {
        Self {
            max_tries: 3,
            inter_digit_timeout: Duration::from_secs(5),
            first_digit_timeout: Duration::from_secs(15),
            max_digits: 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for digits since `since`.
    Collecting {
        since: Instant,
    },
    /// A PIN was handed out for checking.
    Checking,
    Accepted,
    Finished,
}

#[derive(Debug, Clone)]
pub struct PinEntry {
    config: PinConfig,
    state: State,
    digits: String,
    failures: u32,
}

impl PinEntry {
    /// Starts PIN entry; the first action is the prompt.
    pub fn start(config: PinConfig, now: Instant) -> (Self, PinAction) {
        let entry = Self {
            config,
            state: State::Collecting { since: now },
            digits: String::new(),
            failures: 0,
        };
        (entry, PinAction::Play(Prompt::EnterPin))
    }

    pub fn is_accepted(&self) -> bool {
        self.state == State::Accepted
    }

    /// Failed tries so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    #[must_use]
    pub fn handle_digit(&mut self, now: Instant, digit: char) -> Option<PinAction> {
        if !matches!(self.state, State::Collecting { .. }) {
            return None;
        }
        let first = self.digits.is_empty();
        match digit {
            '#' => return Some(self.take()),
            '0'..='9' => self.digits.push(digit),
            // `*` starts over, as on most conference bridges.
            '*' => self.digits.clear(),
            _ => return None,
        }
        self.state = State::Collecting { since: now };
        if self.digits.len() >= self.config.max_digits {
            return Some(self.take());
        }
        (first && digit != '*').then_some(PinAction::StopPrompt)
    }

    /// When [`PinEntry::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Collecting { since } if self.digits.is_empty() => {
                Some(since + self.config.first_digit_timeout)
            }
            State::Collecting { since } => Some(since + self.config.inter_digit_timeout),
            _ => None,
        }
    }

    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> Option<PinAction> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        if self.digits.is_empty() {
            // Nothing typed: counts as a wrong try, then prompt again.
            return Some(self.fail(now));
        }
        Some(self.take())
    }

    /// The engine's answer to [`PinAction::Check`].
    #[must_use]
    pub fn handle_verdict(&mut self, now: Instant, accepted: bool) -> Option<PinAction> {
        if self.state != State::Checking {
            return None;
        }
        if accepted {
            self.state = State::Accepted;
            return None;
        }
        Some(self.fail(now))
    }

    fn take(&mut self) -> PinAction {
        self.state = State::Checking;
        PinAction::Check(std::mem::take(&mut self.digits))
    }

    fn fail(&mut self, now: Instant) -> PinAction {
        self.failures += 1;
        self.digits.clear();
        if self.failures >= self.config.max_tries {
            self.state = State::Finished;
            PinAction::Goodbye
        } else {
            self.state = State::Collecting { since: now };
            PinAction::Play(Prompt::WrongPin)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(entry: &mut PinEntry, now: Instant, keys: &str) -> Vec<PinAction> {
        keys.chars().filter_map(|k| entry.handle_digit(now, k)).collect()
    }

    #[test]
    fn pin_ended_by_hash_is_checked_and_accepted() {
        let t0 = Instant::now();
        let (mut e, first) = PinEntry::start(PinConfig::default(), t0);
        assert_eq!(first, PinAction::Play(Prompt::EnterPin));
        let actions = typed(&mut e, t0, "1234#");
        assert_eq!(actions, [PinAction::StopPrompt, PinAction::Check("1234".into())]);
        assert_eq!(e.poll_timeout(), None, "no timer while the engine checks");
        assert_eq!(e.handle_verdict(t0, true), None);
        assert!(e.is_accepted());
        assert_eq!(e.handle_digit(t0, '5'), None, "digits after acceptance are not PIN digits");
    }

    #[test]
    fn a_pause_ends_the_pin() {
        let t0 = Instant::now();
        let (mut e, _) = PinEntry::start(PinConfig::default(), t0);
        let _ = typed(&mut e, t0, "42");
        let due = e.poll_timeout().expect("timer");
        assert_eq!(due, t0 + Duration::from_secs(5));
        assert_eq!(e.handle_timeout(due - Duration::from_millis(1)), None);
        assert_eq!(e.handle_timeout(due), Some(PinAction::Check("42".into())));
    }

    #[test]
    fn three_wrong_pins_end_with_goodbye() {
        let t0 = Instant::now();
        let (mut e, _) = PinEntry::start(PinConfig::default(), t0);
        for attempt in 1..=3 {
            let _ = typed(&mut e, t0, "0000#");
            let next = e.handle_verdict(t0, false);
            if attempt < 3 {
                assert_eq!(next, Some(PinAction::Play(Prompt::WrongPin)), "attempt {attempt}");
            } else {
                assert_eq!(next, Some(PinAction::Goodbye));
            }
        }
        assert_eq!(e.failures(), 3);
        assert_eq!(e.poll_timeout(), None);
        assert_eq!(e.handle_digit(t0, '1'), None);
    }

    #[test]
    fn silence_costs_tries_so_a_dead_line_is_dropped() {
        let t0 = Instant::now();
        let (mut e, _) = PinEntry::start(PinConfig::default(), t0);
        let mut now = t0;
        let mut last = None;
        for _ in 0..3 {
            now = e.poll_timeout().expect("timer");
            last = e.handle_timeout(now);
        }
        assert_eq!(last, Some(PinAction::Goodbye));
        assert!(now >= t0 + Duration::from_secs(45));
    }

    #[test]
    fn star_restarts_and_stuck_keys_are_bounded() {
        let t0 = Instant::now();
        let (mut e, _) = PinEntry::start(PinConfig::default(), t0);
        let actions = typed(&mut e, t0, "99*1234#");
        assert_eq!(actions.last(), Some(&PinAction::Check("1234".into())));
        let _ = e.handle_verdict(t0, false);
        let actions = typed(&mut e, t0, &"7".repeat(40));
        assert_eq!(actions.last(), Some(&PinAction::Check("7".repeat(16))));
        assert_eq!(typed(&mut e, t0, "A"), [], "non-digits are ignored");
    }

    #[test]
    fn an_empty_hash_is_a_wrong_pin() {
        let t0 = Instant::now();
        let (mut e, _) = PinEntry::start(PinConfig::default(), t0);
        assert_eq!(typed(&mut e, t0, "#"), [PinAction::Check(String::new())]);
    }
}
