-- An account's sign-ins, newest last: a new sign-in ends the oldest past
-- `limits.sign_ins_per_account`, so that one password cannot hold any
-- number of them (each with budgets of its own and a row).
CREATE INDEX logins_staff ON logins(staff_id, expires_at);
