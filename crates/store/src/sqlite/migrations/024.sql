-- Who e-mailed an answer from the question list, so that a staff member's
-- answers of the day are counted (`limits.answers_per_staff_per_day`): a
-- stolen sign-in could otherwise send answers to any number of addresses,
-- each within its own cap.
ALTER TABLE outbox ADD COLUMN sender_id INTEGER REFERENCES staff(id);
CREATE INDEX outbox_sender ON outbox(sender_id, created_at) WHERE sender_id IS NOT NULL;
