CREATE TABLE cooperatives (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE institutions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cooperative_id BIGINT NOT NULL REFERENCES cooperatives(id),
    name           TEXT NOT NULL
);
CREATE TABLE libraries (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    slug           TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL
);
CREATE TABLE resolution_codes (
    cooperative_id     BIGINT NOT NULL REFERENCES cooperatives(id),
    key                TEXT NOT NULL,
    label              TEXT NOT NULL,
    status             TEXT NOT NULL,
    assign             TEXT NOT NULL,
    follow_up          BOOLEAN NOT NULL,
    referred           BOOLEAN NOT NULL,
    exclude_from_stats BOOLEAN NOT NULL,
    position           BIGINT NOT NULL,
    PRIMARY KEY (cooperative_id, key)
);
CREATE TABLE staff (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    library_id    BIGINT NOT NULL REFERENCES libraries(id),
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    availability  TEXT NOT NULL DEFAULT 'off_duty',
    last_seen     BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE logins (
    token_hash TEXT PRIMARY KEY,
    staff_id   BIGINT NOT NULL REFERENCES staff(id),
    expires_at BIGINT NOT NULL
);
CREATE TABLE sessions (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    library_id       BIGINT NOT NULL REFERENCES libraries(id),
    token_hash       TEXT NOT NULL UNIQUE,
    state            TEXT NOT NULL,
    patron_name      TEXT,
    patron_email     TEXT,
    question_text    TEXT NOT NULL,
    librarian_id     BIGINT REFERENCES staff(id),
    created_at       BIGINT NOT NULL,
    accepted_at      BIGINT,
    ended_at         BIGINT,
    last_seq         BIGINT NOT NULL DEFAULT 0,
    last_message_at  BIGINT NOT NULL,
    transcript_to    TEXT,
    queue_library_id BIGINT REFERENCES libraries(id),
    queued_at        BIGINT,
    queue_coop       BOOLEAN NOT NULL DEFAULT FALSE,
    rating           BIGINT,
    rating_comment   TEXT
);
CREATE INDEX sessions_live ON sessions(state) WHERE state <> 'ended';
CREATE INDEX sessions_librarian ON sessions(librarian_id, state);
CREATE TABLE questions (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id         BIGINT NOT NULL UNIQUE REFERENCES sessions(id),
    library_id         BIGINT NOT NULL REFERENCES libraries(id),
    text               TEXT NOT NULL,
    status             TEXT NOT NULL,
    code               TEXT,
    assignee_id        BIGINT REFERENCES staff(id),
    follow_up          BOOLEAN NOT NULL DEFAULT FALSE,
    referred_to        BIGINT REFERENCES libraries(id),
    exclude_from_stats BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT NOT NULL
);
CREATE INDEX questions_library ON questions(library_id, id);
CREATE TABLE messages (
    session_id  BIGINT NOT NULL REFERENCES sessions(id),
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    audience    TEXT NOT NULL,
    author_kind TEXT NOT NULL,
    author_id   BIGINT,
    author_name TEXT NOT NULL,
    sender      TEXT NOT NULL,
    client_id   TEXT,
    body        TEXT NOT NULL,
    system      TEXT,
    at          BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages(session_id, sender, client_id) WHERE client_id IS NOT NULL;
CREATE TABLE timeline (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question_id BIGINT NOT NULL REFERENCES questions(id),
    at          BIGINT NOT NULL,
    actor_id    BIGINT REFERENCES staff(id),
    actor_name  TEXT NOT NULL,
    change      TEXT NOT NULL
);
CREATE INDEX timeline_question ON timeline(question_id, id);
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL,
    question_id     BIGINT REFERENCES questions(id),
    session_id      BIGINT REFERENCES sessions(id),
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE sent_at IS NULL;
CREATE TABLE session_members (
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    staff_id   BIGINT NOT NULL REFERENCES staff(id),
    mode       TEXT NOT NULL,
    joined_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, staff_id)
);
CREATE TABLE im_messages (
    low        BIGINT NOT NULL REFERENCES staff(id),
    high       BIGINT NOT NULL REFERENCES staff(id),
    seq        BIGINT NOT NULL,
    sender     BIGINT NOT NULL REFERENCES staff(id),
    recipient  BIGINT NOT NULL REFERENCES staff(id),
    body       TEXT NOT NULL,
    client_id  TEXT,
    at         BIGINT NOT NULL,
    PRIMARY KEY (low, high, seq)
);
CREATE UNIQUE INDEX im_client_id ON im_messages(sender, recipient, client_id) WHERE client_id IS NOT NULL;
CREATE TABLE im_reads (
    staff_id  BIGINT NOT NULL REFERENCES staff(id),
    peer_id   BIGINT NOT NULL REFERENCES staff(id),
    last_read BIGINT NOT NULL,
    PRIMARY KEY (staff_id, peer_id)
);
CREATE TABLE policies (
    library_id BIGINT PRIMARY KEY REFERENCES libraries(id),
    body       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by BIGINT REFERENCES staff(id)
);
CREATE TABLE scripts (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope      TEXT NOT NULL,
    owner_id   BIGINT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX scripts_owner ON scripts(scope, owner_id);
