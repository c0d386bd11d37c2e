-- Why a caller's call ended, recorded with its end time: the caller hung up,
-- an operator or program dropped it, its phone went silent (RTP timeout), the
-- session timer expired, the server stopped (or restarted after a crash).
ALTER TABLE callers ADD COLUMN end_reason TEXT
    CHECK (end_reason IN ('hangup', 'dropped', 'rtp-timeout', 'session-expired',
                          'no-ack', 'shutdown', 'server-restart', 'error'));
