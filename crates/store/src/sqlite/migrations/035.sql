-- A library's chat closed to new patrons by its admins (a holiday, a
-- library leaving the service): the notice patrons see instead of the chat
-- and the question form. NULL: open.
ALTER TABLE library_settings ADD COLUMN closed_notice TEXT;
