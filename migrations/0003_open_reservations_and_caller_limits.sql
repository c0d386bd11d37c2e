-- A reservationless conference keeps one reservation record, open-ended (no
-- duration), that holds its estimated size: the reservations table is rebuilt
-- so duration_minutes may be NULL. Nothing references reservations.
CREATE TABLE reservations_new (
    uid               TEXT PRIMARY KEY,
    conference_uid    TEXT NOT NULL REFERENCES conferences (uid) ON DELETE CASCADE,
    -- Aculab's reservation_token: opaque, unguessable.
    token             TEXT NOT NULL UNIQUE,
    start_time        TEXT NOT NULL,
    -- NULL: open-ended (the one reservation of a reservationless conference).
    duration_minutes  INTEGER CHECK (duration_minutes IS NULL OR duration_minutes > 0),
    estimated_callers INTEGER NOT NULL DEFAULT 0 CHECK (estimated_callers >= 0),
    divert            TEXT,
    state             TEXT NOT NULL DEFAULT 'RESERVED'
                      CHECK (state IN ('RESERVED', 'HOLDING', 'ACTIVE', 'COMPLETED')),
    created_at        TEXT NOT NULL
) STRICT;
INSERT INTO reservations_new SELECT uid, conference_uid, token, start_time, duration_minutes,
    estimated_callers, divert, state, created_at FROM reservations;
DROP TABLE reservations;
ALTER TABLE reservations_new RENAME TO reservations;
CREATE INDEX reservations_conference ON reservations (conference_uid, start_time);

-- The most callers a customer may book for one reservation (MaestroConference's
-- estimatedCallers limit); NULL: the server's --max-calls.
ALTER TABLE customers ADD COLUMN max_callers INTEGER CHECK (max_callers IS NULL OR max_callers > 0);
