-- The caps on mail to one address count the mailbox it reaches
-- (`refdesk_domain::input::mailbox_key`: letter case, a +tag and dots in the
-- local part make no difference), not the address as written: before, each
-- spelling of one mailbox was counted apart. The caps count the last day
-- alone: rows of that day take their address in lower case (as the caps
-- counted them then); older rows need no key.
ALTER TABLE sessions ADD COLUMN transcript_key TEXT;
UPDATE sessions SET transcript_key = lower(transcript_to)
 WHERE transcript_to IS NOT NULL AND ended_at >= CAST(strftime('%s', 'now') AS INTEGER) * 1000 - 86400000;
DROP INDEX sessions_transcript_ended;
CREATE INDEX sessions_transcript_ended ON sessions(transcript_key, ended_at) WHERE transcript_key IS NOT NULL;
-- An erasure by address still finds the chats that asked a transcript
-- there (the index above was the one it read).
CREATE INDEX sessions_transcript_to ON sessions(lower(transcript_to)) WHERE transcript_to IS NOT NULL;
ALTER TABLE outbox ADD COLUMN to_key TEXT;
UPDATE outbox SET to_key = lower(to_addr) WHERE created_at >= CAST(strftime('%s', 'now') AS INTEGER) * 1000 - 86400000;
DROP INDEX outbox_to;
CREATE INDEX outbox_to ON outbox(to_key, created_at);
