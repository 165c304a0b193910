-- Statistics and patron privacy (issue 15): the READ scale, who ended a
-- chat, hand-overs counted, when a chat's personal data was erased, each
-- library's retention period and the privacy audit list. `practice`
-- copies the question's `exclude_from_stats` so that the reports read one
-- table.
ALTER TABLE questions ADD COLUMN read_scale BIGINT;
ALTER TABLE sessions ADD COLUMN ended_by TEXT;
ALTER TABLE sessions ADD COLUMN handovers BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN practice BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE sessions SET practice = TRUE WHERE id IN (SELECT session_id FROM questions WHERE exclude_from_stats);
ALTER TABLE sessions ADD COLUMN erased_at BIGINT;
-- The reports read these indexes alone (index-only scans), never the wide
-- rows of the tables (the question, the patron's details): a year of a
-- cooperative is a million entries (docs/performance.md).
-- `sessions_report`: every session report, by the patron's library (`id`
-- for the conferenced chats, joined to session_members).
-- `sessions_served`: the chats a librarian served (by-librarian, coverage).
-- `sessions_channel` and `questions_channel`: each question's channel, by a
-- merge join on the session's id.
CREATE INDEX sessions_report ON sessions(library_id, created_at)
    INCLUDE (by_form, practice, state, ended_by, accepted_at, ended_at, librarian_id, rating, handovers, id);
CREATE INDEX sessions_served ON sessions(librarian_id, created_at)
    INCLUDE (practice, by_form, state, ended_by, accepted_at, ended_at, rating, handovers, library_id)
    WHERE accepted_at IS NOT NULL;
CREATE INDEX sessions_channel ON sessions(id) INCLUDE (by_form, accepted_at, state, ended_by);
CREATE INDEX questions_report ON questions(library_id, created_at)
    INCLUDE (exclude_from_stats, status, code, read_scale, session_id);
CREATE INDEX questions_channel ON questions(session_id) INCLUDE (library_id, created_at, exclude_from_stats);
-- How many distinct waits and durations (in seconds) there are: without it
-- the planner takes each chat for a group of its own, and sorts a year of
-- chats on disk instead of hashing a few thousand groups (PostgreSQL 14+).
CREATE STATISTICS sessions_spans ON ((accepted_at - created_at) / 1000), ((ended_at - accepted_at) / 1000) FROM sessions;
CREATE INDEX sessions_unerased ON sessions(library_id, created_at) WHERE erased_at IS NULL;
CREATE INDEX sessions_patron_email ON sessions(lower(patron_email)) WHERE patron_email IS NOT NULL;
CREATE TABLE retention (
    library_id  BIGINT PRIMARY KEY REFERENCES libraries(id),
    days        BIGINT,
    transcripts TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  BIGINT REFERENCES staff(id)
);
CREATE TABLE privacy_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    library_id  BIGINT NOT NULL REFERENCES libraries(id),
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor_id    BIGINT REFERENCES staff(id),
    sessions    BIGINT NOT NULL,
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
