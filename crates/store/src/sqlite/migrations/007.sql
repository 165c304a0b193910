-- Abusive patrons (issue 12): the keys a chat was started with, and blocks.
ALTER TABLE sessions ADD COLUMN browser_key TEXT;
ALTER TABLE sessions ADD COLUMN net_key TEXT;
ALTER TABLE sessions ADD COLUMN by_form BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE blocks (
    id             INTEGER PRIMARY KEY,
    cooperative_id INTEGER NOT NULL REFERENCES cooperatives(id),
    library_id     INTEGER NOT NULL REFERENCES libraries(id),
    session_id     INTEGER NOT NULL REFERENCES sessions(id),
    browser_key    TEXT,
    net_key        TEXT,
    reason         TEXT NOT NULL,
    created_by     INTEGER NOT NULL REFERENCES staff(id),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    lifted_by      INTEGER REFERENCES staff(id),
    lifted_at      INTEGER
);
CREATE INDEX blocks_browser ON blocks(browser_key) WHERE lifted_at IS NULL;
CREATE INDEX blocks_net ON blocks(net_key) WHERE lifted_at IS NULL;
CREATE INDEX blocks_cooperative ON blocks(cooperative_id, id);
CREATE INDEX sessions_transcript_to ON sessions(lower(transcript_to)) WHERE transcript_to IS NOT NULL;
CREATE TABLE library_settings (
    library_id      INTEGER PRIMARY KEY REFERENCES libraries(id),
    blocked_may_ask BOOLEAN NOT NULL
);
