-- Delivered e-mails are deleted a week after delivery (the retention
-- round): found by their delivery time, not by reading the outbox.
CREATE INDEX outbox_sent ON outbox(sent_at) WHERE sent_at IS NOT NULL;
