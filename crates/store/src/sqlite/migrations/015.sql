-- A patron's place in line is counted once, when they join or rejoin a
-- queue (`queue_ahead`). It was counted by reading the row of every waiting
-- chat, in every queue: with thousands waiting, a patron's connection read
-- a thousand pages and filled a read connection's page cache (issue 17,
-- "Idle sockets"). The queue's own order, in an index of the waiting chats
-- alone, counts those ahead (the index's entries end with the row's id).
-- The columns the two expressions are made of follow them: without them
-- SQLite reads each entry's row to work the expressions out again.
CREATE INDEX sessions_queue ON sessions(COALESCE(queue_library_id, library_id), COALESCE(queued_at, created_at),
    queue_library_id, library_id, queued_at, created_at, state) WHERE state = 'waiting';
