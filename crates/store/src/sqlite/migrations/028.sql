-- The patron's local time minus UTC, in minutes, as their browser gave it
-- when they asked for the transcript: the e-mailed transcript's times are
-- written in it (NULL: in UTC, as before). Erased with the address.
ALTER TABLE sessions ADD COLUMN transcript_utc_offset INTEGER;
