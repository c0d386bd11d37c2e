//! Every `/_conference` function as data (see `http::functions`): the
//! dispatcher checks requests against this table and `/openapi.json` is built
//! from it.

pub use crate::http::functions::{Function, Param, Ty};
use crate::http::functions::{opt, req};

/// updateCall's fields.
pub const CALL_FIELDS: &[&str] = &[
    "name",
    "notes",
    "note",
    "talking",
    "data",
    "greenroom",
    "entryway",
    "custom",
    "backgroundMusic",
    "link",
    "message",
    "feedback",
    "enableFeedback",
    "enableBroadcast",
];

/// updateCaller's and updateActiveCaller's fields.
pub const CALLER_FIELDS: &[&str] = &[
    "mike",
    "deaf",
    "mute",
    "tag",
    "attention",
    "breakout",
    "data",
    "role",
    "notes",
    "note",
    "active",
    "custom1",
    "custom2",
    "volume_in",
    "volume_out",
    "energy",
];

/// updateBreakout's fields.
pub const BREAKOUT_FIELDS: &[&str] = &["name", "attention", "callers", "data", "private"];

/// A role's entry settings.
pub const SETTINGS: &[&str] = &["mike", "mute", "deaf"];

const CALL: Param = req("callUID", Ty::Uid, "UID of the call");
const CONFERENCE: Param = req("conferenceUID", Ty::Uid, "UID of the conference");

pub const FUNCTIONS: &[Function] = &[
    Function {
        name: "getBreakout",
        command: false,
        summary: "A breakout group of the call",
        params: &[CALL, req("UID", Ty::Uid, "UID of the breakout")],
        errors: &[],
        returns: "Breakout",
    },
    Function {
        name: "getCaller",
        command: false,
        summary: "A caller of the call",
        params: &[CALL, req("UID", Ty::Uid, "UID of the caller")],
        errors: &[],
        returns: "Caller",
    },
    Function {
        name: "getConference",
        command: false,
        summary: "The conference and the UIDs of its related objects",
        params: &[CONFERENCE],
        errors: &[],
        returns: "Conference",
    },
    Function {
        name: "getConferenceData",
        command: false,
        summary: "The conference with its persons, settings, reservations and customer",
        params: &[CONFERENCE],
        errors: &[],
        returns: "ConferenceData",
    },
    Function {
        name: "getCall",
        command: false,
        summary: "The call and the UIDs of its callers and breakouts",
        params: &[CALL],
        errors: &[],
        returns: "Call",
    },
    Function {
        name: "getCallData",
        command: false,
        summary: "The call with its callers and breakouts",
        params: &[CALL],
        errors: &[],
        returns: "CallData",
    },
    Function {
        name: "getCustomer",
        command: false,
        summary: "The customer hosting the conference",
        params: &[CONFERENCE],
        errors: &[],
        returns: "Customer",
    },
    Function {
        name: "createBreakout",
        command: true,
        summary: "Creates a breakout group (or, with count, several: callers1, breakoutUID1, name1, private1, ...) and moves its callers in",
        params: &[
            CALL,
            opt("callers", Ty::Text, "Comma-separated caller UIDs"),
            opt("breakoutUID", Ty::Text, "The group's UID of your choice"),
            opt("name", Ty::Text, "Name"),
            opt("private", Ty::Boolean, "Private: the group does not hear the main room"),
            opt(
                "count",
                Ty::Integer,
                "Number of groups given as callers<#>, breakoutUID<#>, name<#>, private<#>",
            ),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "closeCall",
        command: true,
        summary: "Hangs up every caller and closes the call",
        params: &[CALL],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "updateCall",
        command: true,
        summary: "Changes one field of the call (note appends to notes)",
        params: &[
            CALL,
            req("field", Ty::OneOf(CALL_FIELDS), "Field"),
            opt("value", Ty::Text, "Value"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "updateCaller",
        command: true,
        summary: "Changes one field of a caller, or of each of a comma-separated list (active hangs up)",
        params: &[
            CALL,
            req("UID", Ty::Text, "A caller's UID, or a comma-separated list"),
            req("field", Ty::OneOf(CALLER_FIELDS), "Field"),
            opt("value", Ty::Text, "Value"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message naming the callers not changed>",
    },
    Function {
        name: "updateActiveCaller",
        command: true,
        summary: "Changes one field of every connected caller (of one role, if given)",
        params: &[
            CALL,
            req("field", Ty::OneOf(CALLER_FIELDS), "Field"),
            opt("value", Ty::Text, "Value"),
            opt("role", Ty::Role, "Only callers of this role"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "dropCaller",
        command: true,
        summary: "Hangs up a caller",
        params: &[CALL, req("UID", Ty::Uid, "UID of the caller")],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "playTone",
        command: true,
        summary: "Plays one of the conference's Audio clips to the room",
        params: &[CALL, req("tone", Ty::Text, "UID (ID) of the Audio clip")],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "updateBreakout",
        command: true,
        summary: "Changes one field of a breakout group (callers: each listed caller leaves it if in it, joins it otherwise)",
        params: &[
            CALL,
            req("UID", Ty::Uid, "UID of the breakout"),
            req("field", Ty::OneOf(BREAKOUT_FIELDS), "Field"),
            opt("value", Ty::Text, "Value"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "updateConferenceSetting",
        command: true,
        summary: "A role's entry setting for the conference's calls",
        params: &[
            CONFERENCE,
            req("role", Ty::Role, "Role"),
            req("setting", Ty::OneOf(SETTINGS), "Setting"),
            req("value", Ty::Boolean, "Value"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "updateCallSetting",
        command: true,
        summary: "A role's entry setting for this call only",
        params: &[
            CALL,
            req("role", Ty::Role, "Role"),
            req("setting", Ty::OneOf(SETTINGS), "Setting"),
            req("value", Ty::Boolean, "Value"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "updateCallerTag",
        command: true,
        summary: "Relates callers to a call tag (add) or undoes it (remove)",
        params: &[
            CALL,
            req("callerUID", Ty::Text, "A caller's UID, or a comma-separated list"),
            req("callTagID", Ty::Integer, "ID of the call tag"),
            req(
                "action",
                Ty::OneOf(&["add", "remove", "Add", "Remove", "ADD", "REMOVE"]),
                "add or remove",
            ),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "createCallTag",
        command: true,
        summary: "Adds a tag to the call: a conference tag's copy, or a new value",
        params: &[
            CALL,
            opt("conferenceTagID", Ty::Integer, "ID of a conference tag"),
            opt("value", Ty::Text, "Value of a new call tag"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "updateCallTag",
        command: true,
        summary: "Changes a call tag's value",
        params: &[
            CALL,
            req("callTagID", Ty::Integer, "ID of the call tag"),
            req("value", Ty::Text, "Value"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "placeCall",
        command: true,
        summary: "Dials a number (or SIP URI) and joins the callee to the call",
        params: &[
            CALL,
            opt("name", Ty::Text, "Name to show for the callee"),
            req("role", Ty::Role, "The callee's role"),
            req("number", Ty::Text, "Number (through --outbound-proxy) or SIP URI"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
    Function {
        name: "updateCustomValue",
        command: true,
        summary: "Sets a custom value of the conference, this call, or a person or caller of it",
        params: &[
            CALL,
            req(
                "objectType",
                Ty::OneOf(&["customer", "conference", "call", "person", "caller"]),
                "Object type",
            ),
            req("objectUID", Ty::Uid, "Its UID"),
            req("customKey", Ty::Text, "Key"),
            opt("customValue", Ty::Text, "Value; empty removes the key"),
        ],
        errors: &[],
        returns: "TRUE or FALSE,<message>",
    },
];

/// The function named exactly `name`.
pub fn find(name: &str) -> Option<&'static Function> {
    crate::http::functions::find(FUNCTIONS, name)
}
