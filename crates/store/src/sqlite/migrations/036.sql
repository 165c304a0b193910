-- When a live chat's patron was told its librarian's desk had lost its
-- connection (no node had seen them for a minute); NULL: not told, or
-- told they are back. Cleared whenever the chat changes hands.
ALTER TABLE sessions ADD COLUMN librarian_away_at INTEGER;
