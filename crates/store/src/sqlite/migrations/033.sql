-- The admin log: every change an admin (or the operator, from the command
-- line) made to accounts and settings, newest last. Each entry names the
-- places it concerns, so that an admin reads those of their role's scope:
-- a library's (its three ids), an institution's (two), the cooperative's.
-- Bounded per cooperative: the oldest past the cap are deleted as new ones
-- are written.
CREATE TABLE admin_log (
    id             INTEGER PRIMARY KEY,
    cooperative_id INTEGER NOT NULL REFERENCES cooperatives(id),
    institution_id INTEGER REFERENCES institutions(id),
    library_id     INTEGER REFERENCES libraries(id),
    at             INTEGER NOT NULL,
    actor_id       INTEGER REFERENCES staff(id),
    action         TEXT NOT NULL,
    detail         TEXT NOT NULL
);
CREATE INDEX admin_log_cooperative ON admin_log(cooperative_id, id);
CREATE INDEX admin_log_institution ON admin_log(institution_id, id) WHERE institution_id IS NOT NULL;
CREATE INDEX admin_log_library ON admin_log(library_id, id) WHERE library_id IS NOT NULL;
