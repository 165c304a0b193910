-- Who last e-mailed an answer to a question: a question asked by the form
-- (or a chat no librarian accepted) has no chatting librarian, and the
-- librarian who answered it by e-mail was in no list, filter or report.
-- Filled from the timeline for the answers already sent; the index serves
-- the "By librarian" report (each librarian's questions of a range).
ALTER TABLE questions ADD COLUMN emailed_by INTEGER REFERENCES staff(id);
UPDATE questions SET emailed_by = (SELECT t.actor_id FROM timeline t WHERE t.question_id = questions.id
    AND t.change LIKE '{"change":"answer",%"emailed_to":"%' ORDER BY t.id DESC LIMIT 1)
WHERE EXISTS (SELECT 1 FROM timeline t WHERE t.question_id = questions.id
    AND t.change LIKE '{"change":"answer",%"emailed_to":"%');
CREATE INDEX questions_emailed_by ON questions(emailed_by, created_at) WHERE emailed_by IS NOT NULL;
