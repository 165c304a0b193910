-- See `SessionContext::version`: every write on a session but an append
-- bumps it (`sql::rows::lock_session`).
ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
