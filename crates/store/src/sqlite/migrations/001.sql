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
