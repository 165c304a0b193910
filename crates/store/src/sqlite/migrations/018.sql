-- The per-network caps on chats and questions (`chats_per_address_per_day`,
-- `max_waiting_per_address`, `form_questions_per_address_per_day`) counted
-- an IPv6 patron by the /64 alone, and a subscriber may get a /56 or a /48
-- for nothing: 65,536 /64s, each with its own day's chats. A chat from IPv6
-- now keeps its /56's and /48's digests too (erased with the /64's), and
-- the caps count there as well, 4 and 16 times as large.
ALTER TABLE sessions ADD COLUMN net56_key TEXT;
ALTER TABLE sessions ADD COLUMN net48_key TEXT;
CREATE INDEX sessions_net56 ON sessions(net56_key, created_at) WHERE net56_key IS NOT NULL;
CREATE INDEX sessions_net48 ON sessions(net48_key, created_at) WHERE net48_key IS NOT NULL;
-- The waiting chats of a network were counted over every session it ever
-- started (in `sessions_net`), at each start: a shared address's years of
-- chats. Now over the few waiting ones.
CREATE INDEX sessions_waiting_net ON sessions(net_key) WHERE state = 'waiting';
CREATE INDEX sessions_waiting_net56 ON sessions(net56_key) WHERE state = 'waiting';
CREATE INDEX sessions_waiting_net48 ON sessions(net48_key) WHERE state = 'waiting';
