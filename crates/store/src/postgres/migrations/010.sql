-- A patron's place in line is counted once, when they join or rejoin a
-- queue (`queue_ahead`): from the queue's own order, in an index of the
-- waiting chats alone, rather than from the rows of every waiting chat in
-- every queue (issue 17, "Idle sockets").
CREATE INDEX sessions_queue ON sessions ((COALESCE(queue_library_id, library_id)), (COALESCE(queued_at, created_at)), id)
    INCLUDE (queue_library_id, library_id, queued_at, created_at, state) WHERE state = 'waiting';
