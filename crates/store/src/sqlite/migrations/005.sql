CREATE TABLE scripts (
    id         INTEGER PRIMARY KEY,
    scope      TEXT NOT NULL,
    owner_id   INTEGER NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX scripts_owner ON scripts(scope, owner_id);
