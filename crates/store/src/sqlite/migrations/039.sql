-- A patron's place in line counts the chats ahead whose patron still has
-- a page of theirs open: one whose last page closed (`patron_away_at`) is
-- passed over at the desk and most likely gone, and five such chats ahead
-- told a patron alone in line that they were sixth. The queue's index
-- covers the column, so the count still reads the index alone.
DROP INDEX sessions_queue;
CREATE INDEX sessions_queue ON sessions(COALESCE(queue_library_id, library_id), COALESCE(queued_at, created_at),
    queue_library_id, library_id, queued_at, created_at, state, patron_away_at) WHERE state = 'waiting';
