//! The seven web services as data, for `/openapi.json`.

pub use crate::http::functions::{Function, Param, Ty};
use crate::http::functions::{opt, req};

const NAME_OR_TOKEN: Param =
    opt("conference_name", Ty::Text, "The conference's name; or give reservation_token");
const TOKEN_INSTEAD: Param =
    opt("reservation_token", Ty::Text, "Instead of conference_name: its reservation's token");
const PARTICIPANT: Param =
    req("participant_id", Ty::Text, "As Conference Participant List gives it");

pub const FUNCTIONS: &[Function] = &[
    Function {
        name: "conference_reservation_create",
        command: true,
        summary: "Books a conference: a name, a size, a start (UTC) and a duration",
        params: &[
            req("conference_name", Ty::Text, "1 to 47 letters or digits, unique; callers dial it"),
            req("max_participants", Ty::Integer, "40 to 350"),
            req(
                "start_time",
                Ty::Text,
                "UTC, YYYY-MM-DD_hh:mm:ss or YYYY-MM-DD-hh-mm, rounded down to the minute, 5 minutes to 24 hours ahead",
            ),
            req("duration", Ty::Integer, "Minutes, 15 to 480"),
            opt(
                "divert",
                Ty::Text,
                "Where early callers are sent (a 302 to sip:<divert>@<tutti>); else they get 486 Busy",
            ),
        ],
        errors: &[],
        returns: "{\"reservation_token\": \"...\"}",
    },
    Function {
        name: "conference_reservation_modify",
        command: true,
        summary: "Extends a booking (RESERVED, HOLDING or ACTIVE, not in its last 5 minutes)",
        params: &[
            req("reservation_token", Ty::Text, "The booking's token"),
            req("duration", Ty::Integer, "Minutes to add, 15 to 60; at most 480 in all"),
        ],
        errors: &[],
        returns: "{\"extended\": true}",
    },
    Function {
        name: "conference_reservation_remove",
        command: true,
        summary: "Removes a booking (RESERVED, not within 5 minutes of its start)",
        params: &[req("reservation_token", Ty::Text, "The booking's token")],
        errors: &[],
        returns: "{\"removed\": true}",
    },
    Function {
        name: "conference_list",
        command: false,
        summary: "The customer's conferences: booked ones with their reservation, the others as unreserved",
        params: &[],
        errors: &[],
        returns: "a bare JSON array of conferences",
    },
    Function {
        name: "conference_participant_list",
        command: false,
        summary: "A conference's state and connected participants",
        params: &[NAME_OR_TOKEN, TOKEN_INSTEAD],
        errors: &[],
        returns: "{\"status\": \"ACTIVE\", \"participants\": [{\"participant_id\", \"muted\", \"dtmf_enabled\"}]}",
    },
    Function {
        name: "conference_participant_set_options",
        command: true,
        summary: "Mutes or unmutes a participant, enables or disables its keypad (ACTIVE only)",
        params: &[
            NAME_OR_TOKEN,
            TOKEN_INSTEAD,
            PARTICIPANT,
            opt("muted", Ty::OneOf(&["true", "false"]), "Mute or unmute"),
            opt("dtmf_enabled", Ty::OneOf(&["true", "false"]), "Keypad actions on or off"),
        ],
        errors: &[],
        returns: "{\"options_set\": true}",
    },
    Function {
        name: "conference_participant_eject",
        command: true,
        summary: "Hangs a participant up (ACTIVE only)",
        params: &[NAME_OR_TOKEN, TOKEN_INSTEAD, PARTICIPANT],
        errors: &[],
        returns: "{\"ejected\": true}",
    },
];
