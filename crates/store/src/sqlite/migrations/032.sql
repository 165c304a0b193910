-- The sites allowed to show a library's chat in a frame (its widget), as
-- origins separated by spaces (`refdesk_domain::input::embed_sites`). NULL,
-- as for every library before this version: any site.
ALTER TABLE library_settings ADD COLUMN embed_sites TEXT;
