-- Staff IM: a staff member's conversations were found by `low` through the
-- primary key and by `high` over every message of the service; and a
-- sender's messages of the day are counted at each send
-- (`limits.ims_per_staff_per_day`).
CREATE INDEX im_high ON im_messages(high, low, seq);
CREATE INDEX im_sent ON im_messages(sender, at);
