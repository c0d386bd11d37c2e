//! Call sessions (a live run of a conference) and their breakout groups: the
//! settings the engine applies live, closing a call, creating groups.

use super::callers::MAX_TEXT_LEN;
use super::{Conflict, Kind, Ops, OpsError, OpsResult, Scope};
use crate::live::{CallUpdate, CallerUpdate, Event};
use crate::model::{Breakout, Call, CallStatus, CallTag, Conference, Role, RoleFlags};
use crate::store::{CallFlag, CallText};

impl Ops {
    /// The stored call session, if the requester may see it.
    pub async fn call(&self, scope: &Scope, call_uid: &str) -> OpsResult<Call> {
        self.call_owner(scope, call_uid).await?;
        Ok(self.store.get::<Call>(call_uid).await?)
    }

    /// A call session that is still running.
    pub async fn running_call(&self, scope: &Scope, call_uid: &str) -> OpsResult<Call> {
        let call = self.call(scope, call_uid).await?;
        if call.status != CallStatus::Active {
            return Err(OpsError::Ended(Kind::Call));
        }
        Ok(call)
    }

    /// Ends a call session: every caller is hung up.
    pub async fn close_call(&self, scope: &Scope, call_uid: &str) -> OpsResult<()> {
        self.running_call(scope, call_uid).await?;
        self.live.close_call(call_uid.to_owned()).await
    }

    /// Turns a running call's green room or talking events on or off.
    pub async fn update_call(
        &self,
        scope: &Scope,
        call_uid: &str,
        update: CallUpdate,
    ) -> OpsResult<()> {
        self.running_call(scope, call_uid).await?;
        self.live.update_call(call_uid.to_owned(), update).await
    }

    /// Creates a breakout group in a running call and announces it.
    pub async fn create_breakout(
        &self,
        scope: &Scope,
        call_uid: &str,
        name: &str,
    ) -> OpsResult<Breakout> {
        if name.len() > MAX_TEXT_LEN {
            return Err(OpsError::invalid("name", format!("longer than {MAX_TEXT_LEN} bytes")));
        }
        let call = self.running_call(scope, call_uid).await?;
        let breakout = Breakout::new(&call.uid, name);
        self.store.insert(&breakout).await?;
        self.events.publish(Event::BreakoutCreated {
            conference_uid: call.conference_uid,
            breakout: breakout.clone(),
        });
        Ok(breakout)
    }

    /// Makes a breakout private (it does not hear the main room) or open.
    pub async fn set_breakout_private(
        &self,
        scope: &Scope,
        breakout_uid: &str,
        private: bool,
    ) -> OpsResult<()> {
        let owner = self.store.owner_of_breakout(breakout_uid).await?;
        self.visible(scope, owner, Kind::Breakout)?;
        self.live.set_breakout_private(breakout_uid.to_owned(), private).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Conference, Customer};
    use crate::ops::testing::{FakeLive, ops_with};
    use crate::time::Time;

    #[tokio::test]
    async fn breakouts_belong_to_running_calls_of_the_requester() {
        let (ops, live, _dir) = ops_with(FakeLive::default()).await;
        let acme = ops.creating_customer(&Scope::Server).await.expect("customer");
        let conference = Conference::new(&acme, "Weekly");
        ops.store.create_conference(&conference).await.expect("conference");
        let call = Call::new(&conference, Time::now());
        ops.store.start_call(&call).await.expect("call");
        let mut events = ops.events.subscribe();

        let mine = Scope::Customer(acme.uid.clone());
        let group = ops.create_breakout(&mine, &call.uid, "Table 1").await.expect("breakout");
        match &*events.recv().await.expect("event") {
            Event::BreakoutCreated { conference_uid, breakout } => {
                assert_eq!(conference_uid, &conference.uid);
                assert_eq!(breakout, &group);
            }
            other => panic!("{other:?}"),
        }
        ops.set_breakout_private(&mine, &group.uid, true).await.expect("private");
        ops.update_call(&mine, &call.uid, CallUpdate::GreenRoom(true)).await.expect("green");
        assert_eq!(
            live.calls(),
            vec![
                format!("set_breakout_private {} true", group.uid),
                format!("update_call {} GreenRoom(true)", call.uid),
            ]
        );

        let other = Customer::new("Other");
        ops.store.create_customer(&other).await.expect("other");
        let them = Scope::Customer(other.uid);
        assert_eq!(
            ops.create_breakout(&them, &call.uid, "x").await,
            Err(OpsError::NotFound(Kind::Call))
        );
        assert_eq!(
            ops.set_breakout_private(&them, &group.uid, false).await,
            Err(OpsError::NotFound(Kind::Breakout))
        );

        let mut ended = ops.store.get::<Call>(&call.uid).await.expect("call");
        ended.status = CallStatus::Closed;
        ops.store.update(&ended).await.expect("closed");
        assert_eq!(
            ops.create_breakout(&mine, &call.uid, "late").await,
            Err(OpsError::Ended(Kind::Call))
        );
        assert_eq!(ops.close_call(&mine, &call.uid).await, Err(OpsError::Ended(Kind::Call)));
    }
}

/// A call session field a client changes (MaestroConference updateCall).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallField {
    /// A text field, replaced or (`append`) added to on a new line.
    Text { field: CallText, value: String, append: bool },
    /// Applied live: the green room, talking events.
    Live(CallUpdate),
    /// Stored only.
    Flag(CallFlag, bool),
}

/// One breakout group to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewBreakout {
    /// The client's own UID for it (MaestroConference's breakoutUID), else new.
    pub uid: Option<String>,
    pub name: String,
    pub private: bool,
    /// Callers of the call to move into it.
    pub callers: Vec<String>,
}

/// A breakout field a client changes (MaestroConference updateBreakout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakoutField {
    Name(String),
    Data(String),
    Attention(bool),
    Private(bool),
    /// Each listed caller leaves the group if in it, joins it otherwise.
    ToggleCallers(Vec<String>),
}

/// Callers a command could not change, and why, while the others were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial {
    pub failed: Vec<(String, OpsError)>,
}

impl Partial {
    pub fn into_result(self) -> OpsResult<()> {
        match self.failed.first() {
            None => Ok(()),
            Some((_, first)) if self.failed.len() == 1 => Err(first.clone()),
            Some(_) => Err(OpsError::invalid(
                "UID",
                format!(
                    "not applied to {}",
                    self.failed
                        .iter()
                        .map(|(uid, e)| format!("{uid} ({e})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

impl Ops {
    /// The conference whose security token `token` is, named by its UID or by
    /// one of its calls (the Conductor API's authentication). A wrong token
    /// answers as an unknown conference.
    pub async fn conference_by_token(
        &self,
        token: &str,
        conference_uid: Option<&str>,
        call_uid: Option<&str>,
    ) -> OpsResult<(Conference, Option<Call>)> {
        let (conference_uid, call) = match (conference_uid, call_uid) {
            (_, Some(call_uid)) => {
                let call = self
                    .store
                    .find::<Call>(call_uid)
                    .await?
                    .ok_or(OpsError::NotFound(Kind::Call))?;
                (call.conference_uid.clone(), Some(call))
            }
            (Some(uid), None) => (uid.to_owned(), None),
            (None, None) => {
                return Err(OpsError::invalid("callUID", "callUID or conferenceUID is required"));
            }
        };
        let conference = self
            .store
            .find::<Conference>(&conference_uid)
            .await?
            .ok_or(OpsError::NotFound(Kind::Conference))?;
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(conference.security_token.as_bytes(), token.as_bytes())
                .into();
        if !same || token.is_empty() {
            return Err(OpsError::NotFound(if call.is_some() {
                Kind::Call
            } else {
                Kind::Conference
            }));
        }
        Ok((conference, call))
    }

    /// Changes one field of a call session; announced as a CALL UPDATE.
    pub async fn update_call_field(
        &self,
        scope: &Scope,
        call_uid: &str,
        field: CallField,
    ) -> OpsResult<Call> {
        let call = self.call(scope, call_uid).await?;
        match &field {
            CallField::Live(update) => {
                if call.status != CallStatus::Active {
                    return Err(OpsError::Ended(Kind::Call));
                }
                self.live.update_call(call.uid.clone(), *update).await?;
                return Ok(self.store.get::<Call>(call_uid).await?);
            }
            CallField::Text { field, value, append } => {
                super::accounts::check_text("value", value)?;
                self.store.set_call_text(call_uid, *field, value, *append).await?;
            }
            CallField::Flag(flag, on) => self.store.set_call_flag(call_uid, *flag, *on).await?,
        }
        let name = match &field {
            CallField::Text { field, append: true, .. } if *field == CallText::Notes => "note",
            _ => "update",
        };
        self.events.publish(Event::CallUpdated {
            conference_uid: call.conference_uid.clone(),
            call_uid: call.uid.clone(),
            field: name.into(),
        });
        Ok(self.store.get::<Call>(call_uid).await?)
    }

    /// Creates breakout groups in a running call and moves their callers in;
    /// each group is announced. Callers that cannot be moved are reported while
    /// the rest are.
    pub async fn create_breakouts(
        &self,
        scope: &Scope,
        call_uid: &str,
        groups: Vec<NewBreakout>,
    ) -> OpsResult<(Vec<Breakout>, Partial)> {
        let call = self.running_call(scope, call_uid).await?;
        let mut created = Vec::new();
        let mut partial = Partial::default();
        for group in groups {
            if group.name.len() > MAX_TEXT_LEN {
                return Err(OpsError::invalid("name", format!("longer than {MAX_TEXT_LEN} bytes")));
            }
            let mut breakout = Breakout::new(&call.uid, group.name);
            if let Some(uid) = group.uid.filter(|u| !u.trim().is_empty()) {
                if uid.len() > 128 || uid.chars().any(|c| c.is_control() || c == ',') {
                    return Err(OpsError::invalid(
                        "breakoutUID",
                        "at most 128 characters, no commas",
                    ));
                }
                breakout.uid = uid;
            }
            breakout.private = group.private;
            self.store.insert(&breakout).await.map_err(|e| match e {
                crate::store::StoreError::Conflict(_) => {
                    OpsError::Conflict(Conflict::InUse("breakoutUID".into()))
                }
                other => other.into(),
            })?;
            self.events.publish(Event::BreakoutCreated {
                conference_uid: call.conference_uid.clone(),
                breakout: breakout.clone(),
            });
            for caller in group.callers {
                let moved = self.move_to_breakout(&call, &caller, Some(breakout.uid.clone())).await;
                if let Err(e) = moved {
                    partial.failed.push((caller, e));
                }
            }
            created.push(breakout);
        }
        Ok((created, partial))
    }

    /// Moves a caller of `call` into a breakout (or back to the main room).
    async fn move_to_breakout(
        &self,
        call: &Call,
        caller_uid: &str,
        breakout: Option<String>,
    ) -> OpsResult<()> {
        let caller = self.store.find::<crate::model::Caller>(caller_uid).await?;
        match caller {
            Some(c) if c.call_uid == call.uid && c.active => {}
            _ => return Err(OpsError::NotFound(Kind::Caller)),
        }
        self.live.update_caller(caller_uid.to_owned(), CallerUpdate::Breakout(breakout)).await
    }

    /// Changes one field of a breakout; announced as a BREAKOUT UPDATE.
    pub async fn update_breakout(
        &self,
        scope: &Scope,
        breakout_uid: &str,
        field: BreakoutField,
    ) -> OpsResult<(Breakout, Partial)> {
        let owner = self.store.owner_of_breakout(breakout_uid).await?;
        let owner = self.visible(scope, owner, Kind::Breakout)?;
        let breakout = self.store.get::<Breakout>(breakout_uid).await?;
        let mut partial = Partial::default();
        match field {
            BreakoutField::Private(on) => {
                self.live.set_breakout_private(breakout_uid.to_owned(), on).await?;
                let after = self.store.get::<Breakout>(breakout_uid).await?;
                return Ok((after, partial));
            }
            BreakoutField::ToggleCallers(callers) => {
                let call = self.running_call(scope, &breakout.call_uid).await?;
                for uid in callers {
                    let current = self.store.find::<crate::model::Caller>(&uid).await?;
                    let inside = current
                        .as_ref()
                        .is_some_and(|c| c.breakout_uid.as_deref() == Some(breakout_uid));
                    let target = if inside { None } else { Some(breakout_uid.to_owned()) };
                    if let Err(e) = self.move_to_breakout(&call, &uid, target).await {
                        partial.failed.push((uid, e));
                    }
                }
            }
            BreakoutField::Name(name) => {
                super::accounts::check_text("value", &name)?;
                self.store.set_breakout_details(breakout_uid, Some(&name), None, None).await?;
            }
            BreakoutField::Data(data) => {
                super::accounts::check_text("value", &data)?;
                self.store.set_breakout_details(breakout_uid, None, Some(&data), None).await?;
            }
            BreakoutField::Attention(on) => {
                let at = on.then(crate::time::Time::now);
                self.store.set_breakout_details(breakout_uid, None, None, Some((on, at))).await?;
            }
        }
        let after = self.store.get::<Breakout>(breakout_uid).await?;
        self.events.publish(Event::BreakoutUpdated {
            conference_uid: owner.conference_uid,
            breakout: after.clone(),
        });
        Ok((after, partial))
    }

    /// Sets one role's entry setting (mike, mute or deaf) for a conference's
    /// future calls, or for one call only.
    pub async fn set_role_setting(
        &self,
        scope: &Scope,
        conference_uid: &str,
        call_uid: Option<&str>,
        role: Role,
        setting: RoleSetting,
        on: bool,
    ) -> OpsResult<RoleFlags> {
        let current = match call_uid {
            Some(uid) => {
                self.call(scope, uid).await?;
                self.store.call_role_settings(uid).await?
            }
            None => {
                self.conference(scope, conference_uid).await?;
                self.store.conference_role_settings(conference_uid).await?
            }
        };
        let mut flags =
            current.into_iter().find(|f| f.role == role).unwrap_or(RoleFlags::default_for(role));
        match setting {
            RoleSetting::Mike => flags.mike = on,
            RoleSetting::Mute => flags.mute = on,
            RoleSetting::Deaf => flags.deaf = on,
        }
        match call_uid {
            Some(uid) => self.store.set_call_role_settings(uid, flags).await?,
            None => self.store.set_conference_role_settings(conference_uid, flags).await?,
        }
        Ok(flags)
    }

    /// Adds a tag to a call: a copy of a conference tag, or a new value.
    pub async fn create_call_tag(
        &self,
        scope: &Scope,
        call_uid: &str,
        conference_tag: Option<i64>,
        value: Option<&str>,
    ) -> OpsResult<CallTag> {
        let call = self.call(scope, call_uid).await?;
        let tag = match (conference_tag, value) {
            (Some(id), None) => {
                let tags = self.store.conference_tags(&call.conference_uid).await?;
                let from =
                    tags.into_iter().find(|t| t.id == id).ok_or(OpsError::NotFound(Kind::Tag))?;
                self.store.add_call_tag(&call.uid, &from.value, Some(id)).await?
            }
            (None, Some(value)) => {
                super::accounts::check_text("value", value)?;
                self.store.add_call_tag(&call.uid, value, None).await?
            }
            _ => {
                return Err(OpsError::invalid(
                    "conferenceTagID",
                    "give conferenceTagID or value, not both",
                ));
            }
        };
        self.events
            .publish(Event::TagUpdated { conference_uid: call.conference_uid, tag: tag.clone() });
        Ok(tag)
    }

    /// Changes a call tag's value.
    pub async fn update_call_tag(
        &self,
        scope: &Scope,
        call_uid: &str,
        tag_id: i64,
        value: &str,
    ) -> OpsResult<CallTag> {
        let call = self.call(scope, call_uid).await?;
        super::accounts::check_text("value", value)?;
        let tags = self.store.call_tags(&call.uid).await?;
        if !tags.iter().any(|t| t.id == tag_id) {
            return Err(OpsError::NotFound(Kind::Tag));
        }
        self.store.update_call_tag(tag_id, value).await?;
        let tag = CallTag {
            id: tag_id,
            call_uid: call.uid.clone(),
            value: value.to_owned(),
            conference_tag_id: tags
                .iter()
                .find(|t| t.id == tag_id)
                .and_then(|t| t.conference_tag_id),
        };
        self.events
            .publish(Event::TagUpdated { conference_uid: call.conference_uid, tag: tag.clone() });
        Ok(tag)
    }

    /// Relates callers of a call to one of its tags, or (`add` false) undoes it.
    pub async fn tag_callers(
        &self,
        scope: &Scope,
        call_uid: &str,
        callers: &[String],
        tag_id: i64,
        add: bool,
    ) -> OpsResult<Partial> {
        let call = self.call(scope, call_uid).await?;
        let tags = self.store.call_tags(&call.uid).await?;
        let tag = tags.into_iter().find(|t| t.id == tag_id).ok_or(OpsError::NotFound(Kind::Tag))?;
        let mut partial = Partial::default();
        for uid in callers {
            let caller = self.store.find::<crate::model::Caller>(uid).await?;
            let Some(caller) = caller.filter(|c| c.call_uid == call.uid) else {
                partial.failed.push((uid.clone(), OpsError::NotFound(Kind::Caller)));
                continue;
            };
            self.store.set_caller_tag(&caller.uid, tag_id, add).await?;
            self.events.publish(Event::CallerUpdated {
                conference_uid: call.conference_uid.clone(),
                caller,
                field: crate::live::CallerField::Other,
            });
        }
        self.events.publish(Event::TagUpdated { conference_uid: call.conference_uid, tag });
        Ok(partial)
    }
}

/// One of a role's entry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSetting {
    Mike,
    Mute,
    Deaf,
}
