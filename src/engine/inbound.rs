//! One incoming call, from INVITE to hang-up: the dial plan, admission (a
//! refusal as a SIP status, a redirect, or a prompt in early media), the answer
//! with a media leg, PIN entry, the caller's name, joining, and leaving.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tutti_api::Time;
use tutti_api::model::{Caller, Conference, Direction, Person, Role};
use tutti_api::rules::Admission;
use tutti_media::io::LegIo;
use tutti_media::room::PlayTarget;
use tutti_sip::sdp::Negotiated;
use tutti_sip::ua::IncomingCall;

use super::core::{CallInput, Engine, sleep_until_option};
use super::dialplan;
use super::ivr::{PinAction, PinConfig, PinEntry, Prompt};
use super::membership::Refusal;
use super::prompts::PromptName;

/// How long a late-offer call may take to send its answer in the ACK.
const LATE_ANSWER_TIMEOUT: Duration = Duration::from_secs(32);
/// Silence after a last prompt before hanging up, so its end is not cut.
pub(super) const PROMPT_TAIL_MS: u64 = 300;

impl Engine {
    /// One incoming call, from INVITE to hang-up.
    pub(super) async fn inbound(
        self,
        incoming: IncomingCall,
        mut inputs: mpsc::Receiver<CallInput>,
    ) {
        let call = incoming.call;
        let outcome = self.admit_and_join(&incoming, &mut inputs).await;
        let joined = match outcome {
            Ok(joined) => Some(joined),
            Err(Refusal::Status(status)) => {
                tracing::info!(%call, user = %incoming.request_user, from = %incoming.from_uri, status, "call refused");
                let _ = incoming.reject(status).await;
                None
            }
            Err(Refusal::Admission(Admission::NotStarted { divert: Some(service) })) => {
                let target = divert_uri(&service, &incoming.request_uri);
                tracing::info!(%call, user = %incoming.request_user, %target, "call diverted");
                let _ = incoming.redirect(target).await;
                None
            }
            Err(Refusal::Admission(Admission::Locked)) => {
                // Locked: say so in early media, then 403.
                tracing::info!(%call, user = %incoming.request_user, "call refused: conference locked");
                self.announce_then_reject(&incoming, &mut inputs, PromptName::Locked, 403).await;
                None
            }
            Err(Refusal::Admission(refused)) => {
                let status = refused.sip_status().unwrap_or(480);
                tracing::info!(%call, user = %incoming.request_user, ?refused, status, "call refused");
                let _ = incoming.reject(status).await;
                None
            }
            Err(Refusal::HangUp) => {
                let _ = incoming.control.hangup().await;
                None
            }
            Err(Refusal::Gone) => None,
        };
        if let Some(caller_uid) = joined {
            let reason = self.in_conference(&caller_uid, &mut inputs).await;
            self.leave(&caller_uid, reason).await;
            let _ = incoming.control.hangup().await;
        }
        self.state().calls.remove(&call);
    }

    /// Decides whether the call may enter, answers it and joins it to its
    /// conference; returns the new caller's UID.
    async fn admit_and_join(
        &self,
        incoming: &IncomingCall,
        inputs: &mut mpsc::Receiver<CallInput>,
    ) -> Result<String, Refusal> {
        let store = &self.inner.store;
        let dialled =
            dialplan::parse_user_part(&incoming.request_user).ok_or(Refusal::Status(404))?;
        let guesser = Guesser::of(incoming);
        let entry = match store.conference_by_number(&dialled.number).await {
            Ok(Some(conference)) => match dialled.pin.as_deref() {
                _ if !dialplan::needs_pin(&conference) => Entry::Known {
                    conference: Box::new(conference),
                    role: Role::Participant,
                    person_uid: None,
                },
                Some(pin) => {
                    self.refuse_locked_out(&guesser)?;
                    let role = dialplan::role_for_pin(&conference, pin)
                        .ok_or_else(|| self.wrong_dialled_pin(&guesser))?;
                    Entry::Known { conference: Box::new(conference), role, person_uid: None }
                }
                None => {
                    self.refuse_locked_out(&guesser)?;
                    Entry::AskPin(PinCheck::Conference(Box::new(conference)))
                }
            },
            Ok(None) => {
                let customer = store
                    .customer_by_did(&dialled.number)
                    .await
                    .map_err(|_| Refusal::Status(500))?
                    .ok_or(Refusal::Status(404))?;
                self.refuse_locked_out(&guesser)?;
                match dialled.pin.as_deref() {
                    Some(pin) => {
                        let (conference, role, person_uid) = self
                            .check_pin(&PinCheck::Customer(Box::new(customer)), pin)
                            .await
                            .ok_or_else(|| self.wrong_dialled_pin(&guesser))?;
                        Entry::Known { conference: Box::new(conference), role, person_uid }
                    }
                    None => Entry::AskPin(PinCheck::Customer(Box::new(customer))),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "dial plan lookup failed");
                return Err(Refusal::Status(500));
            }
        };
        // While the conference is known the caller can still be refused with a
        // SIP status; a DID caller's conference is only known after the PIN.
        let known = match &entry {
            Entry::Known { conference, .. } => Some(&**conference),
            Entry::AskPin(PinCheck::Conference(conference)) => Some(&**conference),
            Entry::AskPin(PinCheck::Customer(_)) => None,
        };
        // A caller about to enter keeps its seat; one about to type a PIN only
        // learns now whether the conference would take it.
        let mut seat = match known {
            Some(conference) => Some(self.admission(conference).await?),
            None => None,
        };
        if matches!(entry, Entry::AskPin(_)) {
            seat = None;
        }

        // Answer with a media leg.
        let (sockets, local) = self.bind_media().await.map_err(|e| {
            tracing::error!(error = %e, "no RTP port");
            Refusal::Status(503)
        })?;
        let negotiated = match incoming.answer(local).await {
            Ok(Some(negotiated)) => {
                // A CANCEL can end the INVITE transaction while our 200 is
                // queued, and then no 200 ever leaves: only the ACK proves the
                // caller is here.
                if !wait_for_ack(inputs).await {
                    return Err(Refusal::Gone);
                }
                negotiated
            }
            // A late offer: the answer comes in the ACK itself.
            Ok(None) => wait_for_late_answer(inputs).await.ok_or(Refusal::Gone)?,
            Err(e) => {
                tracing::info!(error = %e, "answer failed");
                return Err(Refusal::Gone);
            }
        };
        let leg = self.start_leg(incoming.call, &negotiated, sockets).map_err(|e| {
            tracing::error!(error = %e, "leg setup failed");
            Refusal::Gone
        })?;
        let key = leg.key();
        let (conference, role, person_uid, pin, leg) = match entry {
            Entry::Known { conference, role, person_uid } => {
                (*conference, role, person_uid, dialled.pin.clone().unwrap_or_default(), leg)
            }
            Entry::AskPin(check) => {
                let Some((conference, role, person_uid, pin, leg)) =
                    self.pin_entry(leg, &check, &guesser, inputs).await
                else {
                    self.state().legs.remove(&key);
                    return Err(Refusal::HangUp);
                };
                match self.admission(&conference).await {
                    Ok(admitted) => seat = Some(admitted),
                    Err(refusal) => {
                        // Answered already: say why, then hang up.
                        let prompt = match refusal {
                            Refusal::Admission(Admission::Locked) => PromptName::Locked,
                            _ => PromptName::Goodbye,
                        };
                        self.say_alone(leg, prompt, inputs).await;
                        self.state().legs.remove(&key);
                        return Err(Refusal::HangUp);
                    }
                }
                (conference, role, person_uid, pin, leg)
            }
        };

        let (leg, spoken_name) = if conference.announce_caller_name {
            match self.record_name(leg, inputs).await {
                Some(recorded) => recorded,
                None => {
                    self.state().legs.remove(&key);
                    return Err(Refusal::HangUp);
                }
            }
        } else {
            (leg, None)
        };
        let mut caller = Caller {
            name: incoming.from_display_name.clone().unwrap_or_default(),
            ani: incoming.from_user.clone().unwrap_or_default(),
            did: dialled.number.clone(),
            pin,
            ..Caller::new("", Direction::Inbound, role, Time::now())
        };
        // A person's PIN: the caller carries the person's name, notes and
        // custom fields, and links to it.
        if let Some(uid) = person_uid {
            match self.inner.store.find::<Person>(&uid).await {
                Ok(Some(person)) => {
                    if !person.name.is_empty() {
                        caller.name = person.name;
                    }
                    caller.notes = person.notes;
                    caller.custom1 = person.custom1;
                    caller.custom2 = person.custom2;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, person = %uid, "person not read"),
            }
            caller.person_uid = Some(uid);
        }
        let control = incoming.control.clone();
        match self.join(&conference, caller, leg, control, seat, spoken_name).await {
            Ok(uid) => Ok(uid),
            Err(e) => {
                tracing::error!(error = %e, "joining the conference failed; hanging up");
                self.state().legs.remove(&key);
                // Answered already: the caller must get a BYE.
                Err(Refusal::HangUp)
            }
        }
    }

    /// Refuses (403) a caller locked out for guessing PINs.
    fn refuse_locked_out(&self, guesser: &Guesser) -> Result<(), Refusal> {
        if self.inner.pin_guard.locked_out(guesser.address, &guesser.caller_id, Instant::now()) {
            tracing::info!(address = ?guesser.address, caller_id = %guesser.caller_id, "call refused: locked out for guessing PINs");
            return Err(Refusal::Status(403));
        }
        Ok(())
    }

    /// Counts a wrong PIN in the dialled number; the call gets 403.
    fn wrong_dialled_pin(&self, guesser: &Guesser) -> Refusal {
        self.inner.pin_guard.wrong_pin(guesser.address, &guesser.caller_id, Instant::now());
        Refusal::Status(403)
    }

    /// The conference, role and person a PIN gives, if any.
    async fn check_pin(
        &self,
        check: &PinCheck,
        pin: &str,
    ) -> Option<(Conference, Role, Option<String>)> {
        match check {
            PinCheck::Conference(conference) => dialplan::role_for_pin(conference, pin)
                .map(|role| ((**conference).clone(), role, None)),
            PinCheck::Customer(customer) => {
                let store = &self.inner.store;
                let person = store.person_by_pin(&customer.uid, pin).await.ok().flatten()?;
                let conference = store.get::<Conference>(&person.conference_uid).await.ok()?;
                Some((conference, person.role, Some(person.uid)))
            }
        }
    }

    /// PIN entry for an answered caller, alone in a room of its own: the prompt,
    /// digits until `#` or a pause, three tries (src/engine/ivr.rs). Gives the
    /// leg back with what the PIN opened, or `None` after goodbye or hang-up.
    async fn pin_entry(
        &self,
        leg: LegIo,
        check: &PinCheck,
        guesser: &Guesser,
        inputs: &mut mpsc::Receiver<CallInput>,
    ) -> Option<(Conference, Role, Option<String>, String, LegIo)> {
        let key = leg.key();
        let room = self.new_room().ok()?;
        room.join(leg).await.ok()?;
        let (mut entry, first) = PinEntry::start(PinConfig::default(), std::time::Instant::now());
        let mut action = Some(first);
        let found = loop {
            match action.take() {
                Some(PinAction::Play(prompt)) => {
                    let name = match prompt {
                        Prompt::EnterPin => PromptName::EnterPin,
                        Prompt::WrongPin => PromptName::WrongPin,
                        Prompt::Goodbye => PromptName::Goodbye,
                    };
                    let _ = room.stop(PlayTarget::Member(key)).await;
                    self.play_prompt(&room, key, name).await;
                }
                Some(PinAction::StopPrompt) => {
                    let _ = room.stop(PlayTarget::Member(key)).await;
                }
                Some(PinAction::Check(pin)) => match self.check_pin(check, &pin).await {
                    Some(opened) => break Some((opened, pin)),
                    None => {
                        tracing::info!(leg = key, "wrong PIN");
                        let now = std::time::Instant::now();
                        let guard = &self.inner.pin_guard;
                        action = if guard.wrong_pin(guesser.address, &guesser.caller_id, now) {
                            // Locked out: no more tries, on this call or the next.
                            Some(PinAction::Goodbye)
                        } else {
                            entry.handle_verdict(now, false)
                        };
                        continue;
                    }
                },
                Some(PinAction::Goodbye) => {
                    let _ = room.stop(PlayTarget::Member(key)).await;
                    let ms = self.play_prompt(&room, key, PromptName::Goodbye).await;
                    tokio::time::sleep(Duration::from_millis(ms + PROMPT_TAIL_MS)).await;
                    break None;
                }
                None => {}
            }
            let deadline = entry.poll_timeout();
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(CallInput::Digit(digit)) => {
                        action = entry.handle_digit(std::time::Instant::now(), digit);
                    }
                    Some(CallInput::Hangup(_) | CallInput::Silent { .. }) | None => break None,
                    Some(_) => {}
                },
                () = sleep_until_option(deadline) => {
                    action = entry.handle_timeout(std::time::Instant::now());
                }
            }
        };
        let leg = room.leave(key).await.ok().flatten()?;
        let ((conference, role, person_uid), pin) = found?;
        Some((conference, role, person_uid, pin, leg))
    }

    /// Tells a caller why it cannot enter before refusing it: the prompt in
    /// early media (183 Session Progress with our SDP), then `status`. A caller
    /// without an offer in its INVITE, or one that cannot take early media, gets
    /// the status alone; one that cancels meanwhile gets nothing more.
    async fn announce_then_reject(
        &self,
        incoming: &IncomingCall,
        inputs: &mut mpsc::Receiver<CallInput>,
        prompt: PromptName,
        status: u16,
    ) {
        let early = match (&incoming.offer, self.bind_media().await) {
            (Some(_), Ok((sockets, local))) => match incoming.early_media(local).await {
                Ok(negotiated) => self.start_leg(incoming.call, &negotiated, sockets).ok(),
                Err(e) => {
                    tracing::debug!(error = %e, "no early media");
                    None
                }
            },
            _ => None,
        };
        if let Some(leg) = early {
            let key = leg.key();
            if !self.say_alone(leg, prompt, inputs).await {
                tracing::debug!("caller gone during the announcement");
            }
            self.state().legs.remove(&key);
        }
        // Harmless on a dialog that already ended (a CANCEL); needed after an
        // RTCP BYE, which ends the leg but not the INVITE transaction.
        let _ = incoming.reject(status).await;
    }

    /// Plays a prompt to a caller alone in a room of its own, to its end; then
    /// the leg is let go. `false` when the caller hung up first.
    async fn say_alone(
        &self,
        leg: LegIo,
        prompt: PromptName,
        inputs: &mut mpsc::Receiver<CallInput>,
    ) -> bool {
        let key = leg.key();
        let Ok(room) = self.new_room() else { return true };
        if room.join(leg).await.is_err() {
            return true;
        }
        let ms = self.play_prompt(&room, key, prompt).await;
        let present = super::announce::wait_unless_hangup(inputs, ms + PROMPT_TAIL_MS).await;
        let _ = room.leave(key).await;
        present
    }
}

/// How a call enters: straight to a conference, or through PIN entry.
enum Entry {
    Known { conference: Box<Conference>, role: Role, person_uid: Option<String> },
    AskPin(PinCheck),
}

/// What a PIN typed at the prompt is checked against.
enum PinCheck {
    /// The conference's participant and moderator PINs.
    Conference(Box<Conference>),
    /// The PINs of the customer's persons (its DID was dialled).
    Customer(Box<tutti_api::model::Customer>),
}

async fn wait_for_late_answer(inputs: &mut mpsc::Receiver<CallInput>) -> Option<Negotiated> {
    let wait = async {
        while let Some(input) = inputs.recv().await {
            match input {
                CallInput::MediaChanged(negotiated) => return Some(negotiated),
                CallInput::Hangup(_) => return None,
                CallInput::Silent { .. } => return None,
                CallInput::Answered | CallInput::Digit(_) | CallInput::Progress(_) => {}
            }
        }
        None
    };
    tokio::time::timeout(LATE_ANSWER_TIMEOUT, wait).await.ok().flatten()
}

/// Waits for the ACK of our 2xx (true), or for the call to end first (false).
/// The user agent gives up and hangs up after 64*T1 without an ACK, so this
/// ends either way.
async fn wait_for_ack(inputs: &mut mpsc::Receiver<CallInput>) -> bool {
    while let Some(input) = inputs.recv().await {
        match input {
            CallInput::Answered => return true,
            CallInput::Hangup(_) => return false,
            CallInput::Silent { .. } => return false,
            CallInput::MediaChanged(_) | CallInput::Digit(_) | CallInput::Progress(_) => {}
        }
    }
    false
}

/// Where an early caller is diverted: a SIP URI as given, or a service name on
/// this server as the caller addressed it (`sip:<service>@<host of the request URI>`).
fn divert_uri(service: &str, request_uri: &str) -> String {
    let lower = service.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        return service.to_owned();
    }
    let after_scheme = request_uri.split_once(':').map_or(request_uri, |(_, rest)| rest);
    let host_part = after_scheme.rsplit_once('@').map_or(after_scheme, |(_, host)| host);
    let host: String = host_part.chars().take_while(|c| !matches!(c, ';' | '>' | '?')).collect();
    format!("sip:{service}@{host}")
}

/// Who is typing or dialling PINs, for the PIN guard.
struct Guesser {
    address: Option<std::net::IpAddr>,
    caller_id: String,
}

impl Guesser {
    fn of(incoming: &IncomingCall) -> Self {
        Self {
            address: incoming.remote_addr.map(|a| a.ip()),
            caller_id: incoming.from_user.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod divert_tests {
    use super::divert_uri;

    #[test]
    fn a_service_name_is_diverted_on_this_server() {
        assert_eq!(
            divert_uri("EarlyAnnouncement", "sip:Board@10.0.0.5:5060;transport=udp"),
            "sip:EarlyAnnouncement@10.0.0.5:5060"
        );
        assert_eq!(divert_uri("Later", "sip:tutti.example.com"), "sip:Later@tutti.example.com");
        assert_eq!(divert_uri("sip:ivr@10.1.1.1", "sip:Board@10.0.0.5"), "sip:ivr@10.1.1.1");
    }
}
