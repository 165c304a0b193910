-- Who made an admin log entry, as they were named then ("Name (username)"):
-- a rename later must not rewrite who did what. NULL in entries written
-- before it was kept (they name the account as it is named now).
ALTER TABLE admin_log ADD COLUMN actor_name TEXT;
