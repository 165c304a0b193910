-- A session's last sequence number and the time of its last line are read
-- from its messages (the last row of its range in the messages' primary
-- key) instead of being kept on the session's row: every line updated that
-- row, one more page written to the log per line (issue 17). The writer is
-- the only one to take sequence numbers, so the last row's number plus one
-- is the next.
ALTER TABLE sessions DROP COLUMN last_seq;
ALTER TABLE sessions DROP COLUMN last_message_at;
