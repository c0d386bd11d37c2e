-- The callers connected now and the call sessions in progress are a handful
-- among everything ever stored. /metrics, LISTCONF, LISTUSER, member counts
-- and admission ask for exactly those; without these partial indexes each of
-- those questions read every caller a conference ever had (and every call),
-- so they slowed down and each pooled connection's page cache filled with
-- history as the database grew.
CREATE INDEX callers_live ON callers (call_uid) WHERE active = 1;
CREATE INDEX calls_live ON calls (conference_uid) WHERE status = 'ACTIVE';
