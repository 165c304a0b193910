-- A librarian's own views of the question list ("my new", "my active")
-- found their few questions by reading every question in scope, newest
-- first (60 ms over a million questions, a read connection held all the
-- while): they are found by their assignee.
CREATE INDEX questions_assignee ON questions(assignee_id, id) WHERE assignee_id IS NOT NULL;
