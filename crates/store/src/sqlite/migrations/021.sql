-- What grew with the service's history (a read-only audit, 2026-12-03):
-- the retention round and each erasure looked up a chat's mails, its
-- question's mails and its blocks by scanning every mail ever sent and
-- every block, inside the one writer; the transcript cap read every chat
-- ever sent to an address; a demotion read the members of every chat; and
-- an institution or library admin's blocks list scanned every block.
CREATE INDEX outbox_session ON outbox(session_id);
CREATE INDEX outbox_question ON outbox(question_id);
CREATE INDEX blocks_session ON blocks(session_id);
CREATE INDEX blocks_library ON blocks(library_id, id);
CREATE INDEX sessions_transcript_ended ON sessions(lower(transcript_to), ended_at) WHERE transcript_to IS NOT NULL;
DROP INDEX sessions_transcript_to;
CREATE INDEX session_members_staff ON session_members(staff_id, session_id);
