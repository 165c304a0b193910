-- The live sessions (waiting or active), as PostgreSQL has had since its
-- first migration: /metrics counts them per library at every scrape, and
-- must not read the ended ones (a year of a large cooperative is a million).
CREATE INDEX sessions_live ON sessions(state) WHERE state <> 'ended';
