-- The member limit that applies while max_members is NULL; NULL: no limit. The
-- PBX REST resource's rooms say `max_members: null` and mean 100, while TCP
-- 4011's `0` means no limit at all: each interface stores what its null means.
ALTER TABLE conferences ADD COLUMN default_max_members INTEGER
    CHECK (default_max_members IS NULL OR default_max_members > 0);

-- Bearer authentication (the PBX REST resource) finds a customer by its key's
-- hash alone.
CREATE INDEX customers_api_key_hash ON customers (api_key_hash);
