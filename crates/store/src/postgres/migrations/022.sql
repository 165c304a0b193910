-- Secrets the nodes of one service share, made by the first node that
-- needs one (a random value written by refdesk, never by hand): the key
-- that signs the browsers a staff member signed in from
-- (`__Host-refdesk_device`), so that a sign-in from such a browser has a
-- rate limit of its own rather than its network's, which a stranger
-- sharing the library's address could spend.
CREATE TABLE server_keys (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
