-- Where a patron's reply to a library's e-mail (an answer, a transcript)
-- goes: the library's own address, set by its admins. NULL: no Reply-To,
-- replies go to `mail.from`.
ALTER TABLE library_settings ADD COLUMN reply_to TEXT;
