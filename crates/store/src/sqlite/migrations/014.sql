-- Client ids are no longer indexed (issue 17): with many chats writing at
-- once, each line's index entry dirtied a page of its own, a second page of
-- the log per line. The writer, SQLite's one connection that writes, knows
-- a live session's client ids (`sqlite/kept.rs`) and looks a re-send up in
-- the session's own lines, which the primary key keeps together (I4).
DROP INDEX messages_client_id;
