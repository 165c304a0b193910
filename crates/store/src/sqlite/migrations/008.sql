-- Statistics and patron privacy (issue 15): the READ scale, who ended a
-- chat, hand-overs counted, when a chat's personal data was erased, each
-- library's retention period and the privacy audit list. `practice`
-- copies the question's `exclude_from_stats` so that the reports read one
-- table.
ALTER TABLE questions ADD COLUMN read_scale INTEGER;
ALTER TABLE sessions ADD COLUMN ended_by TEXT;
ALTER TABLE sessions ADD COLUMN handovers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN practice BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE sessions SET practice = TRUE WHERE id IN (SELECT session_id FROM questions WHERE exclude_from_stats);
ALTER TABLE sessions ADD COLUMN erased_at INTEGER;
-- Covers every column the reports read, so that a year of a cooperative
-- is read from the index alone.
CREATE INDEX sessions_report ON sessions(library_id, created_at, by_form, practice, state, ended_by, accepted_at,
    ended_at, librarian_id, rating, handovers);
-- The chats a librarian served (by-librarian, coverage), with every column
-- the reports read: a year of 850,000 served chats is read from the index
-- alone, in librarian order (no sort), and one library's librarians read
-- only their own entries (docs/performance.md).
CREATE INDEX sessions_served ON sessions(librarian_id, created_at, practice, by_form, state, ended_by, accepted_at,
    ended_at, rating, handovers, library_id) WHERE accepted_at IS NOT NULL;
CREATE INDEX questions_report ON questions(library_id, created_at, exclude_from_stats, status, code, read_scale,
    session_id);
CREATE INDEX sessions_unerased ON sessions(library_id, created_at) WHERE erased_at IS NULL;
CREATE INDEX sessions_patron_email ON sessions(lower(patron_email)) WHERE patron_email IS NOT NULL;
CREATE TABLE retention (
    library_id  INTEGER PRIMARY KEY REFERENCES libraries(id),
    days        INTEGER,
    transcripts TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  INTEGER REFERENCES staff(id)
);
CREATE TABLE privacy_log (
    id          INTEGER PRIMARY KEY,
    library_id  INTEGER NOT NULL REFERENCES libraries(id),
    at          INTEGER NOT NULL,
    action      TEXT NOT NULL,
    actor_id    INTEGER REFERENCES staff(id),
    sessions    INTEGER NOT NULL,
    transcripts TEXT
);
CREATE INDEX privacy_log_library ON privacy_log(library_id, id);
-- Chats from before this version: who ended them, from the words of their
-- end line, and how often they changed hands, from their timelines (the
-- reports' abandoned chats and transfers).
UPDATE sessions SET ended_by = 'patron' WHERE state = 'ended' AND id IN (
    SELECT session_id FROM messages WHERE system = 'ended' AND body LIKE '%(ended by the patron)');
UPDATE sessions SET ended_by = 'staff' WHERE state = 'ended' AND id IN (
    SELECT session_id FROM messages WHERE system = 'ended' AND body LIKE '%(ended by the librarian)');
UPDATE sessions SET ended_by = 'system' WHERE state = 'ended' AND id IN (
    SELECT session_id FROM messages WHERE system = 'ended' AND body LIKE '%(ended by refdesk)');
-- A hand-over is a take-over, a transfer or a return to a queue; being
-- accepted from a queue again is not one.
UPDATE sessions SET handovers = (
        SELECT COUNT(*) FROM timeline t JOIN questions q ON q.id = t.question_id
        WHERE q.session_id = sessions.id AND t.change LIKE '{"change":"librarian"%'
          AND (t.change LIKE '%"how":"take_over"%' OR t.change LIKE '%"how":"transfer"%'
               OR t.change LIKE '%"how":"queue"%'))
    WHERE id IN (
        SELECT q.session_id FROM questions q JOIN timeline t ON t.question_id = q.id
        WHERE t.change LIKE '{"change":"librarian"%');
