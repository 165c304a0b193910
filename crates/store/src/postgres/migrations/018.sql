-- The question list's views of work still to do (new and pending, not yet
-- coded, referred, flagged for follow-up) are read in partial indexes of
-- their few questions, newest first: their scope (a library, the questions
-- referred to it, a librarian's chats) spans two tables, so no index of the
-- scope serves it, and a view with fewer matches than a page walked every
-- question of the service.
CREATE INDEX questions_open ON questions(id) WHERE status IN ('new', 'pending');
CREATE INDEX questions_uncoded ON questions(id) WHERE code IS NULL;
CREATE INDEX questions_referred ON questions(id) WHERE referred_to IS NOT NULL;
CREATE INDEX questions_follow_up ON questions(id) WHERE follow_up = TRUE;
