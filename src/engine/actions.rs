//! What a caller's keys do (src/engine/keypad.rs decides, this carries it out)
//! and what a caller's re-INVITE changes: digits reported to the interfaces,
//! mute and hand keys, the moderator's room-wide keys, `*8` invitations.

use tutti_api::Time;
use tutti_api::live::{CallerField, Event};
use tutti_api::model::{Caller, Conference, Direction, Role};
use tutti_sip::sdp::{MediaDirection, Negotiated};

use super::core::Engine;
use super::keypad::{KeyAction, Standing};
use super::outbound::OnAnswer;
use super::prompts::PromptName;
use super::registry::is_moderator;

impl Engine {
    /// Reports a digit to the facades and says what the keypad needs to know
    /// about the caller; `None` when the caller is gone.
    pub(super) async fn digit(&self, caller_uid: &str, digit: char) -> Option<Standing> {
        let (conference_uid, caller) = {
            let state = self.state();
            let live = state.live.callers.get(caller_uid)?;
            (live.conference_uid.clone(), live.caller.clone())
        };
        tracing::debug!(caller = %caller_uid, %digit, "digit");
        self.inner.events.publish(Event::Digit {
            conference_uid: conference_uid.clone(),
            call_uid: caller.call_uid.clone(),
            caller_uid: caller_uid.to_owned(),
            digit,
        });
        let mute_non_moderator = self
            .inner
            .store
            .get::<Conference>(&conference_uid)
            .await
            .map(|c| c.mute_non_moderator)
            .unwrap_or(false);
        Some(Standing {
            moderator: is_moderator(caller.role),
            dtmf_allowed: caller.dtmf_allowed,
            mute_non_moderator,
        })
    }

    pub(super) async fn key_action(&self, caller_uid: &str, action: KeyAction) {
        let Some(conference_uid) =
            self.state().live.callers.get(caller_uid).map(|c| c.conference_uid.clone())
        else {
            return;
        };
        tracing::info!(caller = %caller_uid, ?action, "keypad");
        match action {
            KeyAction::MuteSelf => self.mute(caller_uid, Some(true)).await,
            KeyAction::UnmuteSelf => self.mute(caller_uid, Some(false)).await,
            KeyAction::ToggleMic => self.mute(caller_uid, None).await,
            KeyAction::ToggleHand => {
                let _ = self
                    .set_caller(caller_uid, CallerField::Attention, |c| {
                        c.attention = if c.attention > 0 { 0 } else { 1 };
                        c.attention_time = (c.attention > 0).then(Time::now);
                    })
                    .await;
            }
            KeyAction::MuteAll | KeyAction::UnmuteAll => {
                let mute = action == KeyAction::MuteAll;
                let others: Vec<String> = self
                    .state()
                    .live
                    .callers_in(&conference_uid)
                    .filter(|(_, c)| !is_moderator(c.caller.role))
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in others {
                    self.mute(&uid, Some(mute)).await;
                }
            }
            KeyAction::Lock
            | KeyAction::Unlock
            | KeyAction::NotificationsOff
            | KeyAction::NotificationsOn => {
                self.modify_conference(&conference_uid, |c| match action {
                    KeyAction::Lock => c.locked = true,
                    KeyAction::Unlock => c.locked = false,
                    KeyAction::NotificationsOff => c.entry_notifications = false,
                    _ => c.entry_notifications = true,
                })
                .await;
            }
            KeyAction::Invite(number) => {
                let Ok(conference) = self.inner.store.get::<Conference>(&conference_uid).await
                else {
                    return;
                };
                let callee = Caller::new("", Direction::Outbound, Role::Participant, Time::now());
                if let Err(e) = self.dial(conference, callee, number, OnAnswer::default()).await {
                    tracing::info!(error = %e, "*8 invitation failed");
                }
            }
            KeyAction::InvitePrompt => {
                let found = {
                    let state = self.state();
                    let leg = state.live.callers.get(caller_uid).map(|c| c.leg);
                    leg.zip(state.live.conferences.get(&conference_uid).map(|c| c.io.room.clone()))
                };
                if let Some((leg, room)) = found {
                    self.play_prompt(&room, leg, PromptName::Invite).await;
                }
            }
            KeyAction::InviteCancelled | KeyAction::Denied(_) => {}
        }
    }

    /// Mutes (`Some(true)`), unmutes or toggles (`None`) a caller.
    async fn mute(&self, caller_uid: &str, mute: Option<bool>) {
        let _ = self
            .set_caller(caller_uid, CallerField::Mute, |c| c.mute = mute.unwrap_or(!c.mute))
            .await;
    }

    /// Changes a stored conference setting and announces it.
    async fn modify_conference(&self, conference_uid: &str, change: impl FnOnce(&mut Conference)) {
        let store = &self.inner.store;
        let Ok(mut conference) = store.get::<Conference>(conference_uid).await else { return };
        change(&mut conference);
        conference.updated_at = Time::now();
        match store.update(&conference).await {
            Ok(()) => self.inner.events.publish(Event::ConferenceModified { conference }),
            Err(e) => tracing::error!(error = %e, "conference change not stored"),
        }
    }

    pub(super) fn media_changed(&self, caller_uid: &str, negotiated: &Negotiated) {
        let handle = self.state().live.callers.get(caller_uid).map(|c| c.io.leg_handle.clone());
        let Some(handle) = handle else { return };
        let sending =
            matches!(negotiated.direction, MediaDirection::SendRecv | MediaDirection::SendOnly);
        let rtcp = (!negotiated.rtcp_mux).then_some(negotiated.remote_rtcp);
        handle.update_remote(negotiated.remote_rtp, rtcp, sending);
        tracing::info!(caller = %caller_uid, remote = %negotiated.remote_rtp, sending, "media changed");
    }
}
