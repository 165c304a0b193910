-- Who made an admin log entry, as they were named then ("Name (username)"):
-- a rename later must not rewrite who did what. NULL in entries written
-- before it was kept (they name the account as it is named now).
ALTER TABLE admin_log ADD COLUMN actor_name TEXT;

-- The chats a browser left waiting, found as it asks again (every chat
-- start with a browser id): by the browser's key among the waiting chats,
-- not among every chat its library ever had.
CREATE INDEX sessions_waiting_browser ON sessions(browser_key) WHERE state = 'waiting';
