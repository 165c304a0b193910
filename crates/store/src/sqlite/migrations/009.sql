-- Reports (issue 15): a chat someone entered from the monitor (monitor,
-- whisper or join) counts as conferenced for good. `session_members` cannot
-- say so: it loses the row when they leave, and it also holds a librarian
-- who stayed, whispering, after handing the chat on (a transfer, not a
-- conference). Earlier conferences are read from the questions' timelines.
ALTER TABLE sessions ADD COLUMN conferenced BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE sessions SET conferenced = TRUE WHERE id IN (
    SELECT q.session_id FROM questions q JOIN timeline t ON t.question_id = q.id
    WHERE t.change LIKE '{"change":"conference"%');
CREATE INDEX sessions_conferenced ON sessions(library_id, created_at) WHERE conferenced;
