-- The addresses a question's answers were e-mailed to: a librarian may
-- answer to an address the patron gave in the chat, not the patron's own.
-- Erasing a patron's data by address (the privacy page) looked only at
-- the chats' own addresses, so such an answer's address stayed in the
-- timeline for good (a read-only privacy audit, 2026-12-04). Erasure
-- deletes a question's rows here; the existing answers of chats not
-- erased are copied from their timelines.
CREATE TABLE answer_addresses (
    question_id BIGINT NOT NULL REFERENCES questions(id),
    address     TEXT NOT NULL
);
CREATE INDEX answer_addresses_address ON answer_addresses(lower(address));
CREATE INDEX answer_addresses_question ON answer_addresses(question_id);
INSERT INTO answer_addresses (question_id, address)
SELECT a.question_id, a.address FROM (
    SELECT t.question_id AS question_id,
           CASE WHEN t.change LIKE '{"change":"answer",%'
                THEN t.change::jsonb ->> 'emailed_to' END AS address
    FROM timeline t JOIN questions q ON q.id = t.question_id JOIN sessions s ON s.id = q.session_id
    WHERE s.erased_at IS NULL
) a
WHERE a.address IS NOT NULL;
