CREATE TABLE session_members (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    staff_id   INTEGER NOT NULL REFERENCES staff(id),
    mode       TEXT NOT NULL,
    joined_at  INTEGER NOT NULL,
    PRIMARY KEY (session_id, staff_id)
) WITHOUT ROWID;
ALTER TABLE sessions ADD COLUMN queue_library_id INTEGER REFERENCES libraries(id);
ALTER TABLE sessions ADD COLUMN queued_at INTEGER;
ALTER TABLE sessions ADD COLUMN queue_coop INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET queued_at = created_at;
ALTER TABLE staff ADD COLUMN availability TEXT NOT NULL DEFAULT 'off_duty';
ALTER TABLE staff ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
CREATE TABLE im_messages (
    low        INTEGER NOT NULL REFERENCES staff(id),
    high       INTEGER NOT NULL REFERENCES staff(id),
    seq        INTEGER NOT NULL,
    sender     INTEGER NOT NULL REFERENCES staff(id),
    recipient  INTEGER NOT NULL REFERENCES staff(id),
    body       TEXT NOT NULL,
    client_id  TEXT,
    at         INTEGER NOT NULL,
    PRIMARY KEY (low, high, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX im_client_id ON im_messages(sender, recipient, client_id) WHERE client_id IS NOT NULL;
CREATE TABLE im_reads (
    staff_id  INTEGER NOT NULL REFERENCES staff(id),
    peer_id   INTEGER NOT NULL REFERENCES staff(id),
    last_read INTEGER NOT NULL,
    PRIMARY KEY (staff_id, peer_id)
) WITHOUT ROWID;
