//! SQLite migrations, versioned by `PRAGMA user_version`: migration *n*
//! brings the schema from version *n* to *n + 1*. Append, never edit.

/// The migrations, in order.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE cooperatives (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE institutions (
    id             INTEGER PRIMARY KEY,
    cooperative_id INTEGER NOT NULL REFERENCES cooperatives(id),
    name           TEXT NOT NULL
);
CREATE TABLE libraries (
    id             INTEGER PRIMARY KEY,
    institution_id INTEGER NOT NULL REFERENCES institutions(id),
    slug           TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL
);
CREATE TABLE resolution_codes (
    cooperative_id     INTEGER NOT NULL REFERENCES cooperatives(id),
    key                TEXT NOT NULL,
    label              TEXT NOT NULL,
    status             TEXT NOT NULL,
    assign             TEXT NOT NULL,
    follow_up          INTEGER NOT NULL,
    referred           INTEGER NOT NULL,
    exclude_from_stats INTEGER NOT NULL,
    position           INTEGER NOT NULL,
    PRIMARY KEY (cooperative_id, key)
);
CREATE TABLE staff (
    id            INTEGER PRIMARY KEY,
    library_id    INTEGER NOT NULL REFERENCES libraries(id),
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE logins (
    token_hash TEXT PRIMARY KEY,
    staff_id   INTEGER NOT NULL REFERENCES staff(id),
    expires_at INTEGER NOT NULL
);
CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY,
    library_id      INTEGER NOT NULL REFERENCES libraries(id),
    token_hash      TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,
    patron_name     TEXT,
    patron_email    TEXT,
    question_text   TEXT NOT NULL,
    librarian_id    INTEGER REFERENCES staff(id),
    created_at      INTEGER NOT NULL,
    accepted_at     INTEGER,
    ended_at        INTEGER,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER NOT NULL
);
CREATE INDEX sessions_waiting ON sessions(created_at) WHERE state = 'waiting';
CREATE INDEX sessions_librarian ON sessions(librarian_id, state);
CREATE TABLE questions (
    id                 INTEGER PRIMARY KEY,
    session_id         INTEGER NOT NULL UNIQUE REFERENCES sessions(id),
    library_id         INTEGER NOT NULL REFERENCES libraries(id),
    text               TEXT NOT NULL,
    status             TEXT NOT NULL,
    code               TEXT,
    assignee_id        INTEGER REFERENCES staff(id),
    follow_up          INTEGER NOT NULL DEFAULT 0,
    referred_to        INTEGER REFERENCES libraries(id),
    exclude_from_stats INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL
);
CREATE INDEX questions_library ON questions(library_id, id);
CREATE TABLE messages (
    session_id  INTEGER NOT NULL REFERENCES sessions(id),
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    audience    TEXT NOT NULL,
    author_kind TEXT NOT NULL,
    author_id   INTEGER,
    author_name TEXT NOT NULL,
    sender      TEXT NOT NULL,
    client_id   TEXT,
    body        TEXT NOT NULL,
    system      TEXT,
    at          INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_client_id ON messages(session_id, sender, client_id) WHERE client_id IS NOT NULL;
CREATE TABLE timeline (
    id          INTEGER PRIMARY KEY,
    question_id INTEGER NOT NULL REFERENCES questions(id),
    at          INTEGER NOT NULL,
    actor_id    INTEGER REFERENCES staff(id),
    actor_name  TEXT NOT NULL,
    change      TEXT NOT NULL
);
CREATE INDEX timeline_question ON timeline(question_id, id);
"#,
    r#"
ALTER TABLE sessions ADD COLUMN transcript_to TEXT;
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    question_id     INTEGER REFERENCES questions(id),
    session_id      INTEGER REFERENCES sessions(id),
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE sent_at IS NULL;
"#,
    r#"
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
"#,
    r#"
ALTER TABLE sessions ADD COLUMN rating INTEGER;
ALTER TABLE sessions ADD COLUMN rating_comment TEXT;
CREATE TABLE policies (
    library_id INTEGER PRIMARY KEY REFERENCES libraries(id),
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by INTEGER REFERENCES staff(id)
);
"#,
    r#"
CREATE TABLE scripts (
    id         INTEGER PRIMARY KEY,
    scope      TEXT NOT NULL,
    owner_id   INTEGER NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX scripts_owner ON scripts(scope, owner_id);
"#,
    // See `SessionContext::version`: every write on a session but an append
    // bumps it (`rows::bump_version`).
    r#"
ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
"#,
    // Abusive patrons (issue 12): the keys a chat was started with, and blocks.
    r#"
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
"#,
];
