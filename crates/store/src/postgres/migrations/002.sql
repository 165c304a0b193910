-- Every write on a session but an append bumps its version (under the row
-- lock), so a node may keep the session as an append needs it and check, in
-- the append itself, that it is still current.
ALTER TABLE sessions ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- An append in one statement (one round trip): lock the session, check the
-- version the caller's guard saw, find a re-sent client id (I4), refuse an
-- ended chat, take the next sequence number and store the message.
CREATE FUNCTION refdesk_append(
    p_session BIGINT, p_version BIGINT, p_now BIGINT, p_kind TEXT, p_audience TEXT,
    p_author_kind TEXT, p_author_id BIGINT, p_author_name TEXT, p_sender TEXT,
    p_client_id TEXT, p_body TEXT, p_system TEXT)
RETURNS TABLE (outcome TEXT, seq BIGINT) LANGUAGE plpgsql AS $$
DECLARE
    v_version BIGINT;
    v_state TEXT;
    v_seq BIGINT;
BEGIN
    SELECT s.version, s.state INTO v_version, v_state FROM sessions s WHERE s.id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'missing'::TEXT, 0::BIGINT;
        RETURN;
    END IF;
    IF v_version <> p_version THEN
        RETURN QUERY SELECT 'stale'::TEXT, 0::BIGINT;
        RETURN;
    END IF;
    IF p_client_id IS NOT NULL THEN
        SELECT m.seq INTO v_seq FROM messages m
         WHERE m.session_id = p_session AND m.sender = p_sender AND m.client_id = p_client_id;
        IF FOUND THEN
            RETURN QUERY SELECT 'duplicate'::TEXT, v_seq;
            RETURN;
        END IF;
    END IF;
    IF v_state = 'ended' THEN
        RETURN QUERY SELECT 'ended'::TEXT, 0::BIGINT;
        RETURN;
    END IF;
    UPDATE sessions s SET last_seq = s.last_seq + 1, last_message_at = p_now
     WHERE s.id = p_session RETURNING s.last_seq INTO v_seq;
    INSERT INTO messages (session_id, seq, kind, audience, author_kind, author_id, author_name, sender,
                          client_id, body, system, at)
    VALUES (p_session, v_seq, p_kind, p_audience, p_author_kind, p_author_id, p_author_name, p_sender,
            p_client_id, p_body, p_system, p_now);
    RETURN QUERY SELECT 'stored'::TEXT, v_seq;
END
$$;
