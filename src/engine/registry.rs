//! The live registry: who is in which conference now, who holds a seat on the
//! way in, who waits in the green room, which breakout groups a room knows, and
//! who hears the music on hold. Plain data and decisions, no I/O: the engine
//! keeps one behind its mutex and carries out what it decides (room commands,
//! store writes, events). `R` is what the engine keeps per conference (its room
//! task) and `C` per caller (its leg and dialog); tests use `()`.

use std::collections::HashMap;

use tutti_api::Time;
use tutti_api::model::{Caller, Conference, Reservation, Role};
use tutti_api::rules::{Admission, admit};
use tutti_media::io::LegKey;
use tutti_media::mixer::BreakoutId;
use tutti_media::room::PlaybackId;

/// The room's number for the green room: a private group no breakout uses.
pub const GREEN_ROOM: BreakoutId = BreakoutId(u32::MAX);

/// Who waits in the green room while it is on: the people running the call.
pub fn green_room_role(role: Role) -> bool {
    matches!(role, Role::Presenter | Role::Assistant | Role::Operator)
}

/// Who may use the moderator keys: the PBX moderator and MaestroConference
/// operators.
pub fn is_moderator(role: Role) -> bool {
    matches!(role, Role::Moderator | Role::Operator)
}

/// A conference with a live call session.
pub struct LiveConference<R> {
    pub io: R,
    pub call_uid: String,
    pub members: usize,
    /// Callers between opening the conference and becoming members (or giving
    /// up): the session must not close under them.
    pub pending: usize,
    /// The lone caller's leg and the music's playback, while music plays.
    pub music_playing: Option<(LegKey, PlaybackId)>,
    /// The call's green room is on.
    pub green_room: bool,
    /// Whether talking events are sent for this call.
    pub talking_events: bool,
    /// The room recording running now, by recording UID.
    pub recording: Option<String>,
    /// The room recording was started for the conference's `recording`
    /// setting (the PBX's `record_enabled`), once per session.
    pub auto_recorded: bool,
    /// The room's numbers for the call's breakout groups, by breakout UID.
    pub breakouts: HashMap<String, BreakoutId>,
}

impl<R> LiveConference<R> {
    pub fn new(io: R, call_uid: String, green_room: bool, talking_events: bool) -> Self {
        Self {
            io,
            call_uid,
            members: 0,
            pending: 0,
            music_playing: None,
            green_room,
            talking_events,
            recording: None,
            auto_recorded: false,
            breakouts: HashMap::new(),
        }
    }
}

/// A caller in a conference.
pub struct LiveCaller<C> {
    /// The engine's copy; only its live fields are ever written back.
    pub caller: Caller,
    pub conference_uid: String,
    pub leg: LegKey,
    /// Waiting in the green room.
    pub green: bool,
    /// The UID of this caller's own recording, while one runs.
    pub recording: Option<String>,
    /// The room hears speech from it now.
    pub talking: bool,
    pub io: C,
}

/// A caller that left, and what its leaving means for its conference.
pub struct Left<R, C> {
    pub caller: LiveCaller<C>,
    /// The room it left, if its session is still the one it was in.
    pub room: Option<R>,
    /// It was the last one: the session closes.
    pub last: bool,
}

/// What to do about the music on hold of one conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MusicChange {
    /// The playback to stop.
    pub stop: Option<PlaybackId>,
    /// The member that is alone now and should hear it.
    pub start: Option<LegKey>,
}

pub struct Registry<R, C> {
    pub conferences: HashMap<String, LiveConference<R>>,
    pub callers: HashMap<String, LiveCaller<C>>,
    /// Callers admitted and not yet joined, by conference UID.
    seats: HashMap<String, usize>,
}

impl<R, C> Default for Registry<R, C> {
    fn default() -> Self {
        Self { conferences: HashMap::new(), callers: HashMap::new(), seats: HashMap::new() }
    }
}

impl<R: Clone, C> Registry<R, C> {
    /// Whether `conference` takes one more caller at `now`, counting members and
    /// callers on their way in; an admitted caller holds a seat until it joins
    /// or [`Registry::release_seat`].
    pub fn admit(
        &mut self,
        conference: &Conference,
        reservations: &[Reservation],
        now: Time,
    ) -> Result<(), Admission> {
        let members = self.conferences.get(&conference.uid).map_or(0, |c| c.members);
        let seated = self.seats.get(&conference.uid).copied().unwrap_or(0);
        match admit(conference, reservations, now, members + seated) {
            Admission::Admit => {
                *self.seats.entry(conference.uid.clone()).or_default() += 1;
                Ok(())
            }
            refused => Err(refused),
        }
    }

    pub fn release_seat(&mut self, conference_uid: &str) {
        if let Some(seated) = self.seats.get_mut(conference_uid) {
            *seated = seated.saturating_sub(1);
            if *seated == 0 {
                self.seats.remove(conference_uid);
            }
        }
    }

    pub fn seats(&self, conference_uid: &str) -> usize {
        self.seats.get(conference_uid).copied().unwrap_or(0)
    }

    /// A caller on its way into a live conference: its room and call session,
    /// with the caller counted as pending. `None`: no live session.
    pub fn open_existing(&mut self, conference_uid: &str) -> Option<(R, String)> {
        let live = self.conferences.get_mut(conference_uid)?;
        live.pending += 1;
        Some((live.io.clone(), live.call_uid.clone()))
    }

    /// Starts a conference's live session with the arriving caller pending,
    /// unless another caller started one meanwhile (then that one is joined).
    /// Returns the room, the call UID, and whether `session` was the one used.
    pub fn open(&mut self, conference_uid: &str, session: LiveConference<R>) -> (R, String, bool) {
        if let Some((room, call_uid)) = self.open_existing(conference_uid) {
            return (room, call_uid, false);
        }
        let mut session = session;
        session.pending = 1;
        let opened = (session.io.clone(), session.call_uid.clone(), true);
        self.conferences.insert(conference_uid.to_owned(), session);
        opened
    }

    /// A pending caller becomes a member: its seat (if it held one) is given
    /// back, as it now counts as a member.
    pub fn enter(&mut self, caller_uid: &str, live: LiveCaller<C>, held_seat: bool) {
        if let Some(conf) = self.conferences.get_mut(&live.conference_uid) {
            conf.pending = conf.pending.saturating_sub(1);
            conf.members += 1;
        }
        if held_seat {
            self.release_seat(&live.conference_uid);
        }
        self.callers.insert(caller_uid.to_owned(), live);
    }

    /// A pending caller gave up before becoming a member.
    pub fn abandon(&mut self, conference_uid: &str) {
        if let Some(conf) = self.conferences.get_mut(conference_uid) {
            conf.pending = conf.pending.saturating_sub(1);
        }
    }

    /// Takes a caller out of its conference.
    pub fn leave(&mut self, caller_uid: &str) -> Option<Left<R, C>> {
        let caller = self.callers.remove(caller_uid)?;
        // A session that ended and started again under the same conference is
        // not this caller's.
        let (room, last) = match self.conferences.get_mut(&caller.conference_uid) {
            Some(conf) if conf.call_uid == caller.caller.call_uid => {
                conf.members = conf.members.saturating_sub(1);
                (Some(conf.io.clone()), conf.members == 0 && conf.pending == 0)
            }
            _ => (None, false),
        };
        Some(Left { caller, room, last })
    }

    /// Moves a member into another conference it is pending in (it was opened
    /// for it). Returns what the caller was before, and whether its old
    /// conference is now empty.
    pub fn relocate(
        &mut self,
        caller_uid: &str,
        to: &str,
        call_uid: &str,
        held_seat: bool,
    ) -> Option<(Caller, Option<String>, bool)> {
        let live = self.callers.get_mut(caller_uid)?;
        let before = live.caller.clone();
        let from = std::mem::replace(&mut live.conference_uid, to.to_owned());
        live.caller.call_uid = call_uid.to_owned();
        live.caller.breakout_uid = None;
        live.green = false;
        let recording = live.recording.take();
        let from_empty = match self.conferences.get_mut(&from) {
            Some(conf) if conf.call_uid == before.call_uid => {
                conf.members = conf.members.saturating_sub(1);
                conf.members == 0 && conf.pending == 0
            }
            _ => false,
        };
        if let Some(conf) = self.conferences.get_mut(to) {
            conf.pending = conf.pending.saturating_sub(1);
            conf.members += 1;
        }
        if held_seat {
            self.release_seat(to);
        }
        Some((before, recording, from_empty))
    }

    /// Removes a conference's session once nobody is in it or on the way.
    pub fn close_if_empty(&mut self, conference_uid: &str) -> Option<LiveConference<R>> {
        match self.conferences.get(conference_uid) {
            Some(conf) if conf.members == 0 && conf.pending == 0 => {
                self.conferences.remove(conference_uid)
            }
            _ => None,
        }
    }

    /// The conference whose live session is `call_uid`.
    pub fn conference_of_call(&self, call_uid: &str) -> Option<&str> {
        self.conferences.iter().find(|(_, c)| c.call_uid == call_uid).map(|(uid, _)| uid.as_str())
    }

    /// The callers of one conference.
    pub fn callers_in<'a>(
        &'a self,
        conference_uid: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a LiveCaller<C>)> + 'a {
        self.callers.iter().filter(move |(_, c)| c.conference_uid == conference_uid)
    }

    /// Whether a caller of `role` joining now waits in the green room.
    pub fn joins_green_room(&self, conference_uid: &str, role: Role) -> bool {
        self.conferences
            .get(conference_uid)
            .is_some_and(|conf| conf.green_room && green_room_role(role))
    }

    /// Turns a call's green room on or off: off sends everyone waiting there
    /// to the main room (the call goes live); on sends the presenters,
    /// assistants and operators of the main room there. Returns the conference
    /// and the legs to move; they are marked as moved.
    pub fn set_green_room(&mut self, call_uid: &str, on: bool) -> Option<(String, Vec<LegKey>)> {
        let conference_uid = self.conference_of_call(call_uid)?.to_owned();
        if let Some(conf) = self.conferences.get_mut(&conference_uid) {
            conf.green_room = on;
        }
        let mut moved = Vec::new();
        for live in self.callers.values_mut().filter(|c| c.caller.call_uid == call_uid) {
            let goes = if on {
                !live.green
                    && live.caller.breakout_uid.is_none()
                    && green_room_role(live.caller.role)
            } else {
                live.green
            };
            if goes {
                live.green = on;
                moved.push(live.leg);
            }
        }
        Some((conference_uid, moved))
    }

    /// The room's number for a breakout of a live conference, given on first use.
    pub fn breakout_id(&mut self, conference_uid: &str, breakout_uid: &str) -> Option<BreakoutId> {
        let conf = self.conferences.get_mut(conference_uid)?;
        let next = BreakoutId(u32::try_from(conf.breakouts.len() + 1).unwrap_or(u32::MAX - 1));
        Some(*conf.breakouts.entry(breakout_uid.to_owned()).or_insert(next))
    }

    /// Who should hear the music on hold now: a caller alone in the main room
    /// (callers in the green room or a breakout are out of earshot). Says what
    /// to stop and start; nothing when it is already right.
    pub fn music_change(&self, conference_uid: &str) -> Option<MusicChange> {
        let conf = self.conferences.get(conference_uid)?;
        let mut main_room = self
            .callers_in(conference_uid)
            .filter(|(_, c)| !c.green && c.caller.breakout_uid.is_none());
        let alone = match (main_room.next(), main_room.next()) {
            (Some((_, only)), None) => Some(only.leg),
            _ => None,
        };
        if conf.music_playing.map(|(leg, _)| leg) == alone {
            return None;
        }
        Some(MusicChange { stop: conf.music_playing.map(|(_, id)| id), start: alone })
    }

    /// Records what plays the music now (after a [`MusicChange`] was carried out).
    pub fn music_now(&mut self, conference_uid: &str, playing: Option<(LegKey, PlaybackId)>) {
        if let Some(conf) = self.conferences.get_mut(conference_uid) {
            conf.music_playing = playing;
        }
    }

    /// Forgets music that stopped by itself (a STOPWAV to the caller); returns
    /// its conference.
    pub fn music_ended(&mut self, playback: PlaybackId) -> Option<String> {
        let (uid, conf) = self
            .conferences
            .iter_mut()
            .find(|(_, c)| c.music_playing.is_some_and(|(_, m)| m == playback))?;
        conf.music_playing = None;
        Some(uid.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_api::model::{Customer, Direction};

    type Reg = Registry<(), ()>;

    fn conference(max: Option<i64>) -> Conference {
        Conference { max_members: max, ..Conference::new(&Customer::new("Acme"), "Weekly") }
    }

    fn at(s: &str) -> Time {
        s.parse().expect("time")
    }

    /// Opens `conf` (if needed) and joins a caller of `role` on leg `leg`.
    fn join(reg: &mut Reg, conf: &Conference, uid: &str, role: Role, leg: LegKey) {
        reg.open(&conf.uid, LiveConference::new((), "call-1".into(), false, true));
        let mut caller = Caller::new("call-1", Direction::Inbound, role, Time::now());
        caller.uid = uid.into();
        let green = reg.joins_green_room(&conf.uid, role);
        let live = LiveCaller {
            caller,
            conference_uid: conf.uid.clone(),
            leg,
            green,
            recording: None,
            talking: false,
            io: (),
        };
        reg.enter(uid, live, false);
    }

    #[test]
    fn seats_keep_callers_on_their_way_from_overfilling_a_conference() {
        let mut reg = Reg::default();
        let conf = conference(Some(2));
        let now = at("2026-05-01T10:00:00Z");
        assert_eq!(reg.admit(&conf, &[], now), Ok(()));
        assert_eq!(reg.admit(&conf, &[], now), Ok(()));
        assert_eq!(reg.admit(&conf, &[], now), Err(Admission::Full), "two seats taken");
        reg.release_seat(&conf.uid);
        assert_eq!(reg.seats(&conf.uid), 1);
        // The seated caller joins: it counts as a member instead.
        reg.open(&conf.uid, LiveConference::new((), "call-1".into(), false, true));
        let caller = Caller::new("call-1", Direction::Inbound, Role::Participant, now);
        let live = LiveCaller {
            caller,
            conference_uid: conf.uid.clone(),
            leg: 1,
            green: false,
            recording: None,
            talking: false,
            io: (),
        };
        reg.enter("a", live, true);
        assert_eq!(reg.seats(&conf.uid), 0);
        assert_eq!(reg.admit(&conf, &[], now), Ok(()));
        assert_eq!(reg.admit(&conf, &[], now), Err(Admission::Full));
    }

    #[test]
    fn a_reserved_conference_before_its_start_says_so() {
        let mut reg = Reg::default();
        let mut conf = conference(Some(10));
        conf.reserved = true;
        let r = Reservation::new(&conf.uid, at("2026-05-01T10:00:00Z"), 30);
        let early = reg.admit(&conf, std::slice::from_ref(&r), at("2026-05-01T09:00:00Z"));
        assert_eq!(early, Err(Admission::NotStarted { divert: None }));
        assert_eq!(reg.admit(&conf, &[r], at("2026-05-01T10:05:00Z")), Ok(()));
    }

    #[test]
    fn the_last_one_out_closes_the_session_unless_someone_is_on_the_way() {
        let mut reg = Reg::default();
        let conf = conference(None);
        join(&mut reg, &conf, "a", Role::Participant, 1);
        join(&mut reg, &conf, "b", Role::Participant, 2);
        assert!(!reg.leave("a").expect("a").last);
        // Someone is on the way in while b leaves.
        assert!(reg.open_existing(&conf.uid).is_some());
        let left = reg.leave("b").expect("b");
        assert!(!left.last, "a pending caller keeps the session");
        assert!(reg.close_if_empty(&conf.uid).is_none());
        reg.abandon(&conf.uid);
        assert!(reg.close_if_empty(&conf.uid).is_some());
        assert!(reg.leave("b").is_none(), "gone once");
    }

    #[test]
    fn music_plays_to_the_one_caller_alone_in_the_main_room() {
        let mut reg = Reg::default();
        let conf = conference(None);
        join(&mut reg, &conf, "a", Role::Participant, 1);
        let change = reg.music_change(&conf.uid).expect("a change");
        assert_eq!(change, MusicChange { stop: None, start: Some(1) });
        reg.music_now(&conf.uid, Some((1, 100)));
        assert_eq!(reg.music_change(&conf.uid), None, "already right");

        join(&mut reg, &conf, "b", Role::Participant, 2);
        assert_eq!(reg.music_change(&conf.uid), Some(MusicChange { stop: Some(100), start: None }));
        reg.music_now(&conf.uid, None);
        // b goes into a breakout: a is alone in the main room again.
        reg.callers.get_mut("b").expect("b").caller.breakout_uid = Some("g".into());
        assert_eq!(reg.music_change(&conf.uid), Some(MusicChange { stop: None, start: Some(1) }));
        reg.music_now(&conf.uid, Some((1, 101)));
        assert_eq!(reg.music_ended(101), Some(conf.uid.clone()));
        assert_eq!(reg.music_change(&conf.uid), Some(MusicChange { stop: None, start: Some(1) }));
    }

    #[test]
    fn the_green_room_holds_presenters_until_the_call_goes_live() {
        let mut reg = Reg::default();
        let conf = conference(None);
        reg.open(&conf.uid, LiveConference::new((), "call-1".into(), true, true));
        reg.abandon(&conf.uid);
        join(&mut reg, &conf, "p", Role::Presenter, 1);
        join(&mut reg, &conf, "x", Role::Participant, 2);
        assert!(reg.callers["p"].green);
        assert!(!reg.callers["x"].green);
        // The participant waits alone in the main room: music.
        assert_eq!(reg.music_change(&conf.uid).expect("change").start, Some(2));
        reg.music_now(&conf.uid, Some((2, 7)));
        let (uid, moved) = reg.set_green_room("call-1", false).expect("live call");
        assert_eq!((uid.as_str(), moved), (conf.uid.as_str(), vec![1]));
        assert!(!reg.callers["p"].green);
        assert_eq!(reg.music_change(&conf.uid), Some(MusicChange { stop: Some(7), start: None }));
        let (_, moved) = reg.set_green_room("call-1", true).expect("live call");
        assert_eq!(moved, vec![1], "presenters go back, participants stay");
        assert!(reg.set_green_room("no-call", true).is_none());
    }

    #[test]
    fn breakout_numbers_are_stable_and_distinct() {
        let mut reg = Reg::default();
        let conf = conference(None);
        join(&mut reg, &conf, "a", Role::Participant, 1);
        let one = reg.breakout_id(&conf.uid, "g1").expect("id");
        let two = reg.breakout_id(&conf.uid, "g2").expect("id");
        assert_ne!(one, two);
        assert_ne!(one, GREEN_ROOM);
        assert_eq!(reg.breakout_id(&conf.uid, "g1"), Some(one));
        assert_eq!(reg.breakout_id("other", "g1"), None);
    }

    #[test]
    fn relocation_moves_membership_in_one_step() {
        let mut reg = Reg::default();
        let a = conference(None);
        let b = conference(None);
        join(&mut reg, &a, "x", Role::Participant, 1);
        reg.open(&b.uid, LiveConference::new((), "call-2".into(), false, true));
        let (before, _, from_empty) = reg.relocate("x", &b.uid, "call-2", false).expect("moved");
        assert_eq!(before.call_uid, "call-1");
        assert!(from_empty);
        assert_eq!(reg.conferences[&b.uid].members, 1);
        assert_eq!(reg.conferences[&b.uid].pending, 0);
        assert_eq!(reg.callers["x"].caller.call_uid, "call-2");
    }
}
