-- Abusive patrons (issue 12): the keys a chat was started with, and blocks.
ALTER TABLE sessions ADD COLUMN browser_key TEXT;
ALTER TABLE sessions ADD COLUMN net_key TEXT;
ALTER TABLE sessions ADD COLUMN by_form BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE blocks (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cooperative_id BIGINT NOT NULL REFERENCES cooperatives(id),
    library_id     BIGINT NOT NULL REFERENCES libraries(id),
    session_id     BIGINT NOT NULL REFERENCES sessions(id),
    browser_key    TEXT,
    net_key        TEXT,
    reason         TEXT NOT NULL,
    created_by     BIGINT NOT NULL REFERENCES staff(id),
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    lifted_by      BIGINT REFERENCES staff(id),
    lifted_at      BIGINT
);
CREATE INDEX blocks_browser ON blocks(browser_key) WHERE lifted_at IS NULL;
CREATE INDEX blocks_net ON blocks(net_key) WHERE lifted_at IS NULL;
CREATE INDEX blocks_cooperative ON blocks(cooperative_id, id);
CREATE INDEX sessions_transcript_to ON sessions(lower(transcript_to)) WHERE transcript_to IS NOT NULL;
CREATE TABLE library_settings (
    library_id      BIGINT PRIMARY KEY REFERENCES libraries(id),
    blocked_may_ask BOOLEAN NOT NULL
);
