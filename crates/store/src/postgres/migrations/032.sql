-- A line's number for the session's patron: how many of the session's
-- lines for everyone there are up to it (a line for staff carries the last
-- such line's). Patrons are given their lines by it, 1, 2, 3…: the
-- session's own numbers, which count the lines for staff too, would show
-- where a librarian wrote a note or a colleague joined unseen.
--
-- `refdesk_append_many` now numbers both and returns the patron's: its
-- result changes, so it is dropped and made again. A node of the previous
-- release would still append through it, but its other writes leave the
-- patron's number out and fail (below), and the pages it serves number
-- lines the old way: stop every node before starting this release
-- (docs/operations.md, "Upgrades").
ALTER TABLE messages ADD COLUMN patron_seq BIGINT NOT NULL DEFAULT 0;
-- Counted in one pass over each chat's lines (a running sum), not once
-- per line over the lines before it.
UPDATE messages SET patron_seq = numbered.n
  FROM (SELECT session_id, seq,
               sum(CASE WHEN audience = 'everyone' THEN 1 ELSE 0 END) OVER (PARTITION BY session_id ORDER BY seq) AS n
          FROM messages) AS numbered
 WHERE messages.session_id = numbered.session_id AND messages.seq = numbered.seq;
-- No default once every line has its number: a write that leaves it out (a
-- node of the previous release, which must not run beside this one) fails
-- rather than store a line the patron would number 0.
ALTER TABLE messages ALTER COLUMN patron_seq DROP DEFAULT;

DROP FUNCTION refdesk_append_many(BIGINT[], BIGINT[], BIGINT[], TEXT[], TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[],
                                  TEXT[], TEXT[], TEXT[]);

CREATE FUNCTION refdesk_append_many(
    p_session BIGINT[], p_version BIGINT[], p_now BIGINT[], p_kind TEXT[], p_audience TEXT[],
    p_author_kind TEXT[], p_author_id BIGINT[], p_author_name TEXT[], p_sender TEXT[],
    p_client_id TEXT[], p_body TEXT[], p_system TEXT[])
RETURNS TABLE (idx BIGINT, outcome TEXT, seq BIGINT, patron_seq BIGINT) LANGUAGE plpgsql AS $$
DECLARE
    a RECORD;
    -- The session whose row is locked and what it says (NULL: none yet).
    v_session BIGINT;
    v_found BOOLEAN;
    v_version BIGINT;
    v_state TEXT;
    v_seq BIGINT;
    v_patron_seq BIGINT;
BEGIN
    -- Arrays of different lengths would pair one append's fields with
    -- another's (unnest pads the short ones with NULLs).
    IF cardinality(p_session) IS DISTINCT FROM cardinality(p_version)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_now)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_kind)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_audience)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_author_kind)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_author_id)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_author_name)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_sender)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_client_id)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_body)
       OR cardinality(p_session) IS DISTINCT FROM cardinality(p_system) THEN
        RAISE EXCEPTION 'refdesk_append_many: the arrays differ in length';
    END IF;
    FOR a IN
        SELECT u.* FROM unnest(p_session, p_version, p_now, p_kind, p_audience, p_author_kind, p_author_id,
                               p_author_name, p_sender, p_client_id, p_body, p_system) WITH ORDINALITY
            AS u(a_session, a_version, a_now, a_kind, a_audience, a_author_kind, a_author_id, a_author_name,
                 a_sender, a_client_id, a_body, a_system, a_idx)
        ORDER BY u.a_session, u.a_idx
    LOOP
        IF v_session IS DISTINCT FROM a.a_session THEN
            v_session := a.a_session;
            SELECT s.version, s.state INTO v_version, v_state FROM sessions s WHERE s.id = a.a_session FOR UPDATE;
            v_found := FOUND;
        END IF;
        idx := a.a_idx;
        seq := 0;
        patron_seq := 0;
        v_seq := NULL;
        IF NOT v_found THEN
            outcome := 'missing';
        ELSIF v_version <> a.a_version THEN
            outcome := 'stale';
        ELSE
            IF a.a_client_id IS NOT NULL THEN
                SELECT m.seq INTO v_seq FROM messages m
                 WHERE m.session_id = a.a_session AND m.sender = a.a_sender AND m.client_id = a.a_client_id;
            END IF;
            IF v_seq IS NOT NULL THEN
                outcome := 'duplicate';
                seq := v_seq;
            ELSIF v_state = 'ended' THEN
                outcome := 'ended';
            ELSE
                -- Under the row's lock: every line of this session is
                -- stored under it, so the last one's number plus one is free
                -- (as `sql::rows::next_numbers` counts them).
                SELECT m.seq, m.patron_seq INTO v_seq, v_patron_seq FROM messages m
                 WHERE m.session_id = a.a_session ORDER BY m.seq DESC LIMIT 1;
                v_seq := COALESCE(v_seq, 0) + 1;
                v_patron_seq := COALESCE(v_patron_seq, 0) + CASE WHEN a.a_audience = 'everyone' THEN 1 ELSE 0 END;
                INSERT INTO messages (session_id, seq, patron_seq, kind, audience, author_kind, author_id,
                                      author_name, sender, client_id, body, system, at)
                VALUES (a.a_session, v_seq, v_patron_seq, a.a_kind, a.a_audience, a.a_author_kind, a.a_author_id,
                        a.a_author_name, a.a_sender, a.a_client_id, a.a_body, a.a_system, a.a_now);
                outcome := 'stored';
                seq := v_seq;
                patron_seq := v_patron_seq;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
