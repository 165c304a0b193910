-- Staff IM: one row per conversation with its last message, so that a staff
-- member's list of conversations reads a row per colleague written to, not
-- every message of their history (it summed them all at each read).
CREATE TABLE im_conversations (
    low      INTEGER NOT NULL REFERENCES staff(id),
    high     INTEGER NOT NULL REFERENCES staff(id),
    last_seq INTEGER NOT NULL,
    last_at  INTEGER NOT NULL,
    PRIMARY KEY (low, high)
) WITHOUT ROWID;
CREATE INDEX im_conversations_high ON im_conversations(high, low);
INSERT INTO im_conversations (low, high, last_seq, last_at)
    SELECT low, high, max(seq), max(at) FROM im_messages GROUP BY low, high;
