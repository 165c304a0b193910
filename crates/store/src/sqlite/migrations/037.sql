-- A line's number for the session's patron: how many of the session's
-- lines for everyone there are up to it (a line for staff carries the last
-- such line's). Patrons are given their lines by it, 1, 2, 3…: the
-- session's own numbers, which count the lines for staff too, would show
-- where a librarian wrote a note or a colleague joined unseen.
ALTER TABLE messages ADD COLUMN patron_seq INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET patron_seq = (
    SELECT count(*) FROM messages e
     WHERE e.session_id = messages.session_id AND e.seq <= messages.seq AND e.audience = 'everyone');
