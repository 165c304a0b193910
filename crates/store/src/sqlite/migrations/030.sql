-- Since when a waiting chat's patron has had no page open (the socket of
-- their last page closed); NULL while one is open. The queue shows it, so
-- that a librarian need not accept a patron who has gone.
ALTER TABLE sessions ADD COLUMN patron_away_at INTEGER;
