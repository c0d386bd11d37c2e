//! Every `/_access` function as data: its name, whether it is a command
//! (POST) or an information request (GET), its parameters and its own error
//! codes. The dispatcher checks requests against this table before a function
//! runs, and `/openapi.json` is generated from it, so the description cannot
//! drift from what the server does.

pub use crate::http::functions::{Function, Param, Ty};

use crate::http::functions::{opt, req};

pub use crate::http::functions::ROLES;

/// The customer fields updateCustomer changes.
pub const CUSTOMER_FIELDS: &[&str] = &[
    "contactEmail",
    "greenroom",
    "recording",
    "affiliateCode",
    "reminder",
    "backgroundMusic",
    "preCall",
    "postCall",
    "banner",
    "callerInterface",
    "regComment",
];

/// The conference fields updateConference changes.
pub const CONFERENCE_FIELDS: &[&str] = &[
    "contactEmail",
    "registerText",
    "notes",
    "recording",
    "greenroom",
    "reminder",
    "backgroundMusic",
    "callerInterface",
    "preCall",
    "postCall",
    "banner",
    "regComment",
];

/// The person fields updatePerson changes.
pub const PERSON_FIELDS: &[&str] = &["name", "email", "notes", "custom1", "custom2", "role"];

/// The objects updateCustomValue reaches.
pub const OBJECT_TYPES: &[&str] = &["conference", "person", "call", "caller", "customer"];

const CONFERENCE_UID: Param = req("conferenceUID", Ty::Uid, "UID of the conference");
const RESERVATION_ERRORS: &[(i64, &str)] = &[
    (1, "Reservation start time overlaps another reservation"),
    (2, "Reservation duration overlaps another reservation"),
    (3, "Estimated caller size is invalid (below 1 or above the customer's limit)"),
    (4, "Cannot add a reservation to, or move the reservation of, a reservationless conference"),
];

pub const FUNCTIONS: &[Function] = &[
    Function {
        name: "getCustomer",
        command: false,
        summary: "The customer making the request",
        params: &[],
        errors: &[],
        returns: "Customer",
    },
    Function {
        name: "getActiveConference",
        command: false,
        summary: "Conferences with a call in progress",
        params: &[],
        errors: &[],
        returns: "Conference[]",
    },
    Function {
        name: "getUpcomingConference",
        command: false,
        summary: "Conferences whose next reservation (or scheduled start) is still to come",
        params: &[],
        errors: &[],
        returns: "Conference[]",
    },
    Function {
        name: "getPossibleConference",
        command: false,
        summary: "Conferences callers may start now (a reservation runs, or reservationless and not ended)",
        params: &[],
        errors: &[],
        returns: "Conference[]",
    },
    Function {
        name: "getExpiredConference",
        command: false,
        summary: "Conferences whose reservations (or scheduled end) are all past",
        params: &[],
        errors: &[],
        returns: "Conference[]",
    },
    Function {
        name: "getCanceledConference",
        command: false,
        summary: "Conferences that were cancelled",
        params: &[],
        errors: &[],
        returns: "Conference[]",
    },
    Function {
        name: "getConference",
        command: false,
        summary: "A conference and the UIDs of its related objects",
        params: &[CONFERENCE_UID],
        errors: &[],
        returns: "Conference",
    },
    Function {
        name: "getConferenceData",
        command: false,
        summary: "A conference with its persons, settings, reservations and customer",
        params: &[CONFERENCE_UID],
        errors: &[],
        returns: "ConferenceData",
    },
    Function {
        name: "getConferenceReservation",
        command: false,
        summary: "One reservation",
        params: &[req("reservationUID", Ty::Uid, "UID of the reservation")],
        errors: &[],
        returns: "Reservation",
    },
    Function {
        name: "getCall",
        command: false,
        summary: "An ended call session (live ones are the Conductor API's)",
        params: &[CONFERENCE_UID, req("callUID", Ty::Uid, "UID of the call")],
        errors: &[],
        returns: "Call",
    },
    Function {
        name: "getCallData",
        command: false,
        summary: "An ended call session with its callers",
        params: &[CONFERENCE_UID, req("callUID", Ty::Uid, "UID of the call")],
        errors: &[],
        returns: "CallData",
    },
    Function {
        name: "updateCustomer",
        command: true,
        summary: "Changes one of the customer's settings",
        params: &[
            req("field", Ty::OneOf(CUSTOMER_FIELDS), "The field to change"),
            req("value", Ty::Text, "Its new value (true/false/1/0 for the flags)"),
        ],
        errors: &[],
        returns: "Customer",
    },
    Function {
        name: "createConferenceReservationless",
        command: true,
        summary: "Creates a conference callers may enter any time",
        params: &[
            opt("name", Ty::Text, "Name; the customer's contact emails when missing"),
            opt("contactEmail", Ty::Text, "Overrides the customer's default"),
            opt("greenroom", Ty::Boolean, "Overrides the customer's default"),
            opt("recording", Ty::Boolean, "Overrides the customer's default"),
            opt("backgroundMusic", Ty::Boolean, "Overrides the customer's default"),
            req("estimatedCallers", Ty::Integer, "Estimated number of callers"),
        ],
        errors: &[(3, "Estimated caller size is invalid")],
        returns: "Conference",
    },
    Function {
        name: "createConferenceReserved",
        command: true,
        summary: "Creates a conference callers may enter during its reservations",
        params: &[
            opt("name", Ty::Text, "Name; the customer's contact emails when missing"),
            opt("contactEmail", Ty::Text, "Overrides the customer's default"),
            opt("greenroom", Ty::Boolean, "Overrides the customer's default"),
            opt("recording", Ty::Boolean, "Overrides the customer's default"),
            opt("backgroundMusic", Ty::Boolean, "Overrides the customer's default"),
            req("reservationCount", Ty::Integer, "Number of reservations, at least 1"),
            req(
                "estimatedCallers1",
                Ty::Integer,
                "Estimated callers of reservation 1 (estimatedCallers2, ... for the others)",
            ),
            req("startDate1", Ty::DateTime, "Start of reservation 1 (startDate2, ...)"),
            req(
                "duration1",
                Ty::Integer,
                "Minutes of reservation 1, rounded up to a quarter hour (duration2, ...)",
            ),
        ],
        errors: &[(1, "No valid reservation was found")],
        returns: "Conference",
    },
    Function {
        name: "addConferenceReservation",
        command: true,
        summary: "Adds a reservation to a reserved conference",
        params: &[
            req("conference", Ty::Uid, "UID of the conference"),
            req("estimatedCallers", Ty::Integer, "Estimated number of callers"),
            req("startDate", Ty::DateTime, "Start"),
            req("duration", Ty::Integer, "Minutes, rounded up to a quarter hour"),
        ],
        errors: RESERVATION_ERRORS,
        returns: "Reservation",
    },
    Function {
        name: "addPerson",
        command: true,
        summary: "Registers a person for a conference, with a fresh 6-digit PIN",
        params: &[
            req("conference", Ty::Uid, "UID of the conference"),
            req("role", Ty::Role, "The person's role"),
            opt("name", Ty::Text, "Name"),
            opt("email", Ty::Text, "Email"),
            opt("notes", Ty::Text, "Notes"),
            opt("custom1", Ty::Text, "Custom field 1"),
            opt("custom2", Ty::Text, "Custom field 2"),
        ],
        errors: &[],
        returns: "Person",
    },
    Function {
        name: "updatePerson",
        command: true,
        summary: "Changes one of a person's fields",
        params: &[
            req("person", Ty::Uid, "UID of the person"),
            req("field", Ty::OneOf(PERSON_FIELDS), "The field to change"),
            req("value", Ty::Text, "Its new value"),
        ],
        errors: &[],
        returns: "Person",
    },
    Function {
        name: "removePerson",
        command: true,
        summary: "Removes a person from a conference",
        params: &[
            req("conference", Ty::Uid, "UID of the conference"),
            req("person", Ty::Uid, "UID of the person"),
        ],
        errors: &[],
        returns: "Person",
    },
    Function {
        name: "updateConferenceReservation",
        command: true,
        summary: "Changes a reservation's start, duration or estimated size",
        params: &[
            req("reservationUID", Ty::Uid, "UID of the reservation"),
            opt("startDate", Ty::DateTime, "New start (not for a reservationless conference)"),
            opt("estimatedCallers", Ty::Integer, "New estimated number of callers"),
            opt(
                "duration",
                Ty::Integer,
                "New length in minutes (not for a reservationless conference)",
            ),
        ],
        errors: RESERVATION_ERRORS,
        returns: "Reservation",
    },
    Function {
        name: "removeConferenceReservation",
        command: true,
        summary: "Removes a future reservation",
        params: &[req("reservationUID", Ty::Uid, "UID of the reservation")],
        errors: &[
            (1, "Conference is reservationless"),
            (2, "Last reservation of the conference, cannot remove"),
            (3, "Reservation is already past"),
            (4, "Reservation is currently active"),
        ],
        returns: "Reservation",
    },
    Function {
        name: "cancelConference",
        command: true,
        summary: "Cancels a conference; callers in a call now are hung up",
        params: &[req("conference", Ty::Uid, "UID of the conference")],
        errors: &[(1, "Conference does not exist or is invalid")],
        returns: "Conference",
    },
    Function {
        name: "updateConference",
        command: true,
        summary: "Changes one of a conference's settings",
        params: &[
            req("conference", Ty::Uid, "UID of the conference"),
            req("field", Ty::Text, "The field to change"),
            req("value", Ty::Text, "Its new value (true/false/1/0 for the flags)"),
        ],
        errors: &[(1, "Conference does not exist or is invalid"), (2, "Field is not valid")],
        returns: "Conference",
    },
    Function {
        name: "updateCustomValue",
        command: true,
        summary: "Sets (an empty value removes) a custom value of an object",
        params: &[
            req("objectType", Ty::OneOf(OBJECT_TYPES), "The kind of object"),
            req("objectUID", Ty::Uid, "Its UID"),
            req("customKey", Ty::Text, "The key"),
            opt("customValue", Ty::Text, "The value; empty or missing removes the key"),
        ],
        errors: &[],
        returns: "CustomValue[]",
    },
];

/// The function named exactly `name`.
pub fn find(name: &str) -> Option<&'static Function> {
    crate::http::functions::find(FUNCTIONS, name)
}
