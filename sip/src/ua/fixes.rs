//! Workarounds for rsipstack 0.7.14 defects, applied to every outgoing message by a
//! `MessageInspector`, so an upgrade that fixes them only means deleting this file:
//! - the 487 after a CANCEL carries a fresh To-tag instead of the dialog's;
//! - the client Authorization writes `qop="auth"` quoted (RFC 2617/7616 want a token).
//!
//! rsipstack also writes `nc` in decimal; it only ever sends nc=1, where decimal and
//! hex are both `00000001`, so that one needs no rewrite (a test pins it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, SipMessage, StatusCode};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

/// A value per SIP Call-ID for incoming INVITEs still being set up: our To-tag (for
/// the 487 fix) or a redirect target (the 302's Contact).
#[derive(Debug, Clone, Default)]
pub(crate) struct ByCallId(Arc<Mutex<HashMap<String, String>>>);

impl ByCallId {
    pub(crate) fn insert(&self, call_id: &str, value: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(call_id.to_owned(), value.to_owned());
        }
    }

    pub(crate) fn remove(&self, call_id: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(call_id);
        }
    }

    fn get(&self, call_id: &str) -> Option<String> {
        self.0.lock().ok()?.get(call_id).cloned()
    }
}

/// The inspector that applies the fixes.
pub(crate) struct Fixups {
    /// Our To-tag of each incoming INVITE dialog.
    pub(crate) tags: ByCallId,
    /// Where the engine redirects an incoming INVITE: rsipstack's `reject` takes no
    /// headers, so the 302's Contact is put in here.
    pub(crate) redirects: ByCallId,
}

impl MessageInspector for Fixups {
    fn before_send(&self, msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        match msg {
            SipMessage::Response(mut resp) => {
                if resp.status_code == StatusCode::RequestTerminated {
                    fix_487_tag(&mut resp, &self.tags);
                }
                if resp.status_code == StatusCode::MovedTemporarily {
                    set_redirect_contact(&mut resp, &self.redirects);
                }
                SipMessage::Response(resp)
            }
            SipMessage::Request(mut req) => {
                for header in req.headers.iter_mut() {
                    match header {
                        Header::Authorization(value) => value.0 = unquote_qop(&value.0),
                        Header::ProxyAuthorization(value) => value.0 = unquote_qop(&value.0),
                        _ => {}
                    }
                }
                SipMessage::Request(req)
            }
        }
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        msg
    }
}

/// The value stored for an INVITE response's Call-ID.
fn invite_entry(resp: &rsipstack::sip::Response, map: &ByCallId) -> Option<String> {
    let is_invite = resp.cseq_header().ok().and_then(|c| c.method().ok()) == Some(Method::Invite);
    let call_id = resp.call_id_header().ok()?.value().to_owned();
    map.get(&call_id).filter(|_| is_invite)
}

fn fix_487_tag(resp: &mut rsipstack::sip::Response, tags: &ByCallId) {
    let Some(tag) = invite_entry(resp, tags) else {
        return;
    };
    if let Ok(to) = resp.to_header_mut() {
        *to = to.with_tag(tag.into());
    }
}

fn set_redirect_contact(resp: &mut rsipstack::sip::Response, redirects: &ByCallId) {
    let Some(target) = invite_entry(resp, redirects) else {
        return;
    };
    resp.headers.retain(|h| !matches!(h, Header::Contact(_)));
    resp.headers.push(Header::Contact(format!("<{target}>").into()));
}

/// `qop="auth"` -> `qop=auth` (and `auth-int`), leaving everything else alone.
pub(crate) fn unquote_qop(value: &str) -> String {
    value.replace("qop=\"auth-int\"", "qop=auth-int").replace("qop=\"auth\"", "qop=auth")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qop_is_unquoted_and_the_rest_kept() {
        let v = r#"Digest username="u", realm="r", nonce="n", uri="sip:x", response="abc", algorithm=MD5, qop="auth", nc=00000001, cnonce="c""#;
        let fixed = unquote_qop(v);
        assert!(fixed.contains(", qop=auth, nc=00000001,"), "{fixed}");
        assert!(fixed.contains(r#"nonce="n""#));
        assert_eq!(unquote_qop(r#"qop="auth-int""#), "qop=auth-int");
    }

    #[test]
    fn rsipstack_sends_nc_one_which_hex_and_decimal_agree_on() {
        // If rsipstack ever sends nc > 9 in decimal, this test and the module doc must
        // change: then `nc` needs rewriting to hex together with the response hash.
        let qop = rsipstack::sip::headers::auth::AuthQop::Auth { cnonce: "c".into(), nc: 1 };
        let text = qop.to_string();
        assert!(text.contains("nc=00000001"), "{text}");
        assert_eq!(format!("{:08}", 1), format!("{:08x}", 1));
    }
}
