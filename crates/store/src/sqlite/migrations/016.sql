-- Answers e-mailed from the question list to one address are counted per
-- day before another is queued (`limits.answers_per_recipient_per_day`):
-- the count reads the outbox by address, in any letter case, and time.
CREATE INDEX outbox_to ON outbox(lower(to_addr), created_at);
