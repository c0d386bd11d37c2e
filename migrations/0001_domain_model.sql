-- The one domain model behind every facade (TCP 4011, /_access, /_conference,
-- /conference_*, /api/v1). Times are UTC, stored as RFC 3339 text
-- ("2026-11-21T20:14:27.123Z"), so they sort and compare as text.
-- Booleans are 0/1 integers. Tables are STRICT so a wrong type is an error, not a
-- silent conversion.

CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE customers (
    uid              TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'ACTIVE'
                     CHECK (status IN ('ACTIVE', 'SUSPEND', 'CLOSED', 'HOLD')),
    did              TEXT UNIQUE,
    -- '' until a key is issued: verifies nothing.
    api_key_hash     TEXT NOT NULL DEFAULT '',
    recording        INTEGER NOT NULL DEFAULT 0 CHECK (recording IN (0, 1)),
    greenroom        INTEGER NOT NULL DEFAULT 0 CHECK (greenroom IN (0, 1)),
    background_music INTEGER NOT NULL DEFAULT 0 CHECK (background_music IN (0, 1)),
    place_call       INTEGER NOT NULL DEFAULT 1 CHECK (place_call IN (0, 1)),
    contact_emails   TEXT NOT NULL DEFAULT '',
    affiliate_code   TEXT NOT NULL DEFAULT '',
    -- Registration-portal settings that updateCustomer and updateConference edit.
    reminder         INTEGER NOT NULL DEFAULT 0 CHECK (reminder IN (0, 1)),
    pre_call         TEXT NOT NULL DEFAULT '',
    post_call        TEXT NOT NULL DEFAULT '',
    banner           TEXT NOT NULL DEFAULT '',
    caller_interface TEXT NOT NULL DEFAULT '',
    reg_comment      TEXT NOT NULL DEFAULT '',
    created_at       TEXT NOT NULL
) STRICT;

-- Uploaded WAV files. Integer ids, as the PBX's enter_sound and music_on_hold_sound
-- take them. A NULL customer means a sound every customer may use.
CREATE TABLE sounds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_uid TEXT REFERENCES customers (uid) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    file_name    TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL
) STRICT;

CREATE TABLE conferences (
    uid                  TEXT PRIMARY KEY,
    customer_uid         TEXT NOT NULL REFERENCES customers (uid) ON DELETE CASCADE,
    name                 TEXT NOT NULL DEFAULT '',
    -- The number callers dial: TCP 4011 <cn>, a PBX conference number, an Aculab
    -- conference_name. Unique, so a request URI picks at most one conference.
    dial_in_number       TEXT UNIQUE,
    company              TEXT NOT NULL DEFAULT '',
    organiser            TEXT NOT NULL DEFAULT '',
    status               TEXT NOT NULL DEFAULT 'SCHED'
                         CHECK (status IN ('SCHED', 'ACTIVE', 'IDLE', 'CLOSED', 'CANCEL')),
    scheduled_start      TEXT,
    scheduled_end        TEXT,
    reserved             INTEGER NOT NULL DEFAULT 0 CHECK (reserved IN (0, 1)),
    max_members          INTEGER CHECK (max_members IS NULL OR max_members > 0),
    participant_pin      TEXT,
    moderator_pin        TEXT,
    security_token       TEXT NOT NULL UNIQUE,
    recording            INTEGER NOT NULL DEFAULT 0 CHECK (recording IN (0, 1)),
    greenroom            INTEGER NOT NULL DEFAULT 0 CHECK (greenroom IN (0, 1)),
    background_music     INTEGER NOT NULL DEFAULT 0 CHECK (background_music IN (0, 1)),
    beep_on_entry        INTEGER NOT NULL DEFAULT 1 CHECK (beep_on_entry IN (0, 1)),
    mute_non_moderator   INTEGER NOT NULL DEFAULT 0 CHECK (mute_non_moderator IN (0, 1)),
    announce_caller_name INTEGER NOT NULL DEFAULT 0 CHECK (announce_caller_name IN (0, 1)),
    entry_notifications  INTEGER NOT NULL DEFAULT 1 CHECK (entry_notifications IN (0, 1)),
    locked               INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    large_call           INTEGER NOT NULL DEFAULT 0 CHECK (large_call IN (0, 1)),
    place_call           INTEGER NOT NULL DEFAULT 1 CHECK (place_call IN (0, 1)),
    enter_sound          INTEGER REFERENCES sounds (id) ON DELETE SET NULL,
    music_on_hold_sound  INTEGER REFERENCES sounds (id) ON DELETE SET NULL,
    contact_email        TEXT NOT NULL DEFAULT '',
    register_text        TEXT NOT NULL DEFAULT '',
    notes                TEXT NOT NULL DEFAULT '',
    data                 TEXT NOT NULL DEFAULT '',
    custom               TEXT NOT NULL DEFAULT '',
    reminder             INTEGER NOT NULL DEFAULT 0 CHECK (reminder IN (0, 1)),
    pre_call             TEXT NOT NULL DEFAULT '',
    post_call            TEXT NOT NULL DEFAULT '',
    banner               TEXT NOT NULL DEFAULT '',
    caller_interface     TEXT NOT NULL DEFAULT '',
    reg_comment          TEXT NOT NULL DEFAULT '',
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
) STRICT;
CREATE INDEX conferences_customer ON conferences (customer_uid);

-- What a caller of each role gets on entry (MaestroConference RoleFlag), at
-- conference level; a call session copies them and may override them.
CREATE TABLE conference_role_settings (
    conference_uid TEXT NOT NULL REFERENCES conferences (uid) ON DELETE CASCADE,
    role           TEXT NOT NULL
                   CHECK (role IN ('PARTICIPANT', 'PRESENTER', 'ASSISTANT', 'OPERATOR', 'MODERATOR')),
    mike           INTEGER NOT NULL CHECK (mike IN (0, 1)),
    mute           INTEGER NOT NULL CHECK (mute IN (0, 1)),
    deaf           INTEGER NOT NULL CHECK (deaf IN (0, 1)),
    PRIMARY KEY (conference_uid, role)
) STRICT;

CREATE TABLE reservations (
    uid               TEXT PRIMARY KEY,
    conference_uid    TEXT NOT NULL REFERENCES conferences (uid) ON DELETE CASCADE,
    -- Aculab's reservation_token: opaque, unguessable.
    token             TEXT NOT NULL UNIQUE,
    start_time        TEXT NOT NULL,
    duration_minutes  INTEGER NOT NULL CHECK (duration_minutes > 0),
    estimated_callers INTEGER NOT NULL DEFAULT 0 CHECK (estimated_callers >= 0),
    divert            TEXT,
    state             TEXT NOT NULL DEFAULT 'RESERVED'
                      CHECK (state IN ('RESERVED', 'HOLDING', 'ACTIVE', 'COMPLETED')),
    created_at        TEXT NOT NULL
) STRICT;
CREATE INDEX reservations_conference ON reservations (conference_uid, start_time);

CREATE TABLE conference_tags (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    conference_uid TEXT NOT NULL REFERENCES conferences (uid) ON DELETE CASCADE,
    value          TEXT NOT NULL
) STRICT;
CREATE INDEX conference_tags_conference ON conference_tags (conference_uid);

CREATE TABLE persons (
    uid            TEXT PRIMARY KEY,
    customer_uid   TEXT NOT NULL REFERENCES customers (uid) ON DELETE CASCADE,
    conference_uid TEXT NOT NULL REFERENCES conferences (uid) ON DELETE CASCADE,
    name           TEXT NOT NULL DEFAULT '',
    email          TEXT NOT NULL DEFAULT '',
    ani            TEXT NOT NULL DEFAULT '',
    -- A caller dialling the customer's DID types this PIN; it picks the person,
    -- and thereby the conference and the role, so it is unique per customer.
    pin            TEXT NOT NULL,
    role           TEXT NOT NULL
                   CHECK (role IN ('PARTICIPANT', 'PRESENTER', 'ASSISTANT', 'OPERATOR', 'MODERATOR')),
    notes          TEXT NOT NULL DEFAULT '',
    custom1        TEXT NOT NULL DEFAULT '',
    custom2        TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    UNIQUE (customer_uid, pin)
) STRICT;
CREATE INDEX persons_conference ON persons (conference_uid);

CREATE TABLE person_tags (
    person_uid TEXT NOT NULL REFERENCES persons (uid) ON DELETE CASCADE,
    tag_id     INTEGER NOT NULL REFERENCES conference_tags (id) ON DELETE CASCADE,
    PRIMARY KEY (person_uid, tag_id)
) STRICT;

-- A call session (MaestroConference "Call"): from the first caller joining to the
-- last one leaving, or closeCall.
CREATE TABLE calls (
    uid              TEXT PRIMARY KEY,
    conference_uid   TEXT NOT NULL REFERENCES conferences (uid) ON DELETE CASCADE,
    name             TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'CLOSED')),
    actual_start     TEXT NOT NULL,
    actual_end       TEXT,
    notes            TEXT NOT NULL DEFAULT '',
    data             TEXT NOT NULL DEFAULT '',
    custom           TEXT NOT NULL DEFAULT '',
    talking          INTEGER NOT NULL DEFAULT 1 CHECK (talking IN (0, 1)),
    greenroom        INTEGER NOT NULL DEFAULT 0 CHECK (greenroom IN (0, 1)),
    entryway         INTEGER NOT NULL DEFAULT 0 CHECK (entryway IN (0, 1)),
    background_music INTEGER NOT NULL DEFAULT 0 CHECK (background_music IN (0, 1)),
    link             TEXT NOT NULL DEFAULT '',
    message          TEXT NOT NULL DEFAULT '',
    feedback         TEXT NOT NULL DEFAULT '',
    enable_feedback  INTEGER NOT NULL DEFAULT 0 CHECK (enable_feedback IN (0, 1)),
    enable_broadcast INTEGER NOT NULL DEFAULT 0 CHECK (enable_broadcast IN (0, 1))
) STRICT;
CREATE INDEX calls_conference ON calls (conference_uid, actual_start);

CREATE TABLE call_role_settings (
    call_uid TEXT NOT NULL REFERENCES calls (uid) ON DELETE CASCADE,
    role     TEXT NOT NULL
             CHECK (role IN ('PARTICIPANT', 'PRESENTER', 'ASSISTANT', 'OPERATOR', 'MODERATOR')),
    mike     INTEGER NOT NULL CHECK (mike IN (0, 1)),
    mute     INTEGER NOT NULL CHECK (mute IN (0, 1)),
    deaf     INTEGER NOT NULL CHECK (deaf IN (0, 1)),
    PRIMARY KEY (call_uid, role)
) STRICT;

CREATE TABLE call_tags (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    call_uid          TEXT NOT NULL REFERENCES calls (uid) ON DELETE CASCADE,
    value             TEXT NOT NULL,
    conference_tag_id INTEGER REFERENCES conference_tags (id) ON DELETE SET NULL
) STRICT;
CREATE INDEX call_tags_call ON call_tags (call_uid);

CREATE TABLE breakouts (
    uid                TEXT PRIMARY KEY,
    call_uid           TEXT NOT NULL REFERENCES calls (uid) ON DELETE CASCADE,
    name               TEXT NOT NULL DEFAULT '',
    private            INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
    attention          INTEGER NOT NULL DEFAULT 0 CHECK (attention IN (0, 1)),
    attention_time     TEXT,
    last_assisted_time TEXT,
    data               TEXT NOT NULL DEFAULT '',
    created_at         TEXT NOT NULL
) STRICT;
CREATE INDEX breakouts_call ON breakouts (call_uid);

CREATE TABLE callers (
    uid            TEXT PRIMARY KEY,
    call_uid       TEXT NOT NULL REFERENCES calls (uid) ON DELETE CASCADE,
    person_uid     TEXT REFERENCES persons (uid) ON DELETE SET NULL,
    direction      TEXT NOT NULL DEFAULT 'INBOUND' CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    name           TEXT NOT NULL DEFAULT '',
    ani            TEXT NOT NULL DEFAULT '',
    did            TEXT NOT NULL DEFAULT '',
    pin            TEXT NOT NULL DEFAULT '',
    role           TEXT NOT NULL
                   CHECK (role IN ('PARTICIPANT', 'PRESENTER', 'ASSISTANT', 'OPERATOR', 'MODERATOR')),
    breakout_uid   TEXT REFERENCES breakouts (uid) ON DELETE SET NULL,
    breakout_time  TEXT,
    mike           INTEGER NOT NULL DEFAULT 1 CHECK (mike IN (0, 1)),
    mute           INTEGER NOT NULL DEFAULT 0 CHECK (mute IN (0, 1)),
    deaf           INTEGER NOT NULL DEFAULT 0 CHECK (deaf IN (0, 1)),
    dtmf_allowed   INTEGER NOT NULL DEFAULT 1 CHECK (dtmf_allowed IN (0, 1)),
    listen_only    INTEGER NOT NULL DEFAULT 0 CHECK (listen_only IN (0, 1)),
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    tag            TEXT NOT NULL DEFAULT '',
    attention      INTEGER NOT NULL DEFAULT 0 CHECK (attention BETWEEN 0 AND 5),
    attention_time TEXT,
    data           TEXT NOT NULL DEFAULT '',
    notes          TEXT NOT NULL DEFAULT '',
    custom1        TEXT NOT NULL DEFAULT '',
    custom2        TEXT NOT NULL DEFAULT '',
    volume_in      INTEGER NOT NULL DEFAULT 0,
    volume_out     INTEGER NOT NULL DEFAULT 0,
    energy         INTEGER NOT NULL DEFAULT 0,
    start_time     TEXT NOT NULL,
    end_time       TEXT
) STRICT;
CREATE INDEX callers_call ON callers (call_uid);

CREATE TABLE caller_tags (
    caller_uid  TEXT NOT NULL REFERENCES callers (uid) ON DELETE CASCADE,
    call_tag_id INTEGER NOT NULL REFERENCES call_tags (id) ON DELETE CASCADE,
    PRIMARY KEY (caller_uid, call_tag_id)
) STRICT;

CREATE TABLE recordings (
    uid            TEXT PRIMARY KEY,
    conference_uid TEXT NOT NULL REFERENCES conferences (uid) ON DELETE CASCADE,
    call_uid       TEXT REFERENCES calls (uid) ON DELETE SET NULL,
    -- Set when one member is recorded rather than the room.
    caller_uid     TEXT REFERENCES callers (uid) ON DELETE SET NULL,
    file_name      TEXT NOT NULL UNIQUE,
    started_at     TEXT NOT NULL,
    ended_at       TEXT
) STRICT;
CREATE INDEX recordings_conference ON recordings (conference_uid);

-- Custom key/values on every object (updateCustomValue). Polymorphic, so the
-- triggers below remove them with their object.
CREATE TABLE custom_values (
    object_type TEXT NOT NULL
                CHECK (object_type IN ('customer', 'conference', 'call', 'caller', 'person')),
    object_uid  TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (object_type, object_uid, key)
) STRICT;

CREATE TRIGGER customers_custom_values AFTER DELETE ON customers BEGIN
    DELETE FROM custom_values WHERE object_type = 'customer' AND object_uid = OLD.uid;
END;
CREATE TRIGGER conferences_custom_values AFTER DELETE ON conferences BEGIN
    DELETE FROM custom_values WHERE object_type = 'conference' AND object_uid = OLD.uid;
END;
CREATE TRIGGER calls_custom_values AFTER DELETE ON calls BEGIN
    DELETE FROM custom_values WHERE object_type = 'call' AND object_uid = OLD.uid;
END;
CREATE TRIGGER callers_custom_values AFTER DELETE ON callers BEGIN
    DELETE FROM custom_values WHERE object_type = 'caller' AND object_uid = OLD.uid;
END;
CREATE TRIGGER persons_custom_values AFTER DELETE ON persons BEGIN
    DELETE FROM custom_values WHERE object_type = 'person' AND object_uid = OLD.uid;
END;
