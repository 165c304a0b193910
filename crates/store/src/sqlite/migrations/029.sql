-- A resolution code no longer offered: questions that have it keep it,
-- none is newly given it. Codes are retired, not deleted: questions and
-- their timelines name them.
ALTER TABLE resolution_codes ADD COLUMN retired INTEGER NOT NULL DEFAULT 0;
