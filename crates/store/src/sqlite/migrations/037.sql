-- A line's number for the session's patron: how many of the session's
-- lines for everyone there are up to it (a line for staff carries the last
-- such line's). Patrons are given their lines by it, 1, 2, 3…: the
-- session's own numbers, which count the lines for staff too, would show
-- where a librarian wrote a note or a colleague joined unseen.
ALTER TABLE messages ADD COLUMN patron_seq INTEGER NOT NULL DEFAULT 0;
-- Counted in one pass over each chat's lines (a running sum), not once
-- per line over the lines before it.
UPDATE messages SET patron_seq = numbered.n
  FROM (SELECT session_id, seq,
               sum(CASE WHEN audience = 'everyone' THEN 1 ELSE 0 END) OVER (PARTITION BY session_id ORDER BY seq) AS n
          FROM messages) AS numbered
 WHERE messages.session_id = numbered.session_id AND messages.seq = numbered.seq;
